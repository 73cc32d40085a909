package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthproject/berth/container/monitor"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/ocirt"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ExecOptions are `berth exec`'s flags.
type ExecOptions struct {
	Cmd         []string
	Env         []string
	User        string
	WorkingDir  string
	Tty         bool
	Interactive bool
	Detach      bool
	Privileged  bool
}

// IO is where a process's stdio goes. Resize, for a terminal, delivers
// window sizes (rows, cols).
type IO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Resize <-chan [2]uint16
}

// Exec runs a command in a running container and returns its exit code
// (0 for a detached one).
func (e *Engine) Exec(ctx context.Context, ref string, o ExecOptions, stdio IO) (int, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return -1, err
	}
	if c.State.Status == StatusPaused {
		return -1, fmt.Errorf("container %s is paused: unpause it first: %w", c.Name, errdefs.ErrFailedPrecondition)
	}
	if c.State.Status != StatusRunning {
		return -1, notRunning(c)
	}
	if len(o.Cmd) == 0 {
		return -1, invalid("exec: no command given")
	}
	b, err := os.ReadFile(filepath.Join(e.runDir(c.ID), "bundle", "config.json"))
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", c.Name, err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return -1, err
	}
	p := *spec.Process
	p.Args = o.Cmd
	p.Terminal = o.Tty
	p.Env = mergeEnv(p.Env, o.Env)
	if o.WorkingDir != "" {
		if !path.IsAbs(o.WorkingDir) {
			return -1, invalid("exec: the working directory %q is not an absolute path", o.WorkingDir)
		}
		p.Cwd = o.WorkingDir
	}
	rootfs := e.rootfsDir(c.ID)
	if o.User != "" {
		eu, err := resolveUser(rootfs, o.User, c.HostConfig.GroupAdd)
		if err != nil {
			return -1, err
		}
		p.User = specs.User{UID: uint32(eu.Uid), GID: uint32(eu.Gid)}
		for _, g := range eu.Sgids {
			p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(g))
		}
	}
	if o.Privileged {
		p.Capabilities = &specs.LinuxCapabilities{Bounding: allCaps, Effective: allCaps, Permitted: allCaps}
	}
	if err := checkExecutable(rootfs, o.Cmd[0], p.Env, p.Cwd); err != nil {
		return -1, err
	}
	rt := e.runtime(c)
	eo := ocirt.ExecOptions{Detach: o.Detach}
	var console *consoleListener
	var pidFile string
	if o.Tty {
		if console, err = listenConsole(); err != nil {
			return -1, err
		}
		defer console.close()
		eo.ConsoleSocket = console.path
		// Runtimes hand a terminal to a console socket only when they
		// detach (runc refuses otherwise): the process then becomes our
		// child, as our subreaper's, and we wait for it ourselves.
		if !o.Detach {
			if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
				return -1, fmt.Errorf("exec: become a subreaper: %w", err)
			}
			pidFile = filepath.Join(console.dir, "pid")
			eo.Detach, eo.PidFile = true, pidFile
		}
	} else if !o.Detach {
		eo.Stdin, eo.Stdout, eo.Stderr = files(stdio, o.Interactive)
	}
	cmd, cleanup, err := rt.ExecCmd(ctx, c.ID, &p, eo)
	if err != nil {
		return -1, err
	}
	defer cleanup()
	var copies sync.WaitGroup
	if !o.Tty && !o.Detach {
		// Readers and writers that are not files go through pipes.
		if eo.Stdin == nil && o.Interactive && stdio.Stdin != nil {
			w, err := cmd.StdinPipe()
			if err != nil {
				return -1, err
			}
			go func() { io.Copy(w, stdio.Stdin); w.Close() }()
		}
		if eo.Stdout == nil && stdio.Stdout != nil {
			cmd.Stdout = stdio.Stdout
		}
		if eo.Stderr == nil && stdio.Stderr != nil {
			cmd.Stderr = stdio.Stderr
		}
	}
	var stderr limitedBuffer
	if o.Detach {
		cmd.Stderr = &stderr
	}
	if pidFile != "" {
		cmd.Stderr = &stderr
	}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("exec in %s: %w", c.Name, err)
	}
	if console != nil {
		master, err := console.accept()
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			if stderr.String() != "" {
				return -1, fmt.Errorf("exec in %s: %s", c.Name, strings.TrimSpace(stderr.String()))
			}
			return -1, err
		}
		defer master.Close()
		copies.Add(1)
		go func() {
			defer copies.Done()
			if stdio.Stdout != nil {
				io.Copy(stdio.Stdout, master)
			}
		}()
		if stdio.Stdin != nil && o.Interactive {
			go io.Copy(master, stdio.Stdin)
		}
		if stdio.Resize != nil {
			go func() {
				for sz := range stdio.Resize {
					unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: sz[0], Col: sz[1]})
				}
			}()
		}
	}
	err = cmd.Wait()
	if pidFile != "" {
		if err != nil {
			return -1, fmt.Errorf("exec in %s: %s", c.Name, strings.TrimSpace(stderr.String()))
		}
		code, err := waitPidFile(pidFile)
		copies.Wait()
		return code, err
	}
	copies.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if o.Detach {
			return -1, fmt.Errorf("exec in %s: %s", c.Name, stderr.String())
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

// files returns the stdio that are real files, to pass to the runtime as
// they are (EOF and terminals then behave as the caller's).
func files(stdio IO, interactive bool) (in, out, errf *os.File) {
	if f, ok := stdio.Stdin.(*os.File); ok && interactive {
		in = f
	}
	if f, ok := stdio.Stdout.(*os.File); ok {
		out = f
	}
	if f, ok := stdio.Stderr.(*os.File); ok {
		errf = f
	}
	return
}

type limitedBuffer struct {
	b []byte
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(l.b) < 64<<10 {
		l.b = append(l.b, p...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

// consoleListener receives a pty master from a runtime.
type consoleListener struct {
	ln   *net.UnixListener
	dir  string
	path string
}

func listenConsole() (*consoleListener, error) {
	dir, err := os.MkdirTemp("", "berth-exec-")
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &consoleListener{ln: ln, dir: dir, path: p}, nil
}

func (c *consoleListener) accept() (*os.File, error) {
	c.ln.SetDeadline(time.Now().Add(10 * time.Second))
	conn, err := c.ln.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	f := monitor.ReceiveFd(conn)
	if f == nil {
		return nil, errors.New("the runtime sent no terminal")
	}
	return f, nil
}

func (c *consoleListener) close() {
	c.ln.Close()
	os.RemoveAll(c.dir)
}

// waitPidFile waits for the process whose pid a runtime wrote (our child,
// as subreaper) and returns its exit code, 128+signal for a signal.
func waitPidFile(p string) (int, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return -1, fmt.Errorf("exec: the runtime wrote no pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1, err
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("exec: wait for %d: %w", pid, err)
		}
		break
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}
