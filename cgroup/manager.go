package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Manager is one container's cgroup, across every hierarchy the host has.
type Manager interface {
	// Apply creates the cgroup in every hierarchy (v1 controllers incl.
	// name=systemd, and the unified one in hybrid/v2) and moves pid in;
	// pid<=0 only creates.
	Apply(pid int) error
	// Set writes limits; only non-nil fields are written, so `update` can
	// pass just what changed.
	Set(r *specs.LinuxResources) error
	// Freeze stops every process and returns once the kernel reports the
	// cgroup frozen.
	Freeze() error
	Thaw() error
	Frozen() (bool, error)
	// Pids lists every process in the cgroup and its descendants, as host
	// pids.
	Pids() ([]int, error)
	// Signal freezes, signals every process, and thaws, so no process can
	// fork past the signal; processes exiting meanwhile are not errors.
	Signal(sig unix.Signal) error
	Stats() (*Stats, error)
	OOMKillCount() (uint64, error)
	// Destroy removes the cgroup and its descendants in every hierarchy,
	// deepest first, plus the parents this Manager created. Already-gone
	// directories are fine; EBUSY is retried for a short while.
	Destroy() error
	// Paths maps hierarchy key (controller name, "name=systemd", or "" for
	// the cgroup2 hierarchy) to the container's absolute directory. Save it
	// in the state file and reopen with Load.
	Paths() map[string]string
}

type manager struct {
	mu     sync.Mutex
	layout Layout
	paths  map[string]string
	// created lists the directories Apply made, parents first, so Destroy
	// removes exactly those and never a parent someone else owns. A loaded
	// manager does not know them and removes only the container's own.
	created []string
}

// New resolves linux.cgroupsPath for container id on this host. It touches
// nothing on disk; Apply creates the directories.
func New(cgroupsPath, id string) (Manager, error) {
	h, err := readHost()
	if err != nil {
		return nil, err
	}
	paths, err := h.resolve(cgroupsPath, id)
	if err != nil {
		return nil, err
	}
	return &manager{layout: h.layout, paths: paths}, nil
}

// Load reopens a container's cgroup from the map Paths() returned, as saved
// in the container's state file.
func Load(paths map[string]string) (Manager, error) {
	if len(paths) == 0 {
		return nil, errors.New("cgroup: load: no paths")
	}
	m := &manager{paths: map[string]string{}}
	v1 := false
	for k, p := range paths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("cgroup: load: path %q for %q is not absolute", p, k)
		}
		m.paths[k] = filepath.Clean(p)
		if k != unifiedKey {
			v1 = true
		}
	}
	_, hasUnified := m.paths[unifiedKey]
	switch {
	case v1 && hasUnified:
		m.layout = Hybrid
	case v1:
		m.layout = Legacy
	default:
		m.layout = Unified
	}
	return m, nil
}

func (m *manager) Paths() map[string]string {
	out := make(map[string]string, len(m.paths))
	for k, v := range m.paths {
		out[k] = v
	}
	return out
}

// dirs returns each distinct directory once (co-mounted controllers share
// one), in a stable order.
func (m *manager) dirs() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range m.paths {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func (m *manager) path(key string) (string, bool) {
	p, ok := m.paths[key]
	return p, ok
}

func (m *manager) Apply(pid int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cpuset, hasCpuset := m.path("cpuset")
	if m.layout == Unified {
		cpuset, hasCpuset = "", false
	}
	for _, dir := range m.dirs() {
		made, err := mkdirAll(dir)
		m.created = append(m.created, made...)
		if err != nil {
			return fmt.Errorf("cgroup: create %s: %w", dir, err)
		}
		if hasCpuset && dir == cpuset {
			// A new v1 cpuset starts with empty cpus and mems, and the
			// kernel refuses tasks until both are set.
			if err := cpusetInherit(dir); err != nil {
				return fmt.Errorf("cgroup: create %s: %w", dir, err)
			}
		}
		if m.layout == Unified && dir == m.paths[unifiedKey] {
			enableAllControllers(dir)
		}
	}
	if pid <= 0 {
		return nil
	}
	for _, dir := range m.dirs() {
		if err := writeProcs(dir, pid); err != nil {
			return fmt.Errorf("cgroup: add pid %d: %w", pid, err)
		}
	}
	return nil
}

// mkdirAll creates dir and any missing parents, returning those it created,
// parents first.
func mkdirAll(dir string) ([]string, error) {
	var missing []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		} else if !isNotExist(err) {
			return nil, err
		}
		missing = append(missing, p)
		if p == "/" {
			break
		}
	}
	var made []string
	for i := len(missing) - 1; i >= 0; i-- {
		err := os.Mkdir(missing[i], 0o755)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return made, err
		}
		if err == nil {
			made = append(made, missing[i])
		}
	}
	return made, nil
}

// cpusetInherit fills empty cpuset.cpus/mems from the nearest ancestor,
// top-down, like the kernel does for cgroup v2 but not for v1.
func cpusetInherit(dir string) error {
	for _, name := range []string{"cpuset.cpus", "cpuset.mems"} {
		if err := cpusetInheritFile(dir, name); err != nil {
			return err
		}
	}
	return nil
}

func cpusetInheritFile(dir, name string) error {
	v, err := readFile(dir, name)
	if err != nil {
		return err
	}
	if v != "" {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent == dir || !exists(parent, name) {
		return fmt.Errorf("%s: empty and no parent to copy from", filepath.Join(dir, name))
	}
	if err := cpusetInheritFile(parent, name); err != nil {
		return err
	}
	pv, err := readFile(parent, name)
	if err != nil {
		return err
	}
	return writeFile(dir, name, pv)
}

// v2MountRoot walks up from dir to the top of its cgroup2 mount.
func v2MountRoot(dir string) string {
	var st unix.Stat_t
	if unix.Stat(dir, &st) != nil {
		return dir
	}
	for {
		parent := filepath.Dir(dir)
		var pst unix.Stat_t
		if parent == dir || unix.Stat(parent, &pst) != nil || pst.Dev != st.Dev {
			return dir
		}
		dir = parent
	}
}

// enableAllControllers turns on, in every ancestor of dir, each controller
// the ancestor has, as runc does on a pure v2 host so that the container's
// cgroup gets every interface file. Failures are left for Set to report
// against the field that needed the controller.
func enableAllControllers(dir string) {
	root := v2MountRoot(dir)
	for _, anc := range ancestors(root, dir) {
		avail, err := readFile(anc, "cgroup.controllers")
		if err != nil {
			return
		}
		for _, c := range strings.Fields(avail) {
			_ = writeFile(anc, "cgroup.subtree_control", "+"+c)
		}
	}
}

// enableController makes controller c available in dir by enabling it in
// every ancestor's cgroup.subtree_control from the mount root down.
func enableController(dir, c string) error {
	root := v2MountRoot(dir)
	for _, anc := range ancestors(root, dir) {
		on, err := readFile(anc, "cgroup.subtree_control")
		if err != nil {
			return err
		}
		if containsWord(on, c) {
			continue
		}
		if err := writeFile(anc, "cgroup.subtree_control", "+"+c); err != nil {
			return fmt.Errorf("enable the %s controller: %w", c, err)
		}
	}
	return nil
}

// ancestors lists root and each directory between it and dir, excluding dir.
func ancestors(root, dir string) []string {
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return nil
	}
	out := []string{root}
	parts := strings.Split(rel, string(filepath.Separator))
	cur := root
	for _, p := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, p)
		out = append(out, cur)
	}
	return out
}

func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// freezeDir picks where freezing happens: the v1 freezer when the host has
// one, else the cgroup2 directory (cgroup.freeze is a core file there).
func (m *manager) freezeDir() (dir string, v1 bool, err error) {
	if m.layout != Unified {
		if p, ok := m.path("freezer"); ok {
			return p, true, nil
		}
	}
	if p, ok := m.path(unifiedKey); ok {
		return p, false, nil
	}
	return "", false, errors.New("cgroup: no freezer hierarchy and no cgroup2 hierarchy")
}

const freezeTimeout = 5 * time.Second

func (m *manager) Freeze() error {
	dir, v1, err := m.freezeDir()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(freezeTimeout)
	if v1 {
		for delay := time.Millisecond; ; {
			// Writing FROZEN again is what pushes a stuck FREEZING along
			// when tasks were forking while we froze.
			if err := writeFile(dir, "freezer.state", "FROZEN"); err != nil {
				return fmt.Errorf("cgroup: freeze: %w", err)
			}
			state, err := readFile(dir, "freezer.state")
			if err != nil {
				return fmt.Errorf("cgroup: freeze: %w", err)
			}
			if state == "FROZEN" {
				return nil
			}
			if time.Now().After(deadline) {
				_ = writeFile(dir, "freezer.state", "THAWED")
				return fmt.Errorf("cgroup: freeze %s: still %s after %v", dir, state, freezeTimeout)
			}
			time.Sleep(delay)
			delay = min(2*delay, 20*time.Millisecond)
		}
	}
	if err := writeFile(dir, "cgroup.freeze", "1"); err != nil {
		return fmt.Errorf("cgroup: freeze: %w", err)
	}
	for delay := time.Millisecond; ; {
		ev, err := readKeyValues(dir, "cgroup.events")
		if err != nil {
			return fmt.Errorf("cgroup: freeze: %w", err)
		}
		if ev["frozen"] == 1 {
			return nil
		}
		if time.Now().After(deadline) {
			_ = writeFile(dir, "cgroup.freeze", "0")
			return fmt.Errorf("cgroup: freeze %s: not frozen after %v", dir, freezeTimeout)
		}
		time.Sleep(delay)
		delay = min(2*delay, 20*time.Millisecond)
	}
}

func (m *manager) Thaw() error {
	dir, v1, err := m.freezeDir()
	if err != nil {
		return err
	}
	if v1 {
		err = writeFile(dir, "freezer.state", "THAWED")
	} else {
		err = writeFile(dir, "cgroup.freeze", "0")
	}
	if err != nil {
		return fmt.Errorf("cgroup: thaw: %w", err)
	}
	return nil
}

func (m *manager) Frozen() (bool, error) {
	dir, v1, err := m.freezeDir()
	if err != nil {
		return false, err
	}
	if v1 {
		s, err := readFile(dir, "freezer.state")
		if err != nil {
			return false, fmt.Errorf("cgroup: freezer state: %w", err)
		}
		return s == "FROZEN", nil
	}
	s, err := readFile(dir, "cgroup.freeze")
	if err != nil {
		return false, fmt.Errorf("cgroup: freezer state: %w", err)
	}
	return s == "1", nil
}

// procsDir is the hierarchy whose membership Pids reports: the one Freeze
// uses, so Signal sees exactly the processes it froze.
func (m *manager) procsDir() (string, error) {
	if d, _, err := m.freezeDir(); err == nil {
		return d, nil
	}
	for _, k := range []string{"pids", "memory", "devices", "cpu", "name=systemd"} {
		if p, ok := m.path(k); ok {
			return p, nil
		}
	}
	d := m.dirs()
	if len(d) == 0 {
		return "", errors.New("cgroup: no hierarchy")
	}
	return d[0], nil
}

func (m *manager) Pids() ([]int, error) {
	dir, err := m.procsDir()
	if err != nil {
		return nil, err
	}
	var pids []int
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if isNotExist(err) && p != dir {
				return nil // a child cgroup went away under us
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		s, err := readFile(p, "cgroup.procs")
		if err != nil {
			if isNotExist(err) && p != dir {
				return nil
			}
			return err
		}
		for _, f := range strings.Fields(s) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return fmt.Errorf("parse %s/cgroup.procs: %w", p, err)
			}
			pids = append(pids, n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cgroup: list pids: %w", err)
	}
	return pids, nil
}

func (m *manager) Signal(sig unix.Signal) error {
	if sig == unix.SIGKILL && m.layout == Unified {
		// cgroup.kill kills every process atomically, forks included.
		if p, ok := m.path(unifiedKey); ok && exists(p, "cgroup.kill") {
			if err := writeFile(p, "cgroup.kill", "1"); err != nil {
				return fmt.Errorf("cgroup: kill all: %w", err)
			}
			return nil
		}
	}
	// Freezing first stops a process forking children we would miss.
	// Without any freezer we still signal, best effort. A paused
	// container stays paused unless it is being killed (frozen tasks
	// only die once thawed).
	wasFrozen, _ := m.Frozen()
	froze := m.Freeze() == nil && (!wasFrozen || sig == unix.SIGKILL)
	pids, err := m.Pids()
	if err == nil {
		for _, pid := range pids {
			if kerr := unix.Kill(pid, sig); kerr != nil && !errors.Is(kerr, unix.ESRCH) {
				err = fmt.Errorf("cgroup: signal %d: %w", pid, kerr)
				break
			}
		}
	}
	if froze {
		if terr := m.Thaw(); terr != nil && err == nil {
			err = terr
		}
	}
	return err
}

func (m *manager) OOMKillCount() (uint64, error) {
	if p, ok := m.path("memory"); ok && m.layout != Unified {
		kv, err := readKeyValues(p, "memory.oom_control")
		if err != nil {
			return 0, fmt.Errorf("cgroup: oom kill count: %w", err)
		}
		return kv["oom_kill"], nil
	}
	if p, ok := m.path(unifiedKey); ok {
		kv, err := readKeyValues(p, "memory.events")
		if err != nil {
			return 0, fmt.Errorf("cgroup: oom kill count: %w", err)
		}
		return kv["oom_kill"], nil
	}
	return 0, errors.New("cgroup: oom kill count: no memory hierarchy")
}

const destroyTimeout = 2 * time.Second

func (m *manager) Destroy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, dir := range m.dirs() {
		if err := removeTree(dir); err != nil {
			errs = append(errs, err)
		}
	}
	// Parents we made, deepest first; one still in use by someone else
	// (another container under the same parent) simply stays.
	for i := len(m.created) - 1; i >= 0; i-- {
		err := unix.Rmdir(m.created[i])
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("cgroup: remove %s: %w", m.created[i], err))
		}
	}
	m.created = nil
	return errors.Join(errs...)
}

// removeTree removes dir and every cgroup below it, deepest first. A cgroup
// whose last process is still exiting answers EBUSY for a moment.
func removeTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return fmt.Errorf("cgroup: remove %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(destroyTimeout)
	for delay := time.Millisecond; ; {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("cgroup: remove %s: %w", dir, err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

func sleepBrief(ms int) { time.Sleep(time.Duration(ms) * time.Millisecond) }
