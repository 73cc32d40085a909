// Package ocirt calls a runc-compatible OCI runtime binary (berth-runtime,
// runc, crun) the way runc's command line defines: create, start, state,
// kill, delete, exec, pause, resume, ps and events --stats. The engine
// talks to runtimes only through it, so any of them can be swapped in.
//
// It owns the command lines and the parsing of what runtimes print, not
// what goes into a bundle or when each step happens.
package ocirt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berthproject/berth/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Runtime is one runtime binary with its state directory.
type Runtime struct {
	// Name is how the user named it ("berth-runtime", "runc", a path).
	Name string
	// Path is the binary.
	Path string
	// Root is the runtime's --root: where it keeps container state.
	Root string
}

// Find resolves a runtime given by name or path. Names are looked up next
// to the berth binary first (where make puts berth-runtime), then on PATH.
func Find(name, besides, stateRoot string) (*Runtime, error) {
	if name == "" {
		name = "berth-runtime"
	}
	var path string
	if strings.ContainsRune(name, '/') {
		abs, err := filepath.Abs(name)
		if err != nil {
			return nil, err
		}
		if fi, err := os.Stat(abs); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return nil, fmt.Errorf("runtime %s is not an executable file: %w", name, errdefs.ErrNotFound)
		}
		path = abs
	} else {
		if besides != "" {
			if p := filepath.Join(besides, name); isExecutable(p) {
				path = p
			}
		}
		if path == "" {
			p, err := exec.LookPath(name)
			if err != nil {
				return nil, fmt.Errorf("runtime %q is not installed (not next to berth, not on PATH): %w", name, errdefs.ErrNotFound)
			}
			path = p
		}
	}
	base := filepath.Base(name)
	return &Runtime{Name: name, Path: path, Root: filepath.Join(stateRoot, sanitize(base))}, nil
}

// HasState reports whether the runtime may hold state for a container.
// runc, crun and berth-runtime keep a directory per container under their
// --root; where it is absent there is nothing to delete, and the engine
// saves a runtime call (a process start) on the hot path of every run.
// Only a definite "not there" says no.
func (r *Runtime) HasState(id string) bool {
	_, err := os.Lstat(filepath.Join(r.Root, id))
	return !errors.Is(err, fs.ErrNotExist)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// Error is a runtime command that failed, with what the runtime said.
type Error struct {
	Runtime string
	Command string
	ID      string
	Message string
	Err     error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("%s %s %s: %s", filepath.Base(e.Runtime), e.Command, e.ID, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// NotExist reports whether the runtime said the container does not exist.
func (e *Error) NotExist() bool {
	m := strings.ToLower(e.Message)
	return strings.Contains(m, "does not exist") || strings.Contains(m, "not exist") || strings.Contains(m, "no such file")
}

// message picks what a runtime said of its failure: the last "msg=" of a
// logrus line (runc, crun), or the last non-empty line.
func message(stderr []byte) string {
	lines := strings.Split(strings.TrimSpace(string(stderr)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		if j := strings.Index(l, "msg="); j >= 0 {
			m := l[j+4:]
			// Quoted, and maybe followed by more key=value fields.
			if q, err := strconv.QuotedPrefix(m); err == nil {
				if uq, err := strconv.Unquote(q); err == nil {
					return uq
				}
			}
			if k := strings.Index(m, " level="); k >= 0 {
				m = m[:k]
			}
			return strings.Trim(m, "\"")
		}
		l = strings.TrimPrefix(l, "Error: ")
		return l
	}
	return ""
}

func (r *Runtime) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, r.Path, append([]string{"--root", r.Root}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs a runtime command to completion.
func (r *Runtime) run(ctx context.Context, id string, args ...string) ([]byte, error) {
	cmd := r.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &Error{Runtime: r.Path, Command: args[0], ID: id, Message: message(stderr.Bytes()), Err: err}
	}
	return stdout.Bytes(), nil
}

// CreateOptions are create's inputs beyond the bundle.
type CreateOptions struct {
	// PidFile receives the container init's pid.
	PidFile string
	// ConsoleSocket receives the pty master when the process has a terminal.
	ConsoleSocket string
	// Stdin, Stdout and Stderr become the container's stdio (when it has no
	// terminal); nil means /dev/null.
	Stdin, Stdout, Stderr *os.File
	// ExtraFiles are passed as fds 3.. (--preserve-fds).
	ExtraFiles []*os.File
}

// Create creates container id from bundle; it is left "created", waiting
// for Start.
func (r *Runtime) Create(ctx context.Context, id, bundle string, o CreateOptions) error {
	if err := os.MkdirAll(r.Root, 0o700); err != nil {
		return err
	}
	args := []string{"create", "--bundle", bundle}
	if o.PidFile != "" {
		args = append(args, "--pid-file", o.PidFile)
	}
	if o.ConsoleSocket != "" {
		args = append(args, "--console-socket", o.ConsoleSocket)
	}
	if len(o.ExtraFiles) > 0 {
		args = append(args, "--preserve-fds", strconv.Itoa(len(o.ExtraFiles)))
	}
	args = append(args, id)
	// The runtime's own stdio is the container's: its errors go through a
	// log file instead, or they would land in the container's output.
	logf, err := os.CreateTemp(r.Root, ".create-log-")
	if err != nil {
		return err
	}
	defer os.Remove(logf.Name())
	defer logf.Close()
	cmd := exec.CommandContext(ctx, r.Path, append([]string{"--root", r.Root, "--log", logf.Name(), "--log-format", "text"}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	setStdio(cmd, o.Stdin, o.Stdout, o.Stderr)
	cmd.ExtraFiles = o.ExtraFiles
	var stderr bytes.Buffer
	if o.Stderr == nil {
		cmd.Stderr = &stderr
	}
	if err := cmd.Run(); err != nil {
		logged, _ := os.ReadFile(logf.Name())
		msg := message(logged)
		if msg == "" {
			msg = message(stderr.Bytes())
		}
		return &Error{Runtime: r.Path, Command: "create", ID: id, Message: msg, Err: err}
	}
	return nil
}

// Start starts a created container's process.
func (r *Runtime) Start(ctx context.Context, id string) error {
	_, err := r.run(ctx, id, "start", id)
	return err
}

// State is what `state` prints (runtime-spec's state, runc's extras).
type State struct {
	ID      string    `json:"id"`
	Pid     int       `json:"pid"`
	Status  string    `json:"status"`
	Bundle  string    `json:"bundle"`
	Created time.Time `json:"created"`
}

// State asks the runtime for a container's state.
func (r *Runtime) State(ctx context.Context, id string) (*State, error) {
	out, err := r.run(ctx, id, "state", id)
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("%s state %s: %w", filepath.Base(r.Path), id, err)
	}
	return &st, nil
}

// Kill sends sig to the container's init (all: to every process).
func (r *Runtime) Kill(ctx context.Context, id string, sig int, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	_, err := r.run(ctx, id, append(args, id, strconv.Itoa(sig))...)
	return err
}

// Delete removes the runtime's record of a container (force: killing it
// first if it still runs).
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	_, err := r.run(ctx, id, append(args, id)...)
	return err
}

// Pause freezes a container; Resume thaws it.
func (r *Runtime) Pause(ctx context.Context, id string) error {
	_, err := r.run(ctx, id, "pause", id)
	return err
}

func (r *Runtime) Resume(ctx context.Context, id string) error {
	_, err := r.run(ctx, id, "resume", id)
	return err
}

// Ps lists the pids of a container's processes.
func (r *Runtime) Ps(ctx context.Context, id string) ([]int, error) {
	out, err := r.run(ctx, id, "ps", "--format", "json", id)
	if err != nil {
		return nil, err
	}
	var pids []int
	if err := json.Unmarshal(out, &pids); err != nil {
		return nil, fmt.Errorf("%s ps %s: %w", filepath.Base(r.Path), id, err)
	}
	return pids, nil
}

// Stats is the part of `events --stats` the engine shows.
type Stats struct {
	CPU struct {
		Usage struct {
			Total uint64 `json:"total"`
		} `json:"usage"`
	} `json:"cpu"`
	Memory struct {
		Cache uint64 `json:"cache"`
		Usage struct {
			Usage uint64 `json:"usage"`
			Limit uint64 `json:"limit"`
		} `json:"usage"`
		Raw map[string]uint64 `json:"raw"`
	} `json:"memory"`
	Pids struct {
		Current uint64 `json:"current"`
		Limit   uint64 `json:"limit"`
	} `json:"pids"`
	Blkio struct {
		IoServiceBytesRecursive []struct {
			Op    string `json:"op"`
			Value uint64 `json:"value"`
		} `json:"ioServiceBytesRecursive"`
	} `json:"blkio"`
}

// Stats asks the runtime for one sample of a container's resource use.
func (r *Runtime) Stats(ctx context.Context, id string) (*Stats, error) {
	out, err := r.run(ctx, id, "events", "--stats", id)
	if err != nil {
		return nil, err
	}
	var ev struct {
		Type string `json:"type"`
		Data Stats  `json:"data"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &ev); err != nil {
		return nil, fmt.Errorf("%s events --stats %s: %w", filepath.Base(r.Path), id, err)
	}
	return &ev.Data, nil
}

// ExecOptions are exec's inputs beyond the process.
type ExecOptions struct {
	Detach        bool
	PidFile       string
	ConsoleSocket string
	Stdin         *os.File
	Stdout        *os.File
	Stderr        *os.File
}

// ExecCmd prepares `exec` of proc in container id; the caller runs it (a
// foreground exec waits for the process and exits with its status).
func (r *Runtime) ExecCmd(ctx context.Context, id string, proc *specs.Process, o ExecOptions) (*exec.Cmd, func(), error) {
	b, err := json.Marshal(proc)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(r.Root, 0o700); err != nil {
		return nil, nil, err
	}
	f, err := os.CreateTemp(r.Root, ".process-")
	if err != nil {
		return nil, nil, err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, nil, fmt.Errorf("exec in %s: write the process file: %w", id, err)
	}
	cleanup := func() { os.Remove(f.Name()) }
	args := []string{"exec", "--process", f.Name()}
	if proc.Terminal {
		args = append(args, "--tty") // runc wants it besides process.terminal
	}
	if o.Detach {
		args = append(args, "--detach")
	}
	if o.PidFile != "" {
		args = append(args, "--pid-file", o.PidFile)
	}
	if o.ConsoleSocket != "" {
		args = append(args, "--console-socket", o.ConsoleSocket)
	}
	cmd := r.command(ctx, append(args, id)...)
	setStdio(cmd, o.Stdin, o.Stdout, o.Stderr)
	return cmd, cleanup, nil
}

// setStdio gives cmd the files that are set; the others stay nil, which
// exec makes /dev/null (a nil *os.File in the interface would make them
// closed descriptors instead, and runtimes refuse those).
func setStdio(cmd *exec.Cmd, in, out, errf *os.File) {
	if in != nil {
		cmd.Stdin = in
	}
	if out != nil {
		cmd.Stdout = out
	}
	if errf != nil {
		cmd.Stderr = errf
	}
}

// IsNotExist reports whether err is a runtime saying the container is not
// there.
func IsNotExist(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.NotExist()
}
