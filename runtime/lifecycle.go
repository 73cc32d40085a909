package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/cgroup"
)

// Start lets a created container's init exec the container's program and
// runs the poststart hooks.
func (r *Runtime) Start(id string) error {
	st, err := r.load(id)
	if err != nil {
		return err
	}
	unlock, err := lockDir(r.dir(id))
	if err != nil {
		return err
	}
	defer unlock()
	switch s := r.status(st); s {
	case Created:
	case Stopped:
		return fmt.Errorf("cannot start a container that has stopped: %w", ErrInvalidState)
	default:
		return fmt.Errorf("cannot start an already %s container: %w", s, ErrInvalidState)
	}
	if err := r.openFifo(st); err != nil {
		return err
	}
	if st.Config.Hooks != nil {
		state := specState(st, Running, st.Pid)
		if err := runHooks("poststart", st.Config.Hooks.Poststart, state); err != nil {
			// The spec: a failing poststart hook is a warning; the container runs on.
			r.log().Warn("poststart hook failed", "id", id, "err", err)
		}
	}
	return nil
}

// openFifo reads the byte the init writes once it is released, then
// removes the fifo: from then on the container counts as running.
func (r *Runtime) openFifo(st *containerState) error {
	path := filepath.Join(r.dir(st.ID), fifoName)
	// Non-blocking open for reading succeeds at once; the init's blocking
	// open for writing then completes and it writes one byte.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 1)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 100)
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("wait for container init: %w", err)
		}
		if n > 0 && fds[0].Revents&unix.POLLIN != 0 {
			if m, err := unix.Read(fd, buf); err == nil && m == 1 {
				break
			}
		}
		if !st.alive() {
			return fmt.Errorf("container init died before start")
		}
	}
	return os.Remove(path)
}

// Kill sends sig to the container's init, or with all to every process in
// its cgroup.
func (r *Runtime) Kill(id string, sig unix.Signal, all bool) error {
	st, err := r.load(id)
	if err != nil {
		return err
	}
	if s := r.status(st); s == Stopped {
		return fmt.Errorf("container %q is not running: %w", id, ErrInvalidState)
	}
	if all {
		m, err := cgroup.Load(st.CgroupPaths)
		if err != nil {
			return err
		}
		return m.Signal(sig)
	}
	if err := unix.Kill(st.Pid, sig); err != nil {
		return fmt.Errorf("kill %d: %w", st.Pid, err)
	}
	return nil
}

// Delete removes a container: its state, its cgroup, and with force its
// processes. A created container (never started) is deleted without force,
// as runc does; a running or paused one needs force.
func (r *Runtime) Delete(id string, force bool) error {
	st, err := r.load(id)
	if err != nil {
		if force && errors.Is(err, ErrNotExist) {
			return nil
		}
		if !errors.Is(err, ErrNotExist) {
			// A state dir without a readable state: remove it so the id
			// can be used again.
			if force {
				return os.RemoveAll(r.dir(id))
			}
		}
		return err
	}
	unlock, err := lockDir(r.dir(id))
	if err != nil {
		return err
	}
	defer unlock()
	var cg cgroup.Manager
	if len(st.CgroupPaths) > 0 {
		cg, _ = cgroup.Load(st.CgroupPaths)
	}
	switch s := r.status(st); s {
	case Stopped:
	case Created:
		// As runc: a container that never ran is deleted without --force
		// (engines clean up after a failed start this way).
		r.killAll(st, cg)
	default:
		if !force {
			return fmt.Errorf("cannot delete a %s container without --force: %w", s, ErrInvalidState)
		}
		r.killAll(st, cg)
	}
	if cg != nil {
		// Leftover processes (the init died, its children did not) go too;
		// an empty cgroup needs no freeze-signal-thaw round.
		if pids, err := cg.Pids(); err != nil || len(pids) > 0 {
			cg.Signal(unix.SIGKILL)
			waitEmpty(cg, 5*time.Second)
		}
		if err := cg.Destroy(); err != nil {
			r.log().Warn("remove cgroup", "id", id, "err", err)
		}
	}
	if st.Config != nil && st.Config.Hooks != nil {
		state := specState(st, Stopped, 0)
		if err := runHooks("poststop", st.Config.Hooks.Poststop, state); err != nil {
			r.log().Warn("poststop hook failed", "id", id, "err", err)
		}
	}
	return os.RemoveAll(r.dir(id))
}

// killAll kills the container's processes and waits for the init to go.
func (r *Runtime) killAll(st *containerState, cg cgroup.Manager) {
	if cg != nil {
		cg.Thaw()
		cg.Signal(unix.SIGKILL)
	}
	if st.alive() {
		unix.Kill(st.Pid, unix.SIGKILL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for st.alive() && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
}

func (r *Runtime) cgroupOf(id string, want ...Status) (*containerState, cgroup.Manager, error) {
	st, err := r.load(id)
	if err != nil {
		return nil, nil, err
	}
	s := r.status(st)
	if len(want) > 0 {
		ok := false
		for _, w := range want {
			ok = ok || s == w
		}
		if !ok {
			return nil, nil, fmt.Errorf("container %q is %s: %w", id, s, ErrInvalidState)
		}
	}
	if len(st.CgroupPaths) == 0 {
		return nil, nil, fmt.Errorf("container %q has no cgroup", id)
	}
	m, err := cgroup.Load(st.CgroupPaths)
	return st, m, err
}

// Pause freezes every process of a running container.
func (r *Runtime) Pause(id string) error {
	_, m, err := r.cgroupOf(id, Running)
	if err != nil {
		return err
	}
	return m.Freeze()
}

// Resume thaws a paused container.
func (r *Runtime) Resume(id string) error {
	_, m, err := r.cgroupOf(id, Paused)
	if err != nil {
		return err
	}
	return m.Thaw()
}

// Pids returns the host pids of every process in the container.
func (r *Runtime) Pids(id string) ([]int, error) {
	st, err := r.load(id)
	if err != nil {
		return nil, err
	}
	if r.status(st) == Stopped {
		return nil, nil
	}
	m, err := cgroup.Load(st.CgroupPaths)
	if err != nil {
		return nil, err
	}
	return m.Pids()
}

// Stats returns the container's cgroup statistics.
func (r *Runtime) Stats(id string) (*cgroup.Stats, error) {
	_, m, err := r.cgroupOf(id, Created, Running, Paused)
	if err != nil {
		return nil, err
	}
	return m.Stats()
}

// OOMKills returns how many processes of the container the kernel killed
// for lack of memory.
func (r *Runtime) OOMKills(id string) (uint64, error) {
	_, m, err := r.cgroupOf(id)
	if err != nil {
		return 0, err
	}
	return m.OOMKillCount()
}

// Update applies new resource limits to a container and records them.
func (r *Runtime) Update(id string, res *specs.LinuxResources) error {
	st, m, err := r.cgroupOf(id, Created, Running, Paused)
	if err != nil {
		return err
	}
	if err := m.Set(res); err != nil {
		return err
	}
	if st.Config.Linux.Resources == nil {
		st.Config.Linux.Resources = &specs.LinuxResources{}
	}
	mergeResources(st.Config.Linux.Resources, res)
	return r.save(st)
}

// mergeResources copies every limit set in upd over cur.
func mergeResources(cur, upd *specs.LinuxResources) {
	if upd.Memory != nil {
		if cur.Memory == nil {
			cur.Memory = &specs.LinuxMemory{}
		}
		m, u := cur.Memory, upd.Memory
		setIf(&m.Limit, u.Limit)
		setIf(&m.Reservation, u.Reservation)
		setIf(&m.Swap, u.Swap)
		setIf(&m.Kernel, u.Kernel) //nolint:staticcheck
		setIf(&m.KernelTCP, u.KernelTCP)
	}
	if upd.CPU != nil {
		if cur.CPU == nil {
			cur.CPU = &specs.LinuxCPU{}
		}
		c, u := cur.CPU, upd.CPU
		setIf(&c.Shares, u.Shares)
		setIf(&c.Quota, u.Quota)
		setIf(&c.Period, u.Period)
		setIf(&c.RealtimeRuntime, u.RealtimeRuntime)
		setIf(&c.RealtimePeriod, u.RealtimePeriod)
		if u.Cpus != "" {
			c.Cpus = u.Cpus
		}
		if u.Mems != "" {
			c.Mems = u.Mems
		}
	}
	if upd.Pids != nil {
		cur.Pids = upd.Pids
	}
	if upd.BlockIO != nil {
		cur.BlockIO = upd.BlockIO
	}
	if upd.Unified != nil {
		if cur.Unified == nil {
			cur.Unified = map[string]string{}
		}
		for k, v := range upd.Unified {
			cur.Unified[k] = v
		}
	}
}

func setIf[T any](dst **T, src *T) {
	if src != nil {
		*dst = src
	}
}
