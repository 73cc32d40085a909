package container

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berthproject/berth/container/monitor"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/ocirt"
	"github.com/berthproject/berth/volume"
	digest "github.com/opencontainers/go-digest"
)

// Options configure an Engine.
type Options struct {
	Root    string
	RunRoot string
	Images  *image.Store
	Volumes *volume.Store
	// BinDir holds berth-monitor, berth-runtime and berth-init.
	BinDir string
	// ExitCommand is how the monitor calls back when a container exits:
	// the berth binary and the global flags this engine was opened with,
	// to which "container cleanup ID" is appended.
	ExitCommand []string
	// ImageCheck, if set, decides whether a container may be made from an
	// image (the trust policy): Create calls it before anything is made.
	ImageCheck func(ctx context.Context, ref string) error
}

// Engine runs containers.
type Engine struct {
	root    string
	runRoot string
	images  *image.Store
	volumes *volume.Store
	binDir  string
	exitCmd []string
	check   func(context.Context, string) error
}

// Open opens the engine over root and runRoot.
func Open(o Options) (*Engine, error) {
	for _, d := range []string{filepath.Join(o.Root, "containers", "names"), filepath.Join(o.RunRoot, "containers")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("containers: %w", err)
		}
	}
	return &Engine{root: o.Root, runRoot: o.RunRoot, images: o.Images, volumes: o.Volumes, binDir: o.BinDir, exitCmd: o.ExitCommand, check: o.ImageCheck}, nil
}

// ImageUsers lists the containers made from an image, for image removal
// and garbage collection (image.Options.Users).
func (e *Engine) ImageUsers(ctx context.Context, id digest.Digest) ([]string, error) {
	cs, err := e.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range cs {
		if c.ImageID == id {
			out = append(out, c.Short())
		}
	}
	return out, nil
}

// VolumeUsers lists the containers that mount a volume.
func (e *Engine) VolumeUsers(ctx context.Context, name string) ([]string, error) {
	cs, err := e.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range cs {
		for _, m := range c.Mounts {
			if m.Type == "volume" && m.Name == name {
				out = append(out, c.Short())
				break
			}
		}
	}
	return out, nil
}

// runtime returns the runtime a container runs with.
func (e *Engine) runtime(c *Container) *ocirt.Runtime {
	return &ocirt.Runtime{Name: c.HostConfig.Runtime, Path: c.RuntimePath, Root: c.RuntimeRoot}
}

// processStart reads a process's start time (clock ticks since boot) from
// /proc, which with the pid identifies the process across pid reuse. A
// zombie counts as gone: it has exited, and whether its parent reaps it
// soon (an init that does not) must not keep a container "running".
func processStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

func monitorAlive(st State) bool {
	return st.MonitorPid > 0 && processStart(st.MonitorPid) == st.MonitorStart && st.MonitorStart != 0
}

// reconcile brings a record's state in line with what runs: a container
// recorded as running whose monitor is gone has exited (with the code the
// monitor recorded, or 255 when it left none, as after a reboot), and is
// cleaned up as its monitor would have done (an --rm one removed: the
// final state is returned, with removed set). A container process that
// outlived its monitor is killed then: nothing holds its stdio or would
// record its exit, so it could only run on unobserved.
func (e *Engine) reconcile(ctx context.Context, c *Container) (_ *Container, removed bool) {
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
		return c, false
	}
	if monitorAlive(c.State) {
		return c, false
	}
	l, err := e.lock(c.ID)
	if err != nil {
		return c, false
	}
	cur, err := e.read(c.ID)
	if err != nil || (cur.State.Status != StatusRunning && cur.State.Status != StatusPaused) || monitorAlive(cur.State) {
		l.Unlock()
		if err != nil {
			return c, errdefs.IsNotFound(err)
		}
		return cur, false
	}
	e.finish(ctx, cur)
	l.Unlock()
	if cur.HostConfig.AutoRemove {
		// An --rm container is removed when it ends, whoever notices.
		return cur, e.remove(ctx, cur, true) == nil
	}
	return cur, false
}

// finish records the exit of a container whose monitor is done, and
// releases what it held while running. The container lock is held.
func (e *Engine) finish(ctx context.Context, c *Container) {
	ex, err := monitor.ReadExit(e.runDir(c.ID))
	if err == nil {
		c.State.ExitCode = ex.Code
		c.State.FinishedAt = ex.FinishedAt
	} else {
		c.State.ExitCode = 255
		c.State.FinishedAt = time.Now().UTC()
		c.State.Error = "the container's monitor is gone (a reboot, or it was killed)"
	}
	c.State.Status = StatusExited
	c.State.Pid = 0
	c.State.MonitorPid, c.State.MonitorStart = 0, 0
	if rt := e.runtime(c); rt.HasState(c.ID) {
		if err := rt.Delete(ctx, c.ID, true); err != nil && !ocirt.IsNotExist(err) {
			c.State.Error = err.Error()
		}
	}
	e.unmountRootfs(c)
	e.write(c)
}

// notRunning is the error for operations that need a running container.
func notRunning(c *Container) error {
	return fmt.Errorf("container %s is not running: %w", c.Name, errdefs.ErrFailedPrecondition)
}
