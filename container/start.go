package container

import (
	"bufio"
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
	"syscall"
	"time"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/container/monitor"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/snapshot"
	units "github.com/docker/go-units"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// ParseSignal reads a signal as docker kill -s takes it: KILL, SIGKILL, 9.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, invalid("invalid signal %q", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, invalid("invalid signal %q", s)
}

func (e *Engine) rootfsDir(id string) string { return filepath.Join(e.runDir(id), "rootfs") }
func (e *Engine) logPath(id string) string   { return filepath.Join(e.dir(id), "ctr-json.log") }

// LogPath is where a container's log is (json-file).
func (e *Engine) LogPath(c *Container) string { return e.logPath(c.ID) }

// LogFiles is how many files the container's log rotates over.
func LogFiles(c *Container) int {
	if n, err := strconv.Atoi(c.HostConfig.LogConfig.Config["max-file"]); err == nil && n > 0 {
		return n
	}
	return 1
}

// mountRootfs mounts the container's snapshot at its rootfs directory
// (doing nothing when it is mounted already).
func (e *Engine) mountRootfs(ctx context.Context, c *Container) (string, error) {
	dir := e.rootfsDir(c.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if m, _ := mountinfo.Mounted(dir); m {
		return dir, nil
	}
	mounts, err := e.images.Snapshots().Mounts(ctx, c.Snapshot)
	if err != nil {
		return "", fmt.Errorf("container %s: %w", c.Name, err)
	}
	if err := snapshot.MountAll(mounts, dir); err != nil {
		return "", fmt.Errorf("container %s: mount its file system: %w", c.Name, err)
	}
	return dir, nil
}

func (e *Engine) unmountRootfs(c *Container) {
	snapshot.Unmount(e.rootfsDir(c.ID))
}

// initVolumes fills a volume used for the first time with what the image
// has at its mount point, as Docker does, so that configuration shipped in
// the image appears in the volume.
func (e *Engine) initVolumes(ctx context.Context, c *Container, rootfs string) error {
	for _, m := range c.Mounts {
		if m.Type != "volume" {
			continue
		}
		v, err := e.volumes.Get(m.Name)
		if err != nil {
			return err
		}
		if v.Initialized {
			continue
		}
		src, err := inRoot(rootfs, m.Destination)
		if err == nil {
			if fi, err := os.Stat(src); err == nil && fi.IsDir() {
				empty := true
				if ents, _ := os.ReadDir(v.Mountpoint); len(ents) > 0 {
					empty = false
				}
				if empty {
					if err := archive.CopyDir(ctx, src, v.Mountpoint); err != nil {
						return fmt.Errorf("fill volume %s from the image's %s: %w", m.Name, m.Destination, err)
					}
				}
			}
		}
		if err := e.volumes.MarkInitialized(m.Name); err != nil {
			return err
		}
	}
	return nil
}

// StartOptions control Start.
type StartOptions struct {
	// Attach: the caller attaches before the container starts and starts
	// it through the monitor (Attach, then Client.Start), so that no
	// output is missed.
	Attach bool
}

// Start starts a created or exited container: mounts its file system,
// writes its bundle and starts its monitor, which creates (and, unless the
// caller attaches first, starts) the container.
func (e *Engine) Start(ctx context.Context, ref string, o StartOptions) (*Container, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	l, err := e.lock(c.ID)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	if c, err = e.read(c.ID); err != nil {
		return nil, err
	}
	switch c.State.Status {
	case StatusRunning:
		return c, nil // starting a running container is no error, as in Docker
	case StatusPaused:
		return nil, fmt.Errorf("container %s is paused: unpause it instead: %w", c.Name, errdefs.ErrFailedPrecondition)
	}
	run := e.runDir(c.ID)
	// What an earlier run left (its runtime state, exit record) goes.
	if rt := e.runtime(c); rt.HasState(c.ID) {
		rt.Delete(ctx, c.ID, true)
	}
	os.Remove(filepath.Join(run, "exit.json"))
	if err := os.MkdirAll(run, 0o700); err != nil {
		return nil, err
	}
	rootfs, err := e.mountRootfs(ctx, c)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Container, error) {
		e.unmountRootfs(c)
		c.State.Error = err.Error()
		var ee *ExecError
		if errors.As(err, &ee) {
			c.State.ExitCode = ee.Code
		}
		e.write(c)
		return nil, err
	}
	if err := e.initVolumes(ctx, c, rootfs); err != nil {
		return fail(err)
	}
	if err := e.writeEtc(c); err != nil {
		return fail(err)
	}
	spec, err := e.buildSpec(c, rootfs)
	if err != nil {
		return fail(err)
	}
	bundle := filepath.Join(run, "bundle")
	if err := writeBundle(bundle, spec); err != nil {
		return fail(err)
	}
	cfg := monitor.Config{
		ID: c.ID, Runtime: c.RuntimePath, RuntimeRoot: c.RuntimeRoot, Bundle: bundle, RunDir: run,
		Terminal: c.Config.Tty, Stdin: c.Config.OpenStdin, StdinOnce: c.Config.StdinOnce, WaitStart: o.Attach,
		ExitCommand: append(append([]string(nil), e.exitCmd...), "container", "cleanup", c.ID),
	}
	if c.HostConfig.LogConfig.Type != "none" {
		cfg.LogPath = e.logPath(c.ID)
		if s := c.HostConfig.LogConfig.Config["max-size"]; s != "" {
			cfg.LogMaxSize, _ = units.RAMInBytes(s)
		}
		cfg.LogMaxFiles = LogFiles(c)
	}
	pid, mstart, err := e.spawnMonitor(ctx, cfg, o.Attach)
	if err != nil {
		return fail(err)
	}
	c.State = State{Status: StatusRunning, Pid: pid, StartedAt: time.Now().UTC(), MonitorPid: mstart.pid, MonitorStart: mstart.start}
	if err := e.write(c); err != nil {
		return nil, err
	}
	return c, nil
}

type monitorID struct {
	pid   int
	start uint64
}

// spawnMonitor starts berth-monitor, detached in a session of its own, and
// waits for it to report the container created (and, unless the caller
// attaches first, started).
func (e *Engine) spawnMonitor(ctx context.Context, cfg monitor.Config, attach bool) (int, monitorID, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return 0, monitorID{}, err
	}
	cfgPath := filepath.Join(cfg.RunDir, "monitor.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return 0, monitorID{}, err
	}
	bin := filepath.Join(e.binDir, "berth-monitor")
	if _, err := os.Stat(bin); err != nil {
		if p, err := exec.LookPath("berth-monitor"); err == nil {
			bin = p
		} else {
			return 0, monitorID{}, fmt.Errorf("berth-monitor is not next to berth (%s) or on PATH: %w", e.binDir, errdefs.ErrNotFound)
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, monitorID{}, err
	}
	defer r.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		w.Close()
		return 0, monitorID{}, err
	}
	defer null.Close()
	cmd := exec.Command(bin, cfgPath)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	if f, err := os.OpenFile(filepath.Join(cfg.RunDir, "monitor.log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err == nil {
		cmd.Stderr = f
		defer f.Close()
	}
	cmd.ExtraFiles = []*os.File{w}
	cmd.Dir = "/"
	// A session of its own: no terminal signal of the caller reaches it,
	// and it lives on when the caller goes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, monitorID{}, fmt.Errorf("start berth-monitor: %w", err)
	}
	w.Close()
	mid := monitorID{pid: cmd.Process.Pid, start: processStart(cmd.Process.Pid)}
	// The monitor is not our child to wait for: it outlives us, and
	// whoever reaps it (init, a subreaper) does.
	go cmd.Wait()
	sc := bufio.NewScanner(r)
	pid := 0
	for sc.Scan() {
		var s monitor.Sync
		if json.Unmarshal(sc.Bytes(), &s) != nil {
			continue
		}
		switch s.Event {
		case "error":
			return 0, mid, errors.New(s.Error)
		case "created":
			pid = s.Pid
			if attach {
				return pid, mid, nil
			}
		case "started":
			return pid, mid, nil
		}
	}
	return 0, mid, errors.New("berth-monitor ended without starting the container (see its log in " + cfg.RunDir + "/monitor.log)")
}

// Cleanup is what the monitor's exit command runs: it records the exit,
// takes the runtime's state and the mounts down, and removes an --rm
// container.
func (e *Engine) Cleanup(ctx context.Context, id string) error {
	l, err := e.lock(id)
	if err != nil {
		return err
	}
	c, err := e.read(id)
	if err != nil {
		l.Unlock()
		return err
	}
	if c.State.Status == StatusRunning || c.State.Status == StatusPaused {
		e.finish(ctx, c)
	}
	l.Unlock()
	if c.HostConfig.AutoRemove {
		return e.remove(ctx, c, true)
	}
	return nil
}

// Wait waits until the container is not running and returns its exit code.
func (e *Engine) Wait(ctx context.Context, ref string) (int, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return -1, err
	}
	id := c.ID
	last := c.State.ExitCode
	for delay := 5 * time.Millisecond; ; {
		c, err := e.read(id)
		if errdefs.IsNotFound(err) {
			// An --rm container is gone once it exited.
			if ex, xerr := monitor.ReadExit(e.runDir(id)); xerr == nil {
				return ex.Code, nil
			}
			return last, nil
		}
		if err != nil {
			return -1, err
		}
		c, _ = e.reconcile(ctx, c)
		if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
			return c.State.ExitCode, nil
		}
		last = c.State.ExitCode
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(delay):
		}
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

// Kill sends a signal to a running container's init.
func (e *Engine) Kill(ctx context.Context, ref string, sig unix.Signal) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
		return notRunning(c)
	}
	if err := e.runtime(c).Kill(ctx, c.ID, int(sig), false); err != nil {
		return fmt.Errorf("kill %s: %w", c.Name, err)
	}
	return nil
}

// Stop sends the stop signal, waits up to timeout for the container to
// exit, then kills it.
func (e *Engine) Stop(ctx context.Context, ref string, timeout *int) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
		return nil // stopping a stopped container is no error
	}
	secs := 10
	if c.Config.StopTimeout != nil {
		secs = *c.Config.StopTimeout
	}
	if timeout != nil {
		secs = *timeout
	}
	sig := unix.SIGTERM
	if c.Config.StopSignal != "" {
		if s, err := ParseSignal(c.Config.StopSignal); err == nil {
			sig = s
		}
	}
	rt := e.runtime(c)
	if c.State.Status == StatusPaused {
		rt.Resume(ctx, c.ID)
	}
	if secs > 0 {
		if err := rt.Kill(ctx, c.ID, int(sig), false); err == nil {
			wctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second)
			_, werr := e.Wait(wctx, c.ID)
			cancel()
			if werr == nil {
				return nil
			}
		}
	}
	if err := rt.Kill(ctx, c.ID, int(unix.SIGKILL), true); err != nil && !ocirtGone(err) {
		return fmt.Errorf("stop %s: %w", c.Name, err)
	}
	_, err = e.Wait(ctx, c.ID)
	return err
}

func ocirtGone(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "not running") || strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), "stopped"))
}

// Restart stops (if running) and starts a container.
func (e *Engine) Restart(ctx context.Context, ref string, timeout *int) error {
	if err := e.Stop(ctx, ref, timeout); err != nil {
		return err
	}
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	if _, err := e.Start(ctx, c.ID, StartOptions{}); err != nil {
		return err
	}
	l, err := e.lock(c.ID)
	if err == nil {
		if cur, err := e.read(c.ID); err == nil {
			cur.RestartCount++
			e.write(cur)
		}
		l.Unlock()
	}
	return nil
}

// Pause freezes a running container; Unpause thaws it.
func (e *Engine) Pause(ctx context.Context, ref string) error {
	return e.freeze(ctx, ref, true)
}

func (e *Engine) Unpause(ctx context.Context, ref string) error {
	return e.freeze(ctx, ref, false)
}

func (e *Engine) freeze(ctx context.Context, ref string, pause bool) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	l, err := e.lock(c.ID)
	if err != nil {
		return err
	}
	defer l.Unlock()
	if c, err = e.read(c.ID); err != nil {
		return err
	}
	rt := e.runtime(c)
	switch {
	case pause && c.State.Status == StatusRunning:
		if err := rt.Pause(ctx, c.ID); err != nil {
			return fmt.Errorf("pause %s: %w", c.Name, err)
		}
		c.State.Status = StatusPaused
	case !pause && c.State.Status == StatusPaused:
		if err := rt.Resume(ctx, c.ID); err != nil {
			return fmt.Errorf("unpause %s: %w", c.Name, err)
		}
		c.State.Status = StatusRunning
	case pause && c.State.Status == StatusPaused:
		return fmt.Errorf("container %s is already paused: %w", c.Name, errdefs.ErrFailedPrecondition)
	case !pause && c.State.Status == StatusRunning:
		return fmt.Errorf("container %s is not paused: %w", c.Name, errdefs.ErrFailedPrecondition)
	default:
		return notRunning(c)
	}
	return e.write(c)
}

// Remove removes a container (force: killing it first if it runs), and
// with volumes its anonymous volumes.
func (e *Engine) Remove(ctx context.Context, ref string, force, volumes bool) (*Container, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if c.State.Status == StatusRunning || c.State.Status == StatusPaused {
		if !force {
			return nil, fmt.Errorf("container %s is %s: stop it first, or remove it with -f: %w", c.Name, c.State.Status, errdefs.ErrConflict)
		}
		rt := e.runtime(c)
		if c.State.Status == StatusPaused {
			rt.Resume(ctx, c.ID)
		}
		rt.Kill(ctx, c.ID, int(unix.SIGKILL), true)
		if _, err := e.Wait(ctx, c.ID); err != nil {
			return nil, err
		}
		if c, err = e.read(c.ID); errdefs.IsNotFound(err) {
			return c, nil // it was --rm: gone already
		} else if err != nil {
			return nil, err
		}
	}
	return c, e.remove(ctx, c, volumes)
}

// remove deletes a stopped container's record, snapshot and run state.
func (e *Engine) remove(ctx context.Context, c *Container, volumes bool) error {
	l, err := e.lock(c.ID)
	if err != nil {
		return err
	}
	if rt := e.runtime(c); rt.HasState(c.ID) {
		rt.Delete(ctx, c.ID, true)
	}
	e.unmountRootfs(c)
	// The record goes first: from here on the container does not exist,
	// and what is left below is garbage, not a half container.
	if err := os.Remove(e.recordPath(c.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.Unlock()
		return err
	}
	l.Unlock()
	gl, err := e.globalLock()
	if err == nil {
		e.releaseName(c.Name, c.ID)
		gl.Unlock()
	}
	if err := e.images.Snapshots().Remove(ctx, c.Snapshot); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove %s: its file system: %w", c.Name, err)
	}
	if volumes {
		for _, m := range c.Mounts {
			if m.Type == "volume" && m.Anonymous {
				e.volumes.Remove(m.Name)
			}
		}
	}
	os.RemoveAll(e.runDir(c.ID))
	return os.RemoveAll(e.dir(c.ID))
}

// Rename gives a container a new name.
func (e *Engine) Rename(ctx context.Context, ref, name string) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	gl, err := e.globalLock()
	if err != nil {
		return err
	}
	defer gl.Unlock()
	if err := e.reserveName(name, c.ID); err != nil {
		return err
	}
	l, err := e.lock(c.ID)
	if err != nil {
		e.releaseName(name, c.ID)
		return err
	}
	defer l.Unlock()
	cur, err := e.read(c.ID)
	if err != nil {
		e.releaseName(name, c.ID)
		return err
	}
	old := cur.Name
	cur.Name = name
	if err := e.write(cur); err != nil {
		e.releaseName(name, c.ID)
		return err
	}
	e.releaseName(old, c.ID)
	return nil
}

// Prune removes every stopped container and returns them.
func (e *Engine) Prune(ctx context.Context) ([]*Container, error) {
	cs, err := e.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, c := range cs {
		if c.State.Status == StatusRunning || c.State.Status == StatusPaused {
			continue
		}
		if err := e.remove(ctx, c, false); err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Attach connects to a running (or just created) container's monitor.
func (e *Engine) Attach(ctx context.Context, c *Container) (*monitor.Client, error) {
	return monitor.Dial(e.runDir(c.ID))
}
