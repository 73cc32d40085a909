// Command berth-runtime is berth's OCI runtime with runc's command line, so
// that podman, containerd and berth's own engine can run containers with it.
// It parses flags and prints; the runtime package does the work.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/runtime"
)

// Set by the linker (see the Makefile).
var (
	version   = "dev"
	gitCommit = "unknown"
)

// exitError carries a process's exit status out through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

type globals struct {
	root          string
	logPath       string
	logFormat     string
	debug         bool
	systemdCgroup bool
	logFile       *os.File
}

func main() {
	if runtime.IsInit() {
		runtime.InitMain()
		return
	}
	g := &globals{}
	root := newRootCommand(g)
	root.SetArgs(normalizeArgs(os.Args[1:]))
	err := root.Execute()
	if g.logFile != nil {
		defer g.logFile.Close()
	}
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		g.logError(err)
		fmt.Fprintln(os.Stderr, "berth-runtime:", err)
		os.Exit(1)
	}
}

// normalizeArgs accepts runc's single-dash long flags (-bundle, -pid-file),
// which urfave/cli allowed and scripts still use, by doubling the dash.
func normalizeArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && longFlags[name] {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}

var longFlags = map[string]bool{
	"root": true, "log": true, "log-format": true, "debug": true, "systemd-cgroup": true, "bundle": true,
	"console-socket": true, "pid-file": true, "no-pivot": true, "no-new-keyring": true, "preserve-fds": true,
	"detach": true, "keep": true, "force": true, "all": true, "format": true, "process": true, "tty": true,
	"cwd": true, "env": true, "user": true, "cap": true, "no-new-privs": true, "stats": true, "interval": true,
	"resources": true, "rootless": true,
}

func (g *globals) rt() *runtime.Runtime {
	return &runtime.Runtime{Root: g.root, Log: slog.Default()}
}

// logError records a failure in the --log file, in JSON when asked: that is
// where containerd and podman look for a runtime's error message.
func (g *globals) logError(err error) {
	if g.logFile == nil {
		return
	}
	if g.logFormat == "json" {
		b, _ := json.Marshal(map[string]string{"level": "error", "msg": err.Error(), "time": time.Now().Format(time.RFC3339Nano)})
		g.logFile.Write(append(b, '\n'))
		return
	}
	fmt.Fprintf(g.logFile, "time=%q level=error msg=%q\n", time.Now().Format(time.RFC3339Nano), err.Error())
}

func defaultRoot() string {
	if os.Geteuid() == 0 {
		return "/run/berth-runtime"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "berth-runtime")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("berth-runtime-%d", os.Geteuid()))
}

func newRootCommand(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "berth-runtime",
		Short:         "berth's OCI container runtime (runc-compatible command line)",
		Version:       fmt.Sprintf("%s\ncommit: %s\nspec: %s", version, gitCommit, runtimeSpecVersion()),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if g.systemdCgroup {
				return errors.New("--systemd-cgroup is not supported: berth-runtime manages cgroupfs directly; drop the flag (podman: --cgroup-manager cgroupfs)")
			}
			level := slog.LevelWarn
			if g.debug {
				level = slog.LevelDebug
			}
			var w io.Writer = os.Stderr
			if g.logPath != "" {
				f, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0o644)
				if err != nil {
					return fmt.Errorf("--log %s: %w", g.logPath, err)
				}
				g.logFile = f
				w = f
			}
			var h slog.Handler
			switch g.logFormat {
			case "json":
				h = slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
			case "text", "":
				h = slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
			default:
				return fmt.Errorf("--log-format %q: want text or json", g.logFormat)
			}
			slog.SetDefault(slog.New(h))
			return nil
		},
	}
	root.SetVersionTemplate("berth-runtime version {{.Version}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&g.root, "root", defaultRoot(), "directory for container state")
	pf.StringVar(&g.logPath, "log", "", "log file (default stderr)")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	pf.BoolVar(&g.debug, "debug", false, "log debug messages")
	pf.BoolVar(&g.systemdCgroup, "systemd-cgroup", false, "manage cgroups through systemd (not supported)")
	pf.String("criu", "criu", "ignored: checkpoint/restore is not supported")
	pf.String("rootless", "auto", "ignored: rootless mode is detected")
	root.Flags().BoolP("version", "v", false, "print the version")

	root.AddCommand(
		createCommand(g), startCommand(g), runCommand(g), stateCommand(g), killCommand(g),
		deleteCommand(g), execCommand(g), listCommand(g), psCommand(g), pauseCommand(g),
		resumeCommand(g), eventsCommand(g), updateCommand(g), specCommand(g), featuresCommand(g),
	)
	return root
}

func exactID(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s: expects exactly one container id, got %d arguments (see --help)", cmd.Name(), len(args))
	}
	return nil
}

func addCreateFlags(cmd *cobra.Command, o *runtime.CreateOptions) {
	f := cmd.Flags()
	f.StringVarP(&o.Bundle, "bundle", "b", ".", "path to the bundle directory")
	f.StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket that receives the pty master when process.terminal is set")
	f.StringVar(&o.PidFile, "pid-file", "", "file to write the init's pid to")
	f.BoolVar(&o.NoPivot, "no-pivot", false, "use MS_MOVE and chroot instead of pivot_root (for ramdisk roots)")
	f.Bool("no-new-keyring", false, "ignored: no session keyring is created")
	f.IntVar(&o.PreserveFDs, "preserve-fds", 0, "pass N extra file descriptors (3..3+N-1) to the container")
}

func createCommand(g *globals) *cobra.Command {
	var o runtime.CreateOptions
	cmd := &cobra.Command{
		Use:   "create [flags] CONTAINER_ID",
		Short: "create a container from a bundle; it waits for start",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			return g.rt().Create(o)
		},
	}
	addCreateFlags(cmd, &o)
	return cmd
}

func startCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "start CONTAINER_ID",
		Short: "start a created container's program",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.rt().Start(args[0])
		},
	}
}

func runCommand(g *globals) *cobra.Command {
	var o runtime.RunOptions
	cmd := &cobra.Command{
		Use:   "run [flags] CONTAINER_ID",
		Short: "create and start a container, and wait for it unless detached",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			code, err := g.rt().Run(o)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	addCreateFlags(cmd, &o.CreateOptions)
	cmd.Flags().BoolVarP(&o.Detach, "detach", "d", false, "return once the container has started")
	cmd.Flags().BoolVar(&o.Keep, "keep", false, "keep the container's state after it exits")
	cmd.Flags().Bool("no-subreaper", false, "ignored")
	return cmd
}

func stateCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "state CONTAINER_ID",
		Short: "print a container's state as JSON",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.rt().State(args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), st)
		},
	}
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func killCommand(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "kill [flags] CONTAINER_ID [SIGNAL]",
		Short: "send a signal (default SIGTERM) to a container's init, or with --all to every process",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return fmt.Errorf("kill: expects a container id and an optional signal, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			sigName := "SIGTERM"
			if len(args) == 2 {
				sigName = args[1]
			}
			sig, err := runtime.ParseSignal(sigName)
			if err != nil {
				return err
			}
			return g.rt().Kill(args[0], sig, all)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "signal every process in the container")
	return cmd
}

func deleteCommand(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete [flags] CONTAINER_ID",
		Short: "delete a stopped (or, with --force, running) container",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.rt().Delete(args[0], force)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill the container first if it runs")
	return cmd
}

func pauseCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "pause CONTAINER_ID", Short: "freeze every process of a container", Args: exactID,
		RunE: func(cmd *cobra.Command, args []string) error { return g.rt().Pause(args[0]) },
	}
}

func resumeCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "resume CONTAINER_ID", Short: "thaw a paused container", Args: exactID,
		RunE: func(cmd *cobra.Command, args []string) error { return g.rt().Resume(args[0]) },
	}
}
