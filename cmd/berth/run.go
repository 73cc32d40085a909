package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"

	"github.com/berthproject/berth/container"
	"github.com/berthproject/berth/container/monitor"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// Exit codes beyond 125, as Docker's and a shell's.
const (
	exitCannotInvoke = 126
	exitNotFound     = 127
)

// createFlags are run's and create's flags.
type createFlags struct {
	o           container.CreateOptions
	entrypoint  string
	labels      []string
	stopTimeout int
	detach      bool
	detachKeys  string
	sigProxy    bool
	pull        string
	platform    string
	cidfile     string
}

func addCreateFlags(fl *pflag.FlagSet, f *createFlags, run bool) {
	o := &f.o
	fl.SetInterspersed(false)
	// -h is --hostname, as in Docker: help is --help only.
	fl.Bool("help", false, "help for this command")
	fl.StringVar(&o.Name, "name", "", "name the container")
	fl.StringArrayVarP(&o.Env, "env", "e", nil, "set an environment variable (NAME=VALUE, or NAME to take it from here)")
	fl.StringArrayVar(&o.EnvFiles, "env-file", nil, "read environment variables from a file")
	fl.StringVarP(&o.WorkingDir, "workdir", "w", "", "working directory inside the container")
	fl.StringVarP(&o.User, "user", "u", "", "user (name|uid[:group|gid]) to run as")
	fl.StringArrayVar(&o.GroupAdd, "group-add", nil, "additional groups to join")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "overwrite the image's entrypoint (\"\" to clear it)")
	fl.StringVarP(&o.Hostname, "hostname", "h", "", "container host name")
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "set a label (KEY=VALUE)")
	fl.BoolVarP(&o.Tty, "tty", "t", false, "allocate a pseudo-terminal")
	fl.BoolVarP(&o.Interactive, "interactive", "i", false, "keep stdin open")
	fl.BoolVar(&o.AutoRemove, "rm", false, "remove the container when it exits")
	fl.BoolVar(&o.Init, "init", false, "run an init inside the container that forwards signals and reaps processes")
	fl.StringArrayVarP(&o.Volumes, "volume", "v", nil, "bind mount a volume (NAME:/path[:ro] or /host:/path[:ro])")
	fl.StringArrayVar(&o.Mounts, "mount", nil, "attach a mount: type=bind|volume|tmpfs,source=,target=[,readonly]")
	fl.StringArrayVar(&o.Tmpfs, "tmpfs", nil, "mount a tmpfs (/path[:options])")
	fl.BoolVar(&o.ReadOnly, "read-only", false, "mount the container's root file system read-only")
	fl.StringVarP(&o.Memory, "memory", "m", "", "memory limit (512m, 2g)")
	fl.StringVar(&o.CPUs, "cpus", "", "number of CPUs (1.5)")
	fl.Int64VarP(&o.CPUShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fl.Int64Var(&o.PidsLimit, "pids-limit", 0, "limit the number of processes (-1: unlimited)")
	fl.StringArrayVar(&o.CapAdd, "cap-add", nil, "add a Linux capability")
	fl.StringArrayVar(&o.CapDrop, "cap-drop", nil, "drop a Linux capability")
	fl.BoolVar(&o.Privileged, "privileged", false, "give the container every capability and device")
	fl.StringArrayVar(&o.SecurityOpt, "security-opt", nil, "seccomp=FILE|unconfined, no-new-privileges")
	fl.StringArrayVar(&o.Ulimits, "ulimit", nil, "set a ulimit (nofile=1024:2048)")
	fl.StringVar(&o.StopSignal, "stop-signal", "", "signal to stop the container (default SIGTERM)")
	fl.IntVar(&f.stopTimeout, "stop-timeout", -1, "seconds to wait for the stop signal before killing")
	fl.StringVar(&o.LogDriver, "log-driver", "", "json-file (default) or none")
	fl.StringArrayVar(&o.LogOpts, "log-opt", nil, "log option: max-size=10m, max-file=3")
	fl.StringVar(&o.Runtime, "runtime", os.Getenv("BERTH_RUNTIME"), "OCI runtime: berth-runtime (default), runc, crun, or a path (BERTH_RUNTIME sets the default)")
	fl.StringVar(&f.cidfile, "cidfile", "", "write the container ID to this file")
	fl.StringVar(&o.Network, "network", "", "none (default) or host")
	fl.StringVar(&o.Network, "net", "", "same as --network")
	fl.MarkHidden("net")
	fl.StringVar(&o.Restart, "restart", "no", "restart policy: only no (see berth generate systemd)")
	fl.StringVar(&f.pull, "pull", "missing", "pull policy (berth pulls from registries in a later version: images must be loaded)")
	fl.StringVar(&f.platform, "platform", "", "platform of the image (the host's only)")
	if run {
		fl.BoolVarP(&f.detach, "detach", "d", false, "run in the background and print the container ID")
		fl.StringVar(&f.detachKeys, "detach-keys", "ctrl-p,ctrl-q", "key sequence that detaches from a container with a terminal")
		fl.BoolVar(&f.sigProxy, "sig-proxy", true, "pass the signals berth receives to the container")
	}
}

// options finishes CreateOptions from the parsed flags and arguments.
func (f *createFlags) options(cmd *cobra.Command, args []string) (container.CreateOptions, error) {
	o := f.o
	o.Image, o.Cmd = args[0], args[1:]
	if cmd.Flags().Changed("entrypoint") {
		ep := f.entrypoint
		o.Entrypoint = &ep
	}
	if len(f.labels) > 0 {
		o.Labels = map[string]string{}
		for _, l := range f.labels {
			k, v, _ := strings.Cut(l, "=")
			o.Labels[k] = v
		}
	}
	if cmd.Flags().Changed("stop-timeout") {
		t := f.stopTimeout
		o.StopTimeout = &t
	}
	if f.platform != "" && f.platform != "linux/amd64" && f.platform != "linux" {
		return o, usageError(cmd, fmt.Errorf("--platform %s: berth runs the host's platform only", f.platform))
	}
	return o, nil
}

// writeCidfile writes the container ID where --cidfile says, refusing to
// overwrite a file (as Docker does).
func (f *createFlags) writeCidfile(c *container.Container) error {
	if f.cidfile == "" {
		return nil
	}
	fh, err := os.OpenFile(f.cidfile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("--cidfile %s: %w", f.cidfile, err)
	}
	defer fh.Close()
	_, err = fh.WriteString(c.ID)
	return err
}

// containerError maps an error to Docker's exit codes: 126 and 127 for a
// command that cannot run, 125 for anything else.
func containerError(err error) error {
	var ee *container.ExecError
	if errors.As(err, &ee) {
		return &exitError{code: ee.Code, err: err}
	}
	return err
}

func createCmd(a *app) *cobra.Command {
	f := &createFlags{}
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a container",
		Args:  minArgs(1, "the image"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(cmd, args)
			if err != nil {
				return err
			}
			// As in Docker, a container created with -i gets EOF on its
			// stdin when the client that attached (start -ai) ends its input.
			o.Attached = true
			e, err := a.containers()
			if err != nil {
				return err
			}
			c, err := e.Create(cmd.Context(), o)
			if err != nil {
				return err
			}
			if err := f.writeCidfile(c); err != nil {
				e.Remove(context.WithoutCancel(cmd.Context()), c.ID, true, true)
				return err
			}
			fmt.Fprintln(a.stdout, c.ID)
			return nil
		},
	}
	addCreateFlags(cmd.Flags(), f, false)
	return cmd
}

func runCmd(a *app) *cobra.Command {
	f := &createFlags{}
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a container",
		Args:  minArgs(1, "the image"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(cmd, args)
			if err != nil {
				return err
			}
			o.Attached = !f.detach
			e, err := a.containers()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := e.Create(ctx, o)
			if err != nil {
				return err
			}
			// A run that could not start its container leaves nothing:
			// run is create and start, and it failed.
			undo := func() { e.Remove(context.WithoutCancel(ctx), c.ID, true, true) }
			if err := f.writeCidfile(c); err != nil {
				undo()
				return err
			}
			if f.detach {
				if _, err := e.Start(ctx, c.ID, container.StartOptions{}); err != nil {
					undo()
					return containerError(err)
				}
				fmt.Fprintln(a.stdout, c.ID)
				return nil
			}
			code, err := a.attachAndStart(ctx, e, c, true, f.detachKeys, f.sigProxy)
			if err != nil {
				undo()
				return containerError(err)
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	addCreateFlags(cmd.Flags(), f, true)
	return cmd
}

// attachAndStart starts a container with the caller attached (start:
// starting it through the monitor once attached), proxies the terminal,
// stdin and signals, and returns its exit code.
func (a *app) attachAndStart(ctx context.Context, e *container.Engine, c *container.Container, start bool, detachKeys string, sigProxy bool) (int, error) {
	if start {
		var err error
		if c, err = e.Start(ctx, c.ID, container.StartOptions{Attach: true}); err != nil {
			return -1, err
		}
	}
	cl, err := e.Attach(ctx, c)
	if err != nil {
		return -1, err
	}
	defer cl.Close()
	// This process has the store open already: doing the cleanup here at
	// exit spares the monitor starting berth for it.
	cl.TakeCleanup()
	stdinFile, _ := a.stdin.(*os.File)
	tty := c.Config.Tty && stdinFile != nil && term.IsTerminal(int(stdinFile.Fd()))
	if tty {
		if state, err := term.MakeRaw(int(stdinFile.Fd())); err == nil {
			defer term.Restore(int(stdinFile.Fd()), state)
		}
		sendSize := func() {
			if w, h, err := term.GetSize(int(stdinFile.Fd())); err == nil {
				cl.Resize(uint16(h), uint16(w))
			}
		}
		sendSize()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, unix.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				sendSize()
			}
		}()
	}
	if sigProxy && !c.Config.Tty {
		sigs := make(chan os.Signal, 8)
		signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
		defer signal.Stop(sigs)
		go func() {
			for s := range sigs {
				cl.Signal(s.(unix.Signal))
			}
		}()
	}
	detached := make(chan struct{})
	var detachOnce sync.Once
	if c.Config.OpenStdin && a.stdin != nil {
		in := a.stdin
		if c.Config.Tty && detachKeys != "" {
			keys, err := parseDetachKeys(detachKeys)
			if err != nil {
				return -1, err
			}
			in = &detachReader{r: in, keys: keys, onDetach: func() { detachOnce.Do(func() { close(detached) }) }}
		}
		go cl.SendStdin(in)
	}
	if start {
		if err := cl.Start(); err != nil {
			return -1, err
		}
	}
	type result struct {
		code int
		err  error
	}
	res := make(chan result, 1)
	go func() {
		code, err := cl.Receive(a.stdout, a.stderr, nil)
		res <- result{code, err}
	}()
	select {
	case r := <-res:
		var se *monitor.StartError
		if errors.As(r.err, &se) {
			return -1, errors.New(se.Msg)
		}
		if errors.Is(r.err, monitor.ErrDetached) {
			// The monitor went away without an exit frame: ask the record.
			return e.Wait(context.WithoutCancel(ctx), c.ID)
		}
		if r.err == nil && cl.CleanupIsYours() {
			if err := e.Cleanup(context.WithoutCancel(ctx), c.ID); err == nil {
				cl.CleanedUp()
			}
		}
		return r.code, r.err
	case <-detached:
		fmt.Fprintln(a.stderr, "\r\nread escape sequence")
		return 0, nil
	}
}

// parseDetachKeys reads Docker's --detach-keys (ctrl-p,ctrl-q, or letters).
func parseDetachKeys(s string) ([]byte, error) {
	var keys []byte
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		switch {
		case strings.HasPrefix(k, "ctrl-") && len(k) == 6:
			c := k[5]
			switch {
			case c >= 'a' && c <= 'z':
				keys = append(keys, c-'a'+1)
			case c == '@':
				keys = append(keys, 0)
			case c >= '[' && c <= '_':
				keys = append(keys, c-'['+27)
			default:
				return nil, fmt.Errorf("--detach-keys %q: unknown key %q", s, k)
			}
		case len(k) == 1:
			keys = append(keys, k[0])
		default:
			return nil, fmt.Errorf("--detach-keys %q: unknown key %q (ctrl-a .. ctrl-z, ctrl-@, ctrl-[ .. ctrl-_, or a letter)", s, k)
		}
	}
	return keys, nil
}

// detachReader passes input through until it sees the detach sequence.
type detachReader struct {
	r        io.Reader
	keys     []byte
	matched  int
	onDetach func()
	held     []byte
}

func (d *detachReader) Read(p []byte) (int, error) {
	buf := make([]byte, len(p))
	n, err := d.r.Read(buf)
	var out bytes.Buffer
	for _, b := range buf[:n] {
		if b == d.keys[d.matched] {
			d.held = append(d.held, b)
			d.matched++
			if d.matched == len(d.keys) {
				d.onDetach()
				// Stop reading: a detached client sends nothing more.
				select {}
			}
			continue
		}
		out.Write(d.held)
		d.held, d.matched = nil, 0
		out.WriteByte(b)
	}
	return copy(p, out.Bytes()), err
}

func startCmd(a *app) *cobra.Command {
	var attach, interactive bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  minArgs(1, "the containers"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if attach || interactive {
				if len(args) > 1 {
					return usageError(cmd, errors.New("you cannot start and attach several containers at once"))
				}
				c, err := e.Get(ctx, args[0])
				if err != nil {
					return err
				}
				code, err := a.attachAndStart(ctx, e, c, true, detachKeys, true)
				if err != nil {
					return containerError(err)
				}
				if code != 0 {
					return &exitError{code: code}
				}
				return nil
			}
			var last error
			for _, ref := range args {
				if _, err := e.Start(ctx, ref, container.StartOptions{}); err != nil {
					fmt.Fprintln(a.stderr, "Error: "+message(err))
					last = containerError(err)
					continue
				}
				fmt.Fprintln(a.stdout, ref)
			}
			if last != nil {
				var ee *exitError
				if errors.As(last, &ee) {
					return &exitError{code: ee.code}
				}
				return &exitError{code: exitBerth}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "attach stdout and stderr, and exit with the container's code")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "attach stdin too")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "ctrl-p,ctrl-q", "key sequence that detaches from a container with a terminal")
	return cmd
}

func attachCmd(a *app) *cobra.Command {
	var detachKeys string
	var noStdin, sigProxy bool
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach to a running container's input and output",
		Args:  exactArgs(1, "the container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			c, err := e.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if c.State.Status != container.StatusRunning {
				return fmt.Errorf("you cannot attach to a stopped container, start it first")
			}
			if noStdin {
				c.Config.OpenStdin = false
			}
			code, err := a.attachAndStart(cmd.Context(), e, c, false, detachKeys, sigProxy)
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "ctrl-p,ctrl-q", "key sequence that detaches")
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "do not attach stdin")
	cmd.Flags().BoolVar(&sigProxy, "sig-proxy", true, "pass signals to the container")
	return cmd
}
