package runtime

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/berthproject/berth/cgroup"
)

// RunOptions are run's flags: create's, plus whether to wait.
type RunOptions struct {
	CreateOptions
	Detach bool // return once the container runs
	Keep   bool // keep the container's state after it exits
}

// Run creates and starts a container. Without Detach it forwards signals to
// the container, relays its terminal when it has one, waits for it to exit,
// deletes it (unless Keep) and returns its exit status the way a shell
// reports it (128+signal for a killed process).
func (r *Runtime) Run(o RunOptions) (int, error) {
	if !o.Detach {
		// The init is a grandchild (it forks into its pid namespace); as a
		// subreaper we still wait for it.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return -1, fmt.Errorf("become subreaper: %w", err)
		}
		o.foreground = o.ConsoleSocket == ""
	}
	sigs := make(chan os.Signal, 64)
	if !o.Detach {
		// Catch signals from now on so none meant for the container is lost
		// between its start and the wait.
		signal.Notify(sigs)
		defer signal.Stop(sigs)
	}
	s, err := r.create(o.CreateOptions)
	if err != nil {
		return -1, err
	}
	if err := r.Start(o.ID); err != nil {
		if s.console != nil {
			s.console.Close()
		}
		r.Delete(o.ID, true)
		return -1, err
	}
	if o.Detach {
		if s.console != nil {
			s.console.Close()
		}
		return 0, nil
	}
	code := waitForeground(s.st.Pid, s.console, sigs)
	if !o.Keep {
		if err := r.Delete(o.ID, true); err != nil {
			return code, err
		}
	}
	return code, nil
}

// waitForeground relays signals (and the terminal, when console is set)
// until pid exits, and returns its exit status.
func waitForeground(pid int, console *os.File, sigs chan os.Signal) int {
	var relay sync.WaitGroup
	var restore func()
	if console != nil {
		if term.IsTerminal(int(os.Stdin.Fd())) {
			if old, err := term.MakeRaw(int(os.Stdin.Fd())); err == nil {
				restore = func() { term.Restore(int(os.Stdin.Fd()), old) }
			}
			resize(console)
		}
		go io.Copy(console, os.Stdin)
		relay.Add(1)
		go func() {
			defer relay.Done()
			io.Copy(os.Stdout, console)
		}()
	}
	exited := make(chan int, 1)
	go func() { exited <- reap(pid) }()
	var code int
loop:
	for {
		select {
		case code = <-exited:
			break loop
		case s := <-sigs:
			sig := s.(unix.Signal)
			switch sig {
			case unix.SIGCHLD, unix.SIGURG, unix.SIGPIPE:
			case unix.SIGWINCH:
				if console != nil {
					resize(console)
				}
			default:
				unix.Kill(pid, sig)
			}
		}
	}
	if console != nil {
		// The slave is gone with the process; the copy ends on EIO.
		relay.Wait()
		console.Close()
	}
	if restore != nil {
		restore()
	}
	return code
}

// reap waits for pid, reaping any other orphan handed to this subreaper on
// the way, and returns pid's exit status.
func reap(pid int) int {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1
		}
		if got != pid {
			continue
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus()
		case ws.Signaled():
			return 128 + int(ws.Signal())
		}
	}
}

func resize(console *os.File) {
	ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return
	}
	unix.IoctlSetWinsize(int(console.Fd()), unix.TIOCSWINSZ, ws)
}

// ExecOptions are exec's flags.
type ExecOptions struct {
	ID            string
	Process       *specs.Process
	Detach        bool
	PidFile       string
	ConsoleSocket string
	PreserveFDs   int
}

// Exec runs a new process in a running container. Without Detach it waits
// and returns the process's exit status.
func (r *Runtime) Exec(o ExecOptions) (int, error) {
	st, err := r.load(o.ID)
	if err != nil {
		return -1, err
	}
	if s := r.status(st); s != Running {
		return -1, fmt.Errorf("cannot exec in a %s container: %w", s, ErrInvalidState)
	}
	p := o.Process
	if p == nil || len(p.Args) == 0 {
		return -1, fmt.Errorf("exec: no command given")
	}
	if p.Terminal && o.ConsoleSocket == "" && o.Detach {
		return -1, fmt.Errorf("exec -t -d needs --console-socket: a detached process needs somewhere to send its terminal")
	}
	if !p.Terminal && o.ConsoleSocket != "" {
		return -1, fmt.Errorf("--console-socket given without -t: there is no terminal to send")
	}
	var sigs chan os.Signal
	if !o.Detach {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return -1, fmt.Errorf("become subreaper: %w", err)
		}
		sigs = make(chan os.Signal, 64)
		signal.Notify(sigs)
		defer signal.Stop(sigs)
	}
	// Join every namespace of the init that differs from ours.
	spec := *st.Config
	linux := *spec.Linux
	linux.Namespaces = nil
	for _, ns := range []struct {
		t    specs.LinuxNamespaceType
		proc string
	}{
		{specs.UserNamespace, "user"}, {specs.MountNamespace, "mnt"}, {specs.PIDNamespace, "pid"},
		{specs.NetworkNamespace, "net"}, {specs.IPCNamespace, "ipc"}, {specs.UTSNamespace, "uts"},
		{specs.CgroupNamespace, "cgroup"}, {specs.TimeNamespace, "time"},
	} {
		theirs := fmt.Sprintf("/proc/%d/ns/%s", st.Pid, ns.proc)
		if sameFile(theirs, "/proc/self/ns/"+ns.proc) {
			continue
		}
		if _, err := os.Stat(theirs); err != nil {
			continue
		}
		linux.Namespaces = append(linux.Namespaces, specs.LinuxNamespace{Type: ns.t, Path: theirs})
	}
	spec.Linux = &linux
	var cg cgroup.Manager
	if len(st.CgroupPaths) > 0 {
		if cg, err = cgroup.Load(st.CgroupPaths); err != nil {
			return -1, err
		}
	}
	ic := &initConfig{
		Exec:        true,
		ID:          st.ID,
		Spec:        st.Config,
		Process:     p,
		Bundle:      st.Bundle,
		Rootfs:      st.Rootfs,
		PreserveFDs: o.PreserveFDs,
	}
	co := CreateOptions{ID: o.ID, ConsoleSocket: o.ConsoleSocket, PreserveFDs: o.PreserveFDs, foreground: !o.Detach}
	proc, err := r.startInit(ic, &spec, cg, nil, co)
	if err != nil {
		return -1, err
	}
	console, err := r.driveInit(proc, st, co)
	if err != nil {
		unix.Kill(proc.pid, unix.SIGKILL)
		return -1, err
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, proc.pid); err != nil {
			unix.Kill(proc.pid, unix.SIGKILL)
			return -1, err
		}
	}
	if o.Detach {
		if console != nil {
			console.Close()
		}
		return 0, nil
	}
	return waitForeground(proc.pid, console, sigs), nil
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
