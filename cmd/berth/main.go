// Command berth is the container engine's command line: flags, output and
// exit codes only; the work is done by the library packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/berthproject/berth/container"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/trust"
	"github.com/berthproject/berth/volume"
	digest "github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
)

var (
	version   = "dev"
	gitCommit = "unknown"
)

// Exit codes, as Docker's and Podman's.
const (
	exitBerth = 125 // berth itself failed
)

// app holds the global flags and what they open.
type app struct {
	root     string
	runRoot  string
	driver   string
	logLevel string
	// signaturePolicy and custodyPolicy override where the trust policy is read.
	signaturePolicy string
	custodyPolicy   string

	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	store   *image.Store
	engine  *container.Engine
	volumes *volume.Store

	trustChecker *trust.Checker
}

// exitError carries an exit code other than 125 out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func defaultRoot() string {
	if v := os.Getenv("BERTH_ROOT"); v != "" {
		return v
	}
	if os.Geteuid() == 0 {
		return "/var/lib/berth"
	}
	if v := os.Getenv("XDG_DATA_HOME"); v != "" {
		return filepath.Join(v, "berth")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "berth")
}

func defaultRunRoot() string {
	if v := os.Getenv("BERTH_RUNROOT"); v != "" {
		return v
	}
	if os.Geteuid() == 0 {
		return "/run/berth"
	}
	if v := os.Getenv("XDG_RUNTIME_DIR"); v != "" {
		return filepath.Join(v, "berth")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("berth-%d", os.Geteuid()))
}

// images opens the image store on first use. It knows the engine, so
// that an image a container uses is not removed.
func (a *app) images() (*image.Store, error) {
	if a.store != nil {
		return a.store, nil
	}
	s, err := image.Open(image.Options{Root: a.root, RunRoot: a.runRoot, Driver: a.driver,
		Users: func(ctx context.Context, id digest.Digest) ([]string, error) {
			e, err := a.containers()
			if err != nil {
				return nil, err
			}
			return e.ImageUsers(ctx, id)
		}})
	if err != nil {
		return nil, err
	}
	a.store = s
	return s, nil
}

// volumeStore opens the volume store on first use.
func (a *app) volumeStore() (*volume.Store, error) {
	if a.volumes != nil {
		return a.volumes, nil
	}
	v, err := volume.Open(a.root)
	if err != nil {
		return nil, err
	}
	a.volumes = v
	return v, nil
}

// volumesAndContainers opens the volume store and the container engine,
// which volume commands need together (a volume in use is not removed).
func (a *app) volumesAndContainers() (*volume.Store, *container.Engine, error) {
	e, err := a.containers()
	if err != nil {
		return nil, nil, err
	}
	return a.volumes, e, nil
}

// containers opens the container engine on first use.
func (a *app) containers() (*container.Engine, error) {
	if a.engine != nil {
		return a.engine, nil
	}
	e, err := a.openEngine(func(ctx context.Context, ref string) error {
		// The trust policy is read when a container is made, so that a
		// policy that does not parse stops run and create, not ps or rm.
		ch, err := a.checker()
		if err != nil {
			return err
		}
		imgs, err := a.images()
		if err != nil {
			return err
		}
		_, err = ch.CheckStored(ctx, imgs, ref)
		return err
	})
	if err != nil {
		return nil, err
	}
	a.engine = e
	return e, nil
}

// openEngine opens an engine over the store with check as its ImageCheck
// (nil: none).
func (a *app) openEngine(check func(ctx context.Context, ref string) error) (*container.Engine, error) {
	imgs, err := a.images()
	if err != nil {
		return nil, err
	}
	vols, err := a.volumeStore()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	exitCmd := []string{self, "--root", a.root, "--runroot", a.runRoot, "--storage-driver", imgs.Driver()}
	return container.Open(container.Options{Root: a.root, RunRoot: a.runRoot, Images: imgs, Volumes: vols,
		BinDir: filepath.Dir(self), ExitCommand: exitCmd, ImageCheck: check})
}

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "berth",
		Short:         "A daemonless container engine: images, containers, registries, signed chains of custody",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			level := slog.LevelWarn
			switch strings.ToLower(a.logLevel) {
			case "debug":
				level = slog.LevelDebug
			case "info":
				level = slog.LevelInfo
			case "warn", "warning", "":
			case "error":
				level = slog.LevelError
			default:
				return usageError(cmd, fmt.Errorf("--log-level %q: use debug, info, warn or error", a.logLevel))
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level})))
			return nil
		},
	}
	root.SetVersionTemplate("berth version {{.Version}}\n")
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	f := root.PersistentFlags()
	f.StringVar(&a.root, "root", defaultRoot(), "state directory (images, containers); BERTH_ROOT also sets it")
	f.StringVar(&a.runRoot, "runroot", defaultRunRoot(), "runtime state directory (mounts, running containers)")
	f.StringVar(&a.driver, "storage-driver", os.Getenv("BERTH_STORAGE_DRIVER"), "snapshot driver of a new store: overlay or vfs (default: overlay where it works)")
	f.StringVar(&a.logLevel, "log-level", "warn", "diagnostics on stderr: debug, info, warn or error")
	f.StringVar(&a.signaturePolicy, "signature-policy", os.Getenv("BERTH_SIGNATURE_POLICY"), "policy.json to enforce (default: ~/.config/containers/policy.json, then /etc/containers/policy.json)")
	f.StringVar(&a.custodyPolicy, "custody-policy", os.Getenv("BERTH_CUSTODY_POLICY"), "custody policy to enforce (default: /etc/berth/custody.json as root, ~/.config/berth/custody.json otherwise)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError(cmd, err) })

	imageCmd := &cobra.Command{Use: "image", Short: "Manage images", Args: noArgs}
	imageCmd.AddCommand(
		imagesCmd(a, "ls"), inspectCmd(a, true), historyCmd(a), tagCmd(a), rmiCmd(a, "rm"),
		pruneCmd(a), mountCmd(a), unmountCmd(a), loadCmd(a), saveCmd(a), importCmd(a),
		pullCmd(a), pushCmd(a), imageCopyCmd(a), buildCmd(a),
	)
	systemCmd := &cobra.Command{Use: "system", Short: "Manage the store", Args: noArgs}
	systemCmd.AddCommand(dfCmd(a), checkCmd(a))
	containerCmd := &cobra.Command{Use: "container", Short: "Manage containers", Args: noArgs}
	containerCmd.AddCommand(
		runCmd(a), createCmd(a), startCmd(a), stopCmd(a), killCmd(a), restartCmd(a), rmCmd(a, "rm"),
		psCmd(a, "ls"), logsCmd(a), execCmd(a), inspectCmd(a, false), waitCmd(a), attachCmd(a),
		renameCmd(a), pauseCmd(a), unpauseCmd(a), containerPruneCmd(a), cleanupCmd(a),
		cpCmd(a), diffCmd(a), commitCmd(a), topCmd(a), statsCmd(a), exportCmd(a),
	)
	volumeCmd := &cobra.Command{Use: "volume", Short: "Manage volumes", Args: noArgs}
	volumeCmd.AddCommand(volumeCreateCmd(a), volumeLsCmd(a), volumeInspectCmd(a), volumeRmCmd(a), volumePruneCmd(a))
	generateCmd := &cobra.Command{Use: "generate", Short: "Generate files for other tools", Args: noArgs}
	generateCmd.AddCommand(generateSystemdCmd(a))
	root.AddCommand(keyCmd(a), signCmd(a), verifyCmd(a), custodyCmd(a), trustCmd(a))
	root.AddCommand(imageCmd, systemCmd, containerCmd, volumeCmd, generateCmd, registryCmd(a),
		imagesCmd(a, "images"), inspectCmd(a, false), historyCmd(a), tagCmd(a), rmiCmd(a, "rmi"),
		loadCmd(a), saveCmd(a), importCmd(a), versionCmd(a), buildCmd(a),
		pullCmd(a), pushCmd(a), loginCmd(a), logoutCmd(a), manifestCmd(a),
		runCmd(a), createCmd(a), startCmd(a), stopCmd(a), killCmd(a), restartCmd(a), rmCmd(a, "rm"),
		psCmd(a, "ps"), logsCmd(a), execCmd(a), waitCmd(a), attachCmd(a),
		renameCmd(a), pauseCmd(a), unpauseCmd(a),
		cpCmd(a), diffCmd(a), commitCmd(a), topCmd(a), statsCmd(a), exportCmd(a))
	return root
}

// usageError is a mistake on the command line: one line, with where to
// look.
func usageError(cmd *cobra.Command, err error) error {
	return fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError(cmd, fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath()))
	}
	return cmd.Help()
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError(cmd, fmt.Errorf("%q requires exactly %d argument%s (%s)", cmd.CommandPath(), n, plural(n), what))
		}
		return nil
	}
}

func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usageError(cmd, fmt.Errorf("%q requires at least %d argument%s (%s)", cmd.CommandPath(), n, plural(n), what))
		}
		return nil
	}
}

func rangeArgs(min, max int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return usageError(cmd, fmt.Errorf("%q takes %d to %d arguments (%s)", cmd.CommandPath(), min, max, what))
		}
		return nil
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func versionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the version",
		Args:  exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(a.stdout, "berth version %s (commit %s)\n", version, gitCommit)
			return nil
		},
	}
}

// kindWords are the texts of errdefs' sentinels: they end wrapped error
// messages (for callers to branch on) and say nothing to a person, so the
// CLI leaves them out.
var kindWords = []error{errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrInvalidArgument,
	errdefs.ErrFailedPrecondition, errdefs.ErrConflict, errdefs.ErrUnavailable, errdefs.ErrDataLoss, errdefs.ErrNotImplemented,
	errdefs.ErrPermissionDenied, trust.ErrUntrusted}

// message is the one line a user sees for an error.
func message(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	for changed := true; changed; {
		changed = false
		for _, k := range kindWords {
			if t := ": " + k.Error(); strings.HasSuffix(msg, t) {
				msg, changed = strings.TrimSuffix(msg, t), true
			}
			msg = strings.ReplaceAll(msg, ": "+k.Error()+": ", ": ")
		}
	}
	return msg
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(a)
	root.SetArgs(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "Error: "+message(ee.err))
		}
		return ee.code
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "Error: interrupted")
		return exitBerth
	}
	fmt.Fprintln(stderr, "Error: "+message(err))
	return exitBerth
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
