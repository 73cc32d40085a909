package monitor

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/berthproject/berth/container/logs"
	"github.com/berthproject/berth/internal/atomicfile"
	"github.com/berthproject/berth/ocirt"
	"golang.org/x/sys/unix"
)

// monitor is one running monitor.
type monitor struct {
	cfg Config
	rt  *ocirt.Runtime
	log *logs.Writer
	syn *os.File

	pid     int
	started bool
	startMu sync.Mutex

	stdin     *os.File // the write end of the container's stdin, or the pty master
	stdinOnce sync.Once
	master    *os.File // the pty master (terminal containers)

	mu      sync.Mutex
	clients map[*client]bool
}

type client struct {
	conn net.Conn
	out  chan frame
	done chan struct{}
	// takes: the client asked to do the cleanup at exit (FrameTakeCleanup);
	// cleaned: it reported it done; gone is closed when it disconnects.
	takes   bool
	cleaned bool
	gone    chan struct{}
}

type frame struct {
	typ byte
	p   []byte
}

// Run is the monitor process's body: it returns the process's exit code.
// syncPipe (fd 3 of the monitor) tells the CLI how create and start went.
func Run(cfg Config, syncPipe *os.File) int {
	m := &monitor{cfg: cfg, syn: syncPipe, clients: map[*client]bool{},
		rt: &ocirt.Runtime{Name: cfg.Runtime, Path: cfg.Runtime, Root: cfg.RuntimeRoot}}
	if err := m.run(); err != nil {
		m.sync(Sync{Event: "error", Error: err.Error()})
		return 1
	}
	return 0
}

func (m *monitor) sync(s Sync) {
	if m.syn == nil {
		return
	}
	b, _ := json.Marshal(s)
	m.syn.Write(append(b, '\n'))
}

func (m *monitor) run() error {
	// The container's init is the runtime's child; when `runtime create`
	// exits the init is reparented to us, so we can wait for it.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("monitor: become a subreaper: %w", err)
	}
	if m.cfg.LogPath != "" {
		w, err := logs.NewWriter(m.cfg.LogPath, m.cfg.LogMaxSize, m.cfg.LogMaxFiles)
		if err != nil {
			return err
		}
		m.log = w
		defer w.Close()
	}
	ln, sockDir, err := m.listen()
	if err != nil {
		return err
	}
	defer sockDir.Close()
	defer ln.Close()
	go m.accept(ln)

	var outputs sync.WaitGroup
	if err := m.create(&outputs); err != nil {
		return err
	}
	m.sync(Sync{Event: "created", Pid: m.pid})
	exited := m.waitInit()
	if !m.cfg.WaitStart {
		if err := m.start(nil); err != nil {
			m.sync(Sync{Event: "error", Error: err.Error()})
			m.rt.Delete(context.Background(), m.cfg.ID, true)
			return nil
		}
		m.sync(Sync{Event: "started", Pid: m.pid})
	}
	m.syn.Close()
	m.syn = nil
	// From here on the monitor mostly sleeps: hand back what setting up
	// took, so that an idle container costs only what it holds.
	debug.FreeOSMemory()

	st := <-exited
	code, sig := st.code, st.signal
	// A start still answering its client answers before the exit goes out.
	m.startMu.Lock()
	m.startMu.Unlock()
	// The container is gone; its output ends once every process holding a
	// stdio pipe has gone too (a pid namespace ends with its init).
	done := make(chan struct{})
	go func() { outputs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	if m.log != nil {
		m.log.Flush()
	}
	b, _ := json.Marshal(Exit{Code: code, FinishedAt: time.Now().UTC(), Signal: sig})
	atomicfile.WriteFile(filepath.Join(m.cfg.RunDir, "exit.json"), b, 0o600)
	m.exit(code)
	m.closeClients()
	return nil
}

// exit tells the clients the exit code and sees the cleanup done: by the
// attached client that asked for it (the foreground CLI, which has the
// store open already, saving a process start on every run), or by the
// exit command when no client asked, or when the one that did went away
// without reporting the cleanup done.
func (m *monitor) exit(code int) {
	frameFor := func(yours bool) frame {
		p := make([]byte, 5)
		binary.BigEndian.PutUint32(p, uint32(int32(code)))
		if yours {
			p[4] = 1
		}
		return frame{FrameExit, p}
	}
	m.mu.Lock()
	var taker *client
	for c := range m.clients {
		if c.takes {
			taker = c
			break
		}
	}
	m.mu.Unlock()
	if taker != nil {
		m.send(taker, frameFor(true))
		select {
		case <-taker.gone:
		case <-time.After(2 * time.Minute):
		}
		m.mu.Lock()
		cleaned := taker.cleaned
		m.mu.Unlock()
		if cleaned {
			m.broadcast(frameFor(false))
			return
		}
	}
	m.runExitCommand()
	m.broadcast(frameFor(false))
}

func (m *monitor) runExitCommand() {
	if len(m.cfg.ExitCommand) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	exec.CommandContext(ctx, m.cfg.ExitCommand[0], m.cfg.ExitCommand[1:]...).Run()
}

// listen opens the attach socket before the container exists, so that a
// client can be there from its first byte of output.
func (m *monitor) listen() (net.Listener, *os.File, error) {
	p, d, err := socketPath(m.cfg.RunDir, "attach.sock")
	if err != nil {
		return nil, nil, err
	}
	os.Remove(filepath.Join(m.cfg.RunDir, "attach.sock"))
	ln, err := net.Listen("unix", p)
	if err != nil {
		d.Close()
		return nil, nil, fmt.Errorf("monitor: attach socket: %w", err)
	}
	return ln, d, nil
}

func (m *monitor) create(outputs *sync.WaitGroup) error {
	pidFile := filepath.Join(m.cfg.RunDir, "init.pid")
	o := ocirt.CreateOptions{PidFile: pidFile}
	var closeAfter []*os.File
	if m.cfg.Terminal {
		sock, cleanup, err := consoleSocket(m.cfg.RunDir)
		if err != nil {
			return err
		}
		defer cleanup()
		o.ConsoleSocket = sock.path
		got := make(chan *os.File, 1)
		go func() { got <- sock.receive() }()
		if err := m.rt.Create(context.Background(), m.cfg.ID, m.cfg.Bundle, o); err != nil {
			sock.ln.Close()
			return err
		}
		select {
		case f := <-got:
			if f == nil {
				return errors.New("monitor: the runtime sent no terminal")
			}
			m.master, m.stdin = f, f
		case <-time.After(10 * time.Second):
			return errors.New("monitor: the runtime sent no terminal in 10 s")
		}
		outputs.Add(1)
		go m.pump("stdout", m.master, outputs)
	} else {
		outR, outW, err := os.Pipe()
		if err != nil {
			return err
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			return err
		}
		o.Stdout, o.Stderr = outW, errW
		closeAfter = append(closeAfter, outW, errW)
		if m.cfg.Stdin {
			inR, inW, err := os.Pipe()
			if err != nil {
				return err
			}
			o.Stdin = inR
			closeAfter = append(closeAfter, inR)
			m.stdin = inW
		}
		err = m.rt.Create(context.Background(), m.cfg.ID, m.cfg.Bundle, o)
		for _, f := range closeAfter {
			f.Close()
		}
		if err != nil {
			outR.Close()
			errR.Close()
			return err
		}
		outputs.Add(2)
		go m.pump("stdout", outR, outputs)
		go m.pump("stderr", errR, outputs)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("monitor: the runtime wrote no pid file: %w", err)
	}
	m.pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("monitor: pid file: %w", err)
	}
	return nil
}

// start runs `runtime start` once. reply, if set, runs once the container
// started, under the same lock the exit takes first: a client's "started"
// answer is queued before the exit frame, however short the container.
func (m *monitor) start(reply func()) error {
	m.startMu.Lock()
	defer m.startMu.Unlock()
	if !m.started {
		if err := m.rt.Start(context.Background(), m.cfg.ID); err != nil {
			return err
		}
		m.started = true
	}
	if reply != nil {
		reply()
	}
	return nil
}

// exitStatus is how the init ended: its code (128+signal for a signal, as
// shells report it) and the signal that killed it, if one did.
type exitStatus struct{ code, signal int }

// waitInit waits for the container's init through a pidfd (waitid on it
// reaps only the init, never the runtime commands this process runs) and
// delivers how it ended; 255 when that cannot be known.
func (m *monitor) waitInit() <-chan exitStatus {
	ch := make(chan exitStatus, 1)
	go func() {
		fd, err := unix.PidfdOpen(m.pid, 0)
		if err != nil {
			ch <- exitStatus{code: 255}
			return
		}
		defer unix.Close(fd)
		for {
			var info unix.Siginfo
			err := unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				ch <- exitStatus{code: 255}
				return
			}
			code, status := siginfoStatus(&info)
			switch code {
			case 1: // CLD_EXITED
				ch <- exitStatus{code: status}
			default: // killed or dumped
				ch <- exitStatus{code: 128 + status, signal: status}
			}
			return
		}
	}()
	return ch
}

// pump copies one output stream to the log and to every client.
func (m *monitor) pump(stream string, r *os.File, wg *sync.WaitGroup) {
	defer wg.Done()
	defer r.Close()
	typ := FrameStdout
	if stream == "stderr" {
		typ = FrameStderr
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			p := append([]byte(nil), buf[:n]...)
			if m.log != nil {
				m.log.Write(stream, p)
			}
			m.broadcast(frame{typ, p})
		}
		if err != nil {
			return
		}
	}
}

func (m *monitor) accept(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		c := &client{conn: conn, out: make(chan frame, 1024), done: make(chan struct{}), gone: make(chan struct{})}
		m.mu.Lock()
		m.clients[c] = true
		m.mu.Unlock()
		go m.serveWrites(c)
		go m.serveReads(c)
	}
}

func (m *monitor) serveWrites(c *client) {
	for f := range c.out {
		if err := writeFrame(c.conn, f.typ, f.p); err != nil {
			break
		}
	}
	c.conn.Close()
	close(c.done)
}

func (m *monitor) drop(c *client) {
	m.mu.Lock()
	if m.clients[c] {
		delete(m.clients, c)
		close(c.out)
	}
	m.mu.Unlock()
}

func (m *monitor) send(c *client, f frame) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.clients[c] {
		return
	}
	select {
	case c.out <- f:
	default:
		// A client that does not keep up is let go rather than let it
		// stall the container's output.
		delete(m.clients, c)
		close(c.out)
	}
}

func (m *monitor) broadcast(f frame) {
	m.mu.Lock()
	cs := make([]*client, 0, len(m.clients))
	for c := range m.clients {
		cs = append(cs, c)
	}
	m.mu.Unlock()
	for _, c := range cs {
		m.send(c, f)
	}
}

func (m *monitor) closeClients() {
	m.mu.Lock()
	cs := make([]*client, 0, len(m.clients))
	for c := range m.clients {
		cs = append(cs, c)
		delete(m.clients, c)
		close(c.out)
	}
	m.mu.Unlock()
	for _, c := range cs {
		select {
		case <-c.done:
		case <-time.After(2 * time.Second):
			c.conn.Close()
		}
	}
}

func (m *monitor) serveReads(c *client) {
	defer close(c.gone)
	defer m.drop(c)
	for {
		typ, p, err := readFrame(c.conn)
		if err != nil {
			return
		}
		switch typ {
		case FrameStart:
			if err := m.start(func() { m.send(c, frame{FrameStarted, []byte(strconv.Itoa(m.pid))}) }); err != nil {
				m.send(c, frame{FrameFailed, []byte(err.Error())})
			}
		case FrameTakeCleanup:
			m.mu.Lock()
			c.takes = true
			m.mu.Unlock()
		case FrameCleanedUp:
			m.mu.Lock()
			c.cleaned = true
			m.mu.Unlock()
		case FrameStdin:
			if m.stdin != nil {
				m.stdin.Write(p)
			}
		case FrameEOF:
			if m.stdin != nil && m.master == nil && m.cfg.StdinOnce {
				m.stdinOnce.Do(func() { m.stdin.Close() })
			}
		case FrameResize:
			if m.master != nil && len(p) == 4 {
				ws := &unix.Winsize{Row: binary.BigEndian.Uint16(p[:2]), Col: binary.BigEndian.Uint16(p[2:])}
				unix.IoctlSetWinsize(int(m.master.Fd()), unix.TIOCSWINSZ, ws)
			}
		case FrameSignal:
			if len(p) == 4 && m.pid > 0 {
				unix.Kill(m.pid, unix.Signal(binary.BigEndian.Uint32(p)))
			}
		}
	}
}

// console is the socket the runtime sends the pty master to.
type console struct {
	ln   *net.UnixListener
	path string
}

// consoleSocket listens where the runtime can connect: under the run
// directory when that path is short enough, else in a private temporary
// directory.
func consoleSocket(runDir string) (*console, func(), error) {
	p := filepath.Join(runDir, "console.sock")
	dir := ""
	if len(p) > 100 {
		d, err := os.MkdirTemp("", "berth-console-")
		if err != nil {
			return nil, nil, err
		}
		dir, p = d, filepath.Join(d, "sock")
	}
	os.Remove(p)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("monitor: console socket: %w", err)
	}
	return &console{ln: ln, path: p}, func() {
		ln.Close()
		os.Remove(p)
		if dir != "" {
			os.RemoveAll(dir)
		}
	}, nil
}

// receive accepts the runtime's connection and takes the fd it sends.
func (c *console) receive() *os.File {
	conn, err := c.ln.AcceptUnix()
	if err != nil {
		return nil
	}
	defer conn.Close()
	return ReceiveFd(conn)
}

// ReceiveFd reads one message carrying a file descriptor (SCM_RIGHTS), as
// runtimes send a pty master to a console socket.
func ReceiveFd(conn *net.UnixConn) *os.File {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return nil
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return nil
	}
	return os.NewFile(uintptr(fds[0]), "pty-master")
}

// siginfoStatus reads si_code and si_status of a SIGCHLD siginfo (the
// union x/sys leaves opaque: si_pid, si_uid, si_status follow the header).
func siginfoStatus(info *unix.Siginfo) (code, status int) {
	b := (*[128]byte)(unsafe.Pointer(info))
	return int(info.Code), int(int32(binary.NativeEndian.Uint32(b[24:28])))
}
