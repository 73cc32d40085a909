package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// received is what a test agent got on one connection.
type received struct {
	raw   []byte
	state specs.ContainerProcessState
	fds   []int
	// fdsInFirst says the fds came with the first read, as the spec demands.
	fdsInFirst bool
}

// acceptOne plays the seccomp agent's side of the runtime-spec protocol:
// one connection, JSON until EOF, fds in SCM_RIGHTS.
func acceptOne(ln *net.UnixListener) (*received, error) {
	if err := ln.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return nil, err
	}
	conn, err := ln.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	defer conn.Close()
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("recvmsg: %w", err)
	}
	r := &received{raw: append([]byte{}, buf[:n]...)}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("control message: %w", err)
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			return nil, err
		}
		r.fds = append(r.fds, fds...)
	}
	r.fdsInFirst = len(r.fds) > 0
	rest, err := io.ReadAll(conn)
	if err != nil {
		return r, fmt.Errorf("read rest: %w", err)
	}
	r.raw = append(r.raw, rest...)
	if err := json.Unmarshal(r.raw, &r.state); err != nil {
		return r, fmt.Errorf("state %q: %w", r.raw, err)
	}
	return r, nil
}

func listen(t *testing.T) (string, *net.UnixListener) {
	t.Helper()
	// Socket paths are limited to 108 bytes; t.TempDir() can be long.
	dir, err := os.MkdirTemp("", "berth-seccomp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return sock, ln
}

// TestSendListenerProtocol checks the message and that the fd arrives as a
// working descriptor, with any fd (a pipe here) so no filter is needed.
func TestSendListenerProtocol(t *testing.T) {
	sock, ln := listen(t)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])

	got := make(chan *received, 1)
	errc := make(chan error, 1)
	go func() {
		r, err := acceptOne(ln)
		got <- r
		errc <- err
	}()
	st := &specs.ContainerProcessState{
		Pid:      4422,
		Metadata: "MKNOD=/dev/null",
		State:    specs.State{ID: "c1", Status: specs.StateCreating, Pid: 4422, Bundle: "/b", Annotations: map[string]string{"k": "v"}},
	}
	if err := SendListener(sock, st, p[1]); err != nil {
		t.Fatal(err)
	}
	r, err := <-got, <-errc
	if err != nil {
		t.Fatal(err)
	}
	if st.Fds != nil || st.Version != "" {
		t.Errorf("SendListener modified its argument: %+v", st)
	}
	want := specs.ContainerProcessState{
		Version: specs.Version, Fds: []string{"seccompFd"}, Pid: 4422, Metadata: "MKNOD=/dev/null",
		State: specs.State{Version: specs.Version, ID: "c1", Status: specs.StateCreating, Pid: 4422, Bundle: "/b", Annotations: map[string]string{"k": "v"}},
	}
	gotJSON, _ := json.Marshal(r.state)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("state:\n got %s\nwant %s", gotJSON, wantJSON)
	}
	for _, k := range []string{`"ociVersion"`, `"fds":["seccompFd"]`, `"pid":4422`, `"metadata"`, `"state"`} {
		if !strings.Contains(string(r.raw), k) {
			t.Errorf("message %s lacks %s", r.raw, k)
		}
	}
	if len(r.fds) != 1 || !r.fdsInFirst {
		t.Fatalf("got fds %v (in first message: %v), want exactly one", r.fds, r.fdsInFirst)
	}
	defer unix.Close(r.fds[0])
	if _, err := unix.Write(r.fds[0], []byte("x")); err != nil {
		t.Fatalf("write through the received fd: %v", err)
	}
	var b [1]byte
	if n, err := unix.Read(p[0], b[:]); err != nil || n != 1 || b[0] != 'x' {
		t.Fatalf("the received fd is not the pipe sent: %d %v %q", n, err, b)
	}
}

// TestSendListenerConn: the variant for a connection opened earlier sends
// the same message and closes the connection.
func TestSendListenerConn(t *testing.T) {
	sock, ln := listen(t)
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *received, 1)
	errc := make(chan error, 1)
	go func() {
		r, err := acceptOne(ln)
		got <- r
		errc <- err
	}()
	if err := SendListenerConn(conn, &specs.ContainerProcessState{Pid: 7, State: specs.State{ID: "c2"}}, int(os.Stdin.Fd())); err != nil {
		t.Fatal(err)
	}
	r, err := <-got, <-errc
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range r.fds {
		unix.Close(fd)
	}
	if r.state.Pid != 7 || r.state.State.ID != "c2" || len(r.fds) != 1 || len(r.state.Fds) != 1 {
		t.Fatalf("received %+v with %d fds", r.state, len(r.fds))
	}
	if _, err := conn.Write([]byte("x")); err == nil {
		t.Fatal("connection still open after SendListenerConn")
	}
	if err := SendListenerConn(nil, &specs.ContainerProcessState{}, 0); err == nil {
		t.Fatal("SendListenerConn(nil) succeeded")
	}
}

func TestSendListenerErrors(t *testing.T) {
	st := &specs.ContainerProcessState{Pid: 1}
	missing := filepath.Join(t.TempDir(), "none.sock")
	tests := []struct {
		name string
		path string
		st   *specs.ContainerProcessState
		fd   int
		want string
	}{
		{"no agent", missing, st, 0, "linux.seccomp.listenerPath: connect to seccomp agent"},
		{"empty path", "", st, 0, "linux.seccomp.listenerPath: empty"},
		{"no state", missing, nil, 0, "no container process state"},
		{"bad fd", missing, st, -1, "invalid listener fd -1"},
	}
	for _, tt := range tests {
		err := SendListener(tt.path, tt.st, tt.fd)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: SendListener = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestNotify: a filter with SCMP_ACT_NOTIFY gives Load a listener fd; the
// child hands it over with SendListener; the agent receives the state and the
// fd, gets the notification for the child's mkdirat and answers EXDEV, which
// the child sees as the syscall's result.
func TestNotify(t *testing.T) {
	testutil.RequireRoot(t)
	sock, ln := listen(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "d")
	c := allow(specs.LinuxSyscall{Names: []string{"mkdirat"}, Action: specs.ActNotify})
	c.ListenerPath, c.ListenerMetadata = sock, "berth-test-metadata"

	type agentResult struct {
		r       *received
		syscall string
		tgid    int
		path    uint64
		err     error
	}
	done := make(chan agentResult, 1)
	go func() {
		var res agentResult
		defer func() { done <- res }()
		res.r, res.err = acceptOne(ln)
		if res.err != nil {
			return
		}
		if len(res.r.fds) != 1 {
			res.err = fmt.Errorf("got %d fds", len(res.r.fds))
			return
		}
		fd := libseccomp.ScmpFd(res.r.fds[0])
		// Closing the listener makes the kernel fail any pending
		// notification, so a broken test cannot leave the child blocked.
		defer unix.Close(int(fd))
		req, err := libseccomp.NotifReceive(fd)
		if err != nil {
			res.err = fmt.Errorf("NotifReceive: %w", err)
			return
		}
		// The notification names the thread; the child is blocked in it,
		// so its thread group can be read now.
		res.tgid = tgid(req.Pid)
		res.syscall, _ = req.Data.Syscall.GetName()
		if len(req.Data.Args) > 1 {
			res.path = req.Data.Args[1]
		}
		if err := libseccomp.NotifIDValid(fd, req.ID); err != nil {
			res.err = fmt.Errorf("NotifIDValid: %w", err)
			return
		}
		// libseccomp-golang negates Error for the kernel.
		if err := libseccomp.NotifRespond(fd, &libseccomp.ScmpNotifResp{ID: req.ID, Error: int32(unix.EXDEV)}); err != nil {
			res.err = fmt.Errorf("NotifRespond: %w", err)
		}
	}()

	steps := []string{"send " + sock, "mkdirat " + target + " 0755"}
	r := runChild(t, c, steps, nil)
	a := <-done
	if a.err != nil {
		t.Fatalf("agent: %v; child: %v", a.err, r)
	}
	if r.out["listener"] == "" || r.out["listener"] == "-1" {
		t.Errorf("Load returned listener %q", r.out["listener"])
	}
	if r.out[steps[0]] != "0" {
		t.Errorf("SendListener in the child: %q", r.out[steps[0]])
	}
	if r.out[steps[1]] != "EXDEV" {
		t.Errorf("mkdirat answered by the agent: got %q, want EXDEV", r.out[steps[1]])
	}
	if a.syscall != "mkdirat" || a.tgid != r.pid || a.path == 0 {
		t.Errorf("notification: syscall %q from thread group %d (child %d) path arg %#x", a.syscall, a.tgid, r.pid, a.path)
	}
	st := a.r.state
	if st.Pid != r.pid || st.Metadata != "berth-test-metadata" || len(st.Fds) != 1 || st.Fds[0] != specs.SeccompFdName ||
		st.State.ID != "berth-seccomp-test" || st.Version == "" {
		t.Errorf("state received: %+v", st)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists (%v): the agent refused it", target, err)
	}
	if t.Failed() {
		t.Log(r)
	}
}

func tgid(tid uint32) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Tgid:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
