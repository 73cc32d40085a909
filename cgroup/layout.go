package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// Layout is how the host arranges its cgroup hierarchies.
type Layout int

const (
	// Legacy is cgroup v1 only: one hierarchy per controller (or group).
	Legacy Layout = iota
	// Hybrid is v1 controllers plus a cgroup2 mount beside them (here at
	// /sys/fs/cgroup/unified), which may hold some controllers.
	Hybrid
	// Unified is pure cgroup v2: one hierarchy for everything.
	Unified
)

func (l Layout) String() string {
	switch l {
	case Legacy:
		return "legacy"
	case Hybrid:
		return "hybrid"
	case Unified:
		return "unified"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// unifiedKey is the Paths() key of the cgroup2 hierarchy, as in runc.
const unifiedKey = ""

// knownControllers are the v1 controller names a cgroup mount's super options
// can carry; every other option (rw, xattr, clone_children...) is not one.
var knownControllers = map[string]bool{
	"cpu": true, "cpuacct": true, "cpuset": true, "memory": true, "devices": true,
	"freezer": true, "net_cls": true, "net_prio": true, "blkio": true,
	"perf_event": true, "hugetlb": true, "pids": true, "rdma": true, "misc": true,
}

// hierarchy is one mounted cgroup hierarchy.
type hierarchy struct {
	// keys are the Paths() keys it serves: its controllers ("cpu",
	// "cpuacct" when co-mounted), "name=systemd" for a named one, or ""
	// for cgroup2.
	keys       []string
	mountpoint string
	// root is the cgroup the mount shows at its mountpoint (mountinfo
	// field 4); it is not "/" inside a container without a cgroup namespace.
	root string
}

// host is what New needs to know about this machine's cgroups.
type host struct {
	layout  Layout
	v1      []hierarchy
	unified *hierarchy
	// own maps a controller (or "name=...", or "" for v2) to this process's
	// cgroup in that hierarchy, from /proc/self/cgroup.
	own map[string]string
}

// DetectLayout reads the mount table and says whether this host runs cgroup
// v1, hybrid or pure v2.
func DetectLayout() (Layout, error) {
	h, err := readHost()
	if err != nil {
		return 0, err
	}
	return h.layout, nil
}

func readHost() (*host, error) {
	mi, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cgroup: read mount table: %w", err)
	}
	defer mi.Close()
	pc, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("cgroup: read own cgroup: %w", err)
	}
	defer pc.Close()
	return parseHost(mi, pc)
}

// parseHost builds the host view from mountinfo and /proc/self/cgroup text,
// so that unit tests can feed it other machines' tables.
func parseHost(mountinfoText, selfCgroup io.Reader) (*host, error) {
	mounts, err := mountinfo.GetMountsFromReader(mountinfoText, func(m *mountinfo.Info) (bool, bool) {
		return m.FSType != "cgroup" && m.FSType != "cgroup2", false
	})
	if err != nil {
		return nil, fmt.Errorf("cgroup: parse mount table: %w", err)
	}
	own, err := parseSelfCgroup(selfCgroup)
	if err != nil {
		return nil, err
	}
	h := &host{own: own}
	seen := map[string]bool{}
	realV1 := false
	for _, m := range mounts {
		if m.FSType == "cgroup2" {
			if h.unified == nil || preferMount(m.Root, own[unifiedKey], h.unified.root) {
				h.unified = &hierarchy{keys: []string{unifiedKey}, mountpoint: m.Mountpoint, root: m.Root}
			}
			continue
		}
		var keys []string
		for _, opt := range strings.Split(m.VFSOptions, ",") {
			if knownControllers[opt] || strings.HasPrefix(opt, "name=") {
				keys = append(keys, opt)
			}
		}
		if len(keys) == 0 {
			continue
		}
		sort.Strings(keys)
		id := strings.Join(keys, ",")
		if seen[id] {
			// The same hierarchy mounted twice (bind mounts): keep the
			// mount that shows our own cgroup, which is the one paths
			// relative to /proc/self/cgroup resolve in.
			for i := range h.v1 {
				if strings.Join(h.v1[i].keys, ",") == id && preferMount(m.Root, own[keys[0]], h.v1[i].root) {
					h.v1[i] = hierarchy{keys: keys, mountpoint: m.Mountpoint, root: m.Root}
				}
			}
			continue
		}
		seen[id] = true
		for _, k := range keys {
			if knownControllers[k] {
				realV1 = true
			}
		}
		h.v1 = append(h.v1, hierarchy{keys: keys, mountpoint: m.Mountpoint, root: m.Root})
	}
	switch {
	case realV1 && h.unified != nil:
		h.layout = Hybrid
	case realV1:
		h.layout = Legacy
	case h.unified != nil:
		h.layout = Unified
		// A named v1 hierarchy next to a pure v2 host is not ours to manage.
		h.v1 = nil
	default:
		return nil, errors.New("cgroup: no cgroup hierarchy is mounted")
	}
	return h, nil
}

// preferMount says whether a mount with root newRoot serves own better than
// the one already chosen with root oldRoot: a root containing own wins.
func preferMount(newRoot, own, oldRoot string) bool {
	return !within(own, oldRoot) && within(own, newRoot)
}

func within(p, root string) bool {
	return root == "/" || p == root || strings.HasPrefix(p, root+"/")
}

// parseSelfCgroup reads /proc/self/cgroup lines "id:controllers:path".
func parseSelfCgroup(r io.Reader) (map[string]string, error) {
	own := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("cgroup: malformed /proc/self/cgroup line %q", line)
		}
		if parts[0] == "0" && parts[1] == "" {
			own[unifiedKey] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c != "" {
				own[c] = parts[2]
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cgroup: read /proc/self/cgroup: %w", err)
	}
	return own, nil
}

// cleanPath makes cgroupsPath safe to join under a mount: an absolute path is
// cleaned, a relative one cannot climb out with "..", as runc's CleanPath.
func cleanPath(p string) string {
	if p == "" {
		return ""
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	rel, err := filepath.Rel("/", filepath.Clean("/"+p))
	if err != nil || rel == "." {
		return ""
	}
	return rel
}

// resolve computes the container's directory in every hierarchy, keyed as
// Paths() is. It follows runc's cgroupfs driver: an absolute cgroupsPath is
// taken from each hierarchy's mount, a relative one from this process's own
// cgroup there, and an empty one is the container ID, relative.
func (h *host) resolve(cgroupsPath, id string) (map[string]string, error) {
	inner := cleanPath(cgroupsPath)
	if inner == "" {
		inner = cleanPath(id)
		if inner == "" {
			return nil, errors.New("linux.cgroupsPath: empty, and no container ID to default to")
		}
	}
	paths := map[string]string{}
	place := func(hr *hierarchy, ownKey string) error {
		if filepath.IsAbs(inner) {
			setAll(paths, hr.keys, filepath.Join(hr.mountpoint, inner))
			return nil
		}
		own, ok := h.own[ownKey]
		if !ok {
			return fmt.Errorf("linux.cgroupsPath %q: /proc/self/cgroup has no %q hierarchy to be relative to", cgroupsPath, ownKey)
		}
		if hr.root != "/" && within(own, hr.root) {
			own = strings.TrimPrefix(own, hr.root)
		}
		if ownKey == unifiedKey && h.layout == Unified {
			// Under systemd the runtime may run in init.scope, a leaf
			// that must not get children; runc goes to its parent.
			own = strings.TrimSuffix(own, "/init.scope")
		}
		setAll(paths, hr.keys, filepath.Join(hr.mountpoint, own, inner))
		return nil
	}
	for i := range h.v1 {
		if err := place(&h.v1[i], h.v1[i].keys[0]); err != nil {
			return nil, err
		}
	}
	if h.unified != nil {
		if err := place(h.unified, unifiedKey); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

func setAll(paths map[string]string, keys []string, dir string) {
	for _, k := range keys {
		paths[k] = dir
	}
}
