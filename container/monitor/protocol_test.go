package monitor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWriteFrame(t *testing.T) {
	tests := []struct {
		name    string
		typ     byte
		payload []byte
		want    []byte
	}{
		{"empty", FrameStart, nil, []byte{'S', 0, 0, 0, 0}},
		{"stdin", FrameStdin, []byte("hi\n"), []byte{'i', 0, 0, 0, 3, 'h', 'i', '\n'}},
		{"exit", FrameExit, []byte{0, 0, 0, 137}, []byte{'x', 0, 0, 0, 4, 0, 0, 0, 137}},
		{"length is big-endian", FrameStdout, make([]byte, 0x0102), append([]byte{'o', 0, 0, 1, 2}, make([]byte, 0x0102)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeFrame(&b, tt.typ, tt.payload); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.Bytes(), tt.want) {
				t.Fatalf("wrote % x\nwant  % x", b.Bytes(), tt.want)
			}
		})
	}
}

// shortWriter fails after n bytes.
type shortWriter struct{ n int }

func (w *shortWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return w.n, io.ErrShortWrite
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteFrameError(t *testing.T) {
	if err := writeFrame(&shortWriter{n: 3}, FrameStdin, []byte("data")); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("writeFrame to a failing writer = %v", err)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	frames := []struct {
		typ byte
		p   []byte
	}{
		{FrameStdout, []byte("out")},
		{FrameStderr, []byte("err\x00bin\xff")},
		{FrameStart, nil},
		{FrameEOF, []byte{}},
		{FrameStdin, bytes.Repeat([]byte{'z'}, maxFrame)}, // the largest allowed
	}
	var b bytes.Buffer
	for _, f := range frames {
		if err := writeFrame(&b, f.typ, f.p); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range frames {
		typ, p, err := readFrame(&b)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if typ != f.typ || !bytes.Equal(p, f.p) {
			t.Fatalf("frame %d: %q %d bytes, want %q %d bytes", i, typ, len(p), f.typ, len(f.p))
		}
	}
	if _, _, err := readFrame(&b); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestReadFrameBadInput(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error // nil: any error
	}{
		{"nothing", nil, io.EOF},
		{"part of a header", []byte{'o', 0, 0}, io.ErrUnexpectedEOF},
		{"header only", []byte{'o', 0, 0, 0, 5}, io.EOF}, // io.ReadFull of nothing
		{"short payload", []byte{'o', 0, 0, 0, 5, 'a', 'b'}, io.ErrUnexpectedEOF},
		{"one byte too large", []byte{'i', 0, 0x10, 0, 1}, nil},
		{"4 GiB", []byte{'i', 0xff, 0xff, 0xff, 0xff, 'x'}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, p, err := readFrame(bytes.NewReader(tt.in))
			if err == nil {
				t.Fatalf("readFrame = %q, %d bytes; want an error", typ, len(p))
			}
			if tt.want != nil && err != tt.want {
				t.Fatalf("readFrame: %v, want %v", err, tt.want)
			}
			if p != nil {
				t.Errorf("payload %q returned with the error", p)
			}
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{'o', 0, 0, 0, 3, 'a', 'b', 'c'})
	f.Add([]byte{'x', 0, 0, 0, 4, 0, 0, 0, 1, 'o'})
	f.Add([]byte{'i', 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		typ, p, err := readFrame(r)
		if err != nil {
			return
		}
		// What was read is exactly one frame: encoding it again gives back
		// the bytes consumed.
		var b bytes.Buffer
		writeFrame(&b, typ, p)
		if consumed := in[:len(in)-r.Len()]; !bytes.Equal(b.Bytes(), consumed) {
			t.Fatalf("re-encoded % x, consumed % x", b.Bytes(), consumed)
		}
	})
}

func TestReadExit(t *testing.T) {
	finished := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	tests := []struct {
		name    string
		content string // "" with missing: no file
		missing bool
		want    Exit
		wantErr bool
	}{
		{name: "code", content: `{"exitCode":3,"finishedAt":"2026-03-04T05:06:07.000000008Z"}`, want: Exit{Code: 3, FinishedAt: finished}},
		{name: "signal", content: `{"exitCode":137,"finishedAt":"2026-03-04T05:06:07.000000008Z","signal":9}`, want: Exit{Code: 137, FinishedAt: finished, Signal: 9}},
		{name: "unknown fields", content: `{"exitCode":0,"finishedAt":"2026-03-04T05:06:07.000000008Z","future":true}`, want: Exit{FinishedAt: finished}},
		{name: "missing", missing: true, wantErr: true},
		{name: "empty", content: "", wantErr: true},
		{name: "truncated", content: `{"exitCode":3,"finish`, wantErr: true},
		{name: "garbage", content: "\x00\x01\x02", wantErr: true},
		{name: "wrong type", content: `{"exitCode":"three"}`, wantErr: true},
		{name: "bad time", content: `{"exitCode":1,"finishedAt":"yesterday"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if !tt.missing {
				if err := os.WriteFile(filepath.Join(dir, "exit.json"), []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			e, err := ReadExit(dir)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ReadExit = %+v, want an error", e)
				}
				if e != nil {
					t.Errorf("ReadExit returned %+v with its error", e)
				}
				// Callers tell "the monitor never wrote it" from a broken file.
				if got := errors.Is(err, fs.ErrNotExist); got != tt.missing {
					t.Errorf("errors.Is(%v, fs.ErrNotExist) = %v, want %v", err, got, tt.missing)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Code != tt.want.Code || e.Signal != tt.want.Signal || !e.FinishedAt.Equal(tt.want.FinishedAt) {
				t.Fatalf("ReadExit = %+v, want %+v", *e, tt.want)
			}
		})
	}
}

func TestReadExitGolden(t *testing.T) {
	// testdata/exit.json is what a monitor of this version writes; a newer
	// berth must still read the records of containers that exited before
	// an upgrade.
	e, err := ReadExit("testdata")
	if err != nil {
		t.Fatal(err)
	}
	want := Exit{Code: 143, FinishedAt: time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.UTC), Signal: 15}
	if e.Code != want.Code || e.Signal != want.Signal || !e.FinishedAt.Equal(want.FinishedAt) {
		t.Fatalf("ReadExit(testdata) = %+v, want %+v", *e, want)
	}
}

// frameConn gives a Client one end of a pipe and returns the other.
func frameConn(t *testing.T) (*Client, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return &Client{conn: a}, b
}

// readFrames collects what a Client sends until its end closes.
func readFrames(conn net.Conn) <-chan []frame {
	ch := make(chan []frame, 1)
	go func() {
		var fs []frame
		for {
			typ, p, err := readFrame(conn)
			if err != nil {
				ch <- fs
				return
			}
			fs = append(fs, frame{typ, p})
		}
	}()
	return ch
}

func TestClientSends(t *testing.T) {
	tests := []struct {
		name string
		send func(*Client) error
		want []frame
	}{
		{"start", (*Client).Start, []frame{{FrameStart, []byte{}}}},
		{"take cleanup", (*Client).TakeCleanup, []frame{{FrameTakeCleanup, []byte{}}}},
		{"cleaned up", (*Client).CleanedUp, []frame{{FrameCleanedUp, []byte{}}}},
		{"resize", func(c *Client) error { return c.Resize(40, 0x0102) }, []frame{{FrameResize, []byte{0, 40, 1, 2}}}},
		{"signal", func(c *Client) error { return c.Signal(unix.SIGTERM) }, []frame{{FrameSignal, []byte{0, 0, 0, 15}}}},
		{"stdin", func(c *Client) error { return c.SendStdin(strings.NewReader("abc")) },
			[]frame{{FrameStdin, []byte("abc")}, {FrameEOF, []byte{}}}},
		{"empty stdin", func(c *Client) error { return c.SendStdin(strings.NewReader("")) }, []frame{{FrameEOF, []byte{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, srv := frameConn(t)
			got := readFrames(srv)
			if err := tt.send(c); err != nil {
				t.Fatal(err)
			}
			c.conn.Close()
			fs := <-got
			if len(fs) != len(tt.want) {
				t.Fatalf("sent %d frames %q, want %q", len(fs), fs, tt.want)
			}
			for i := range fs {
				if fs[i].typ != tt.want[i].typ || !bytes.Equal(fs[i].p, tt.want[i].p) {
					t.Errorf("frame %d: %q % x, want %q % x", i, fs[i].typ, fs[i].p, tt.want[i].typ, tt.want[i].p)
				}
			}
		})
	}
}

func TestSendStdinLarge(t *testing.T) {
	// More than one read buffer: several stdin frames, in order, then EOF.
	data := make([]byte, 100<<10+7)
	for i := range data {
		data[i] = byte(i % 251)
	}
	c, srv := frameConn(t)
	got := readFrames(srv)
	if err := c.SendStdin(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	c.conn.Close()
	fs := <-got
	var all []byte
	for i, f := range fs {
		last := i == len(fs)-1
		if last != (f.typ == FrameEOF) {
			t.Fatalf("frame %d of %d is %q", i, len(fs), f.typ)
		}
		if f.typ == FrameStdin {
			if len(f.p) > 32<<10 {
				t.Errorf("stdin frame of %d bytes", len(f.p))
			}
			all = append(all, f.p...)
		}
	}
	if len(fs) < 5 || !bytes.Equal(all, data) {
		t.Fatalf("%d frames, %d bytes; want %d bytes in at least 4 frames", len(fs), len(all), len(data))
	}
}

type failingReader struct{ n int }

var errRead = errors.New("terminal gone")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		r.n++
		return copy(p, "part"), nil
	}
	return 0, errRead
}

func TestSendStdinReadError(t *testing.T) {
	c, srv := frameConn(t)
	got := readFrames(srv)
	if err := c.SendStdin(&failingReader{}); !errors.Is(err, errRead) {
		t.Fatalf("SendStdin = %v, want the read error", err)
	}
	c.conn.Close()
	fs := <-got
	// The data read before the error goes, but no EOF: the container's
	// stdin was not ended by its user.
	if len(fs) != 1 || fs[0].typ != FrameStdin || string(fs[0].p) != "part" {
		t.Fatalf("frames %q", fs)
	}
}

func TestSendOnClosedConnection(t *testing.T) {
	c, srv := frameConn(t)
	srv.Close()
	for name, send := range map[string]func() error{
		"start":  c.Start,
		"take":   c.TakeCleanup,
		"done":   c.CleanedUp,
		"resize": func() error { return c.Resize(1, 1) },
		"signal": func() error { return c.Signal(unix.SIGINT) },
		"stdin":  func() error { return c.SendStdin(strings.NewReader("x")) },
	} {
		if err := send(); err == nil {
			t.Errorf("%s to a closed monitor: no error", name)
		}
	}
}

// lockedBuffer is a bytes.Buffer for output written by one goroutine and
// read by another.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func exitPayload(code int32) []byte {
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], uint32(code))
	return p[:]
}

func TestReceive(t *testing.T) {
	tests := []struct {
		name     string
		frames   []frame
		close    bool // the monitor hangs up after the frames
		code     int
		pids     []int
		stdout   string
		stderr   string
		err      error // errors.Is
		startErr string
		protoErr bool
		yours    bool // CleanupIsYours after
	}{
		{name: "output and exit",
			frames: []frame{{FrameStarted, []byte("4242")}, {FrameStdout, []byte("out1 ")}, {FrameStderr, []byte("err")},
				{FrameStdout, []byte("out2")}, {FrameExit, exitPayload(3)}},
			code: 3, pids: []int{4242}, stdout: "out1 out2", stderr: "err"},
		{name: "killed", frames: []frame{{FrameExit, exitPayload(137)}}, code: 137},
		{name: "cleanup handed over", frames: []frame{{FrameExit, append(exitPayload(2), 1)}}, code: 2, yours: true},
		{name: "cleanup done", frames: []frame{{FrameExit, append(exitPayload(2), 0)}}, code: 2},
		{name: "six-byte exit frame", frames: []frame{{FrameExit, append(exitPayload(2), 1, 1)}}, code: -1, protoErr: true},
		{name: "negative code", frames: []frame{{FrameExit, exitPayload(-1)}}, code: -1},
		{name: "unknown frames are skipped",
			frames: []frame{{'?', []byte("future")}, {FrameStdin, []byte("echo")}, {FrameStdout, []byte("x")}, {FrameExit, exitPayload(0)}},
			code:   0, stdout: "x"},
		{name: "start failed", frames: []frame{{FrameFailed, []byte("runc start c: cannot start a stopped container")}},
			code: -1, startErr: "runc start c: cannot start a stopped container"},
		{name: "bad exit frame", frames: []frame{{FrameExit, []byte{1, 2}}}, code: -1, protoErr: true},
		{name: "oversized frame", frames: []frame{{FrameStdout, make([]byte, maxFrame+1)}}, code: -1, protoErr: true},
		{name: "hang up", frames: []frame{{FrameStdout, []byte("partial")}}, close: true, code: -1, stdout: "partial", err: ErrDetached},
		{name: "hang up at once", close: true, code: -1, err: ErrDetached},
		{name: "bad pid", frames: []frame{{FrameStarted, []byte("nope")}, {FrameExit, exitPayload(0)}}, pids: []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, srv := frameConn(t)
			go func() {
				for _, f := range tt.frames {
					if writeFrame(srv, f.typ, f.p) != nil {
						return
					}
				}
				if tt.close {
					srv.Close()
				}
			}()
			var stdout, stderr lockedBuffer
			var pids []int
			code, err := c.Receive(&stdout, &stderr, func(pid int) { pids = append(pids, pid) })
			if code != tt.code {
				t.Errorf("code %d, want %d", code, tt.code)
			}
			switch {
			case tt.startErr != "":
				var se *StartError
				if !errors.As(err, &se) || se.Msg != tt.startErr || err.Error() != tt.startErr {
					t.Errorf("Receive error %v (%T), want StartError %q", err, err, tt.startErr)
				}
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Errorf("Receive error %v, want %v", err, tt.err)
				}
			case tt.protoErr:
				if err == nil || errors.Is(err, ErrDetached) {
					t.Errorf("Receive error %v, want a protocol error", err)
				}
			default:
				if err != nil {
					t.Errorf("Receive: %v", err)
				}
			}
			if stdout.String() != tt.stdout || stderr.String() != tt.stderr {
				t.Errorf("stdout %q stderr %q, want %q %q", stdout.String(), stderr.String(), tt.stdout, tt.stderr)
			}
			if len(pids) != len(tt.pids) || (len(pids) > 0 && pids[0] != tt.pids[0]) {
				t.Errorf("started with %v, want %v", pids, tt.pids)
			}
			if c.CleanupIsYours() != tt.yours {
				t.Errorf("CleanupIsYours = %v, want %v", !tt.yours, tt.yours)
			}
		})
	}
}

func TestReceiveNilWriters(t *testing.T) {
	c, srv := frameConn(t)
	go func() {
		writeFrame(srv, FrameStarted, []byte("7"))
		writeFrame(srv, FrameStdout, []byte("dropped"))
		writeFrame(srv, FrameStderr, []byte("dropped"))
		writeFrame(srv, FrameExit, exitPayload(9))
	}()
	code, err := c.Receive(nil, nil, nil)
	if err != nil || code != 9 {
		t.Fatalf("Receive = %d, %v", code, err)
	}
}

func TestReceiveAfterLocalClose(t *testing.T) {
	// A client closed by its CLI (detach keys, a signal) while it waits.
	a, _ := socketpair(t)
	c := &Client{conn: a}
	done := make(chan error, 1)
	go func() { _, err := c.Receive(nil, nil, nil); done <- err }()
	time.Sleep(20 * time.Millisecond)
	c.conn.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrDetached) {
			t.Fatalf("Receive after Close = %v, want ErrDetached", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Receive did not return when its connection was closed")
	}
}

// deepDir is a directory whose path is too long for a unix socket address.
func deepDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for len(d) < 150 {
		d = filepath.Join(d, "a-long-directory-name")
	}
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestListenAndDialDeepRunDir(t *testing.T) {
	for _, deep := range []bool{false, true} {
		dir := t.TempDir()
		if deep {
			dir = deepDir(t)
		}
		// A socket left by a monitor that died is replaced.
		if err := os.WriteFile(filepath.Join(dir, "attach.sock"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		m := &monitor{cfg: Config{RunDir: dir}}
		ln, d, err := m.listen()
		if err != nil {
			t.Fatalf("listen in a %d-byte directory: %v", len(dir), err)
		}
		fi, err := os.Lstat(filepath.Join(dir, "attach.sock"))
		if err != nil || fi.Mode().Type() != fs.ModeSocket {
			t.Fatalf("attach.sock: %v %v, want a socket", fi, err)
		}
		got := make(chan frame, 1)
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				close(got)
				return
			}
			defer conn.Close()
			typ, p, _ := readFrame(conn)
			got <- frame{typ, p}
		}()
		c, err := Dial(dir)
		if err != nil {
			t.Fatalf("Dial of a %d-byte directory: %v", len(dir), err)
		}
		if err := c.Resize(24, 80); err != nil {
			t.Fatal(err)
		}
		select {
		case f := <-got:
			if f.typ != FrameResize || !bytes.Equal(f.p, []byte{0, 24, 0, 80}) {
				t.Fatalf("monitor got %q % x", f.typ, f.p)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the monitor got nothing")
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		ln.Close()
		d.Close()
	}
}

func TestDialErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Dial(dir); err == nil || !strings.Contains(err.Error(), "attach to the container's monitor") {
		t.Errorf("Dial without a monitor = %v", err)
	}
	if _, err := Dial(filepath.Join(dir, "nosuch")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Dial of a missing run directory = %v, want fs.ErrNotExist", err)
	}
	// A socket nobody listens on any more (the monitor was killed).
	p := filepath.Join(dir, "attach.sock")
	ln, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := Dial(dir); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("Dial of a dead monitor = %v, want ECONNREFUSED", err)
	}
}

func TestSocketPath(t *testing.T) {
	dir := deepDir(t)
	p, d, err := socketPath(dir, "x.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if len(p) >= 108 || !strings.HasPrefix(p, "/proc/self/fd/") || !strings.HasSuffix(p, "/x.sock") {
		t.Fatalf("socketPath = %q", p)
	}
	// The path names dir/x.sock.
	if err := os.WriteFile(p, []byte("here"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "x.sock")); err != nil || string(b) != "here" {
		t.Fatalf("%s is not %s/x.sock: %q %v", p, dir, b, err)
	}
	if _, _, err := socketPath(filepath.Join(dir, "x.sock"), "y"); err == nil {
		t.Fatal("socketPath of a file: no error")
	}
}

// sendFd sends f over conn as a runtime does to a console socket.
func sendFd(t *testing.T, conn *net.UnixConn, f *os.File) {
	t.Helper()
	if _, _, err := conn.WriteMsgUnix([]byte("pty"), unix.UnixRights(int(f.Fd())), nil); err != nil {
		t.Fatal(err)
	}
}

func socketpair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

func TestReceiveFd(t *testing.T) {
	a, b := socketpair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sendFd(t, a, w)
	w.Close()
	got := ReceiveFd(b)
	if got == nil {
		t.Fatal("ReceiveFd = nil")
	}
	// It is the same pipe.
	if _, err := got.Write([]byte("through the fd")); err != nil {
		t.Fatal(err)
	}
	got.Close()
	out, _ := io.ReadAll(r)
	if string(out) != "through the fd" {
		t.Fatalf("read %q", out)
	}
}

func TestReceiveFdWithoutFd(t *testing.T) {
	a, b := socketpair(t)
	if _, err := a.Write([]byte("no rights attached")); err != nil {
		t.Fatal(err)
	}
	if f := ReceiveFd(b); f != nil {
		f.Close()
		t.Fatal("ReceiveFd of a message without an fd returned a file")
	}
	a.Close()
	if f := ReceiveFd(b); f != nil {
		f.Close()
		t.Fatal("ReceiveFd of a closed connection returned a file")
	}
}

func TestConsoleSocket(t *testing.T) {
	tests := []struct {
		name    string
		runDir  string
		private bool
	}{
		{"short run dir", t.TempDir(), false},
		{"deep run dir", deepDir(t), true},
	}
	tmp := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A socket left by an earlier monitor is replaced.
			os.WriteFile(filepath.Join(tt.runDir, "console.sock"), nil, 0o600)
			c, cleanup, err := consoleSocket(tt.runDir)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.path) > 100 {
				t.Errorf("console socket %q: longer than a socket address may be", c.path)
			}
			if tt.private {
				if !strings.HasPrefix(c.path, filepath.Join(tmp, "berth-console-")) || filepath.Base(c.path) != "sock" {
					t.Errorf("console socket %q: want a private directory in TMPDIR", c.path)
				}
			} else if c.path != filepath.Join(tt.runDir, "console.sock") {
				t.Errorf("console socket %q: want it in the run directory", c.path)
			}

			// The runtime connects and sends the pty master.
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			go func() {
				defer w.Close()
				conn, err := net.Dial("unix", c.path)
				if err != nil {
					return
				}
				defer conn.Close()
				conn.(*net.UnixConn).WriteMsgUnix([]byte("x"), unix.UnixRights(int(w.Fd())), nil)
			}()
			f := c.receive()
			if f == nil {
				t.Fatal("receive = nil")
			}
			f.Write([]byte("ok"))
			f.Close()
			if b, _ := io.ReadAll(r); string(b) != "ok" {
				t.Fatalf("received fd is not the one sent: %q", b)
			}

			cleanup()
			if _, err := os.Stat(c.path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("cleanup left %s: %v", c.path, err)
			}
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Errorf("cleanup left in TMPDIR: %v", ents)
			}
			// After cleanup nothing can connect, and receive gives nil.
			if f := c.receive(); f != nil {
				t.Error("receive after cleanup returned a file")
			}
		})
	}
}

func TestConsoleSocketRunDirMissing(t *testing.T) {
	if _, _, err := consoleSocket(filepath.Join(t.TempDir(), "nosuch")); err == nil {
		t.Fatal("consoleSocket in a missing directory: no error")
	}
}

func TestWaitInit(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh:", err)
	}
	tests := []struct {
		name   string
		script string
		signal os.Signal // sent once it runs
		want   int
		sig    int // the signal waitInit must report
	}{
		{"exit 0", "exit 0", nil, 0, 0},
		{"exit 7", "exit 7", nil, 7, 0},
		{"exit 130 is no signal", "exit 130", nil, 130, 0},
		{"exit 255", "exit 255", nil, 255, 0},
		{"killed", "kill -KILL $$", nil, 137, 9},
		{"aborted", "kill -ABRT $$", nil, 134, 6}, // CLD_DUMPED when core dumps are on
		{"terminated", "exec sleep 30", unix.SIGTERM, 143, 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := os.StartProcess("/bin/sh", []string{"sh", "-c", tt.script}, &os.ProcAttr{})
			if err != nil {
				t.Skip("cannot start /bin/sh:", err)
			}
			defer p.Release()
			m := &monitor{pid: p.Pid}
			ch := m.waitInit()
			if tt.signal != nil {
				time.Sleep(50 * time.Millisecond)
				p.Signal(tt.signal)
			}
			select {
			case st := <-ch:
				if st.code != tt.want {
					t.Fatalf("waitInit = %d, want %d", st.code, tt.want)
				}
				if st.signal != tt.sig {
					t.Fatalf("waitInit signal = %d, want %d", st.signal, tt.sig)
				}
			case <-time.After(10 * time.Second):
				p.Kill()
				t.Fatal("waitInit did not report the exit")
			}
		})
	}
}

func TestWaitInitNotAChild(t *testing.T) {
	// Neither a pid that cannot be, nor a process that is not ours to
	// reap: 255, as for a container whose end is not known.
	for _, pid := range []int{-1, os.Getppid()} {
		m := &monitor{pid: pid}
		select {
		case st := <-m.waitInit():
			if st.code != 255 || st.signal != 0 {
				t.Errorf("waitInit of pid %d = %+v, want code 255, no signal", pid, st)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("waitInit of pid %d hangs", pid)
		}
	}
}

func TestSiginfoStatus(t *testing.T) {
	// si_code and si_status as waitid(2) fills them for a child.
	p, err := os.StartProcess("/bin/sh", []string{"sh", "-c", "exit 42"}, &os.ProcAttr{})
	if err != nil {
		t.Skip("cannot start /bin/sh:", err)
	}
	defer p.Release()
	var info unix.Siginfo
	for {
		err = unix.Waitid(unix.P_PID, p.Pid, &info, unix.WEXITED, nil)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	code, status := siginfoStatus(&info)
	if code != 1 || status != 42 { // CLD_EXITED
		t.Fatalf("siginfoStatus = %d, %d; want CLD_EXITED (1), 42", code, status)
	}
}
