package rootfs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// hostCgroupRoot is where the host mounts its cgroup hierarchies; read
// before pivot_root, in the init's copy of the host's mount table.
const hostCgroupRoot = "/sys/fs/cgroup"

// hierarchy is one cgroup mount of the host under hostCgroupRoot.
type hierarchy struct {
	name    string // directory name under the cgroup root: "cpu", "cpu,cpuacct", "systemd", "unified"
	fstype  string // cgroup or cgroup2
	data    string // controller options for mount(2): "cpu,cpuacct", "name=systemd"
	mount   string // host mount point
	root    string // root of the mount inside the hierarchy
	members []string
}

// cgroupOptions keeps the controller-selecting options of a cgroup v1
// superblock, dropping ones that a second mount must not (or cannot) repeat.
func cgroupOptions(vfs string) (data string, members []string) {
	var keep []string
	for _, o := range strings.Split(vfs, ",") {
		switch {
		case o == "rw" || o == "ro" || o == "":
		case strings.HasPrefix(o, "release_agent="):
		case o == "xattr" || o == "noprefix" || o == "clone_children" || o == "cpuset_v2_mode" || o == "favordynmods":
			keep = append(keep, o)
		default:
			keep = append(keep, o)
			members = append(members, o)
		}
	}
	return strings.Join(keep, ","), members
}

func hostHierarchies() ([]hierarchy, error) {
	infos, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	byName := map[string]int{}
	var hs []hierarchy
	for _, in := range infos {
		if filepath.Dir(in.Mountpoint) != hostCgroupRoot {
			continue
		}
		h := hierarchy{name: filepath.Base(in.Mountpoint), fstype: in.FSType, mount: in.Mountpoint, root: in.Root}
		if in.FSType == "cgroup" {
			h.data, h.members = cgroupOptions(in.VFSOptions)
		}
		// A later line for the same mount point is an overmount; it wins.
		if j, ok := byName[h.name]; ok {
			hs[j] = h
			continue
		}
		byName[h.name] = len(hs)
		hs = append(hs, h)
	}
	return hs, nil
}

// ownCgroup returns this process's cgroup path in the hierarchy whose
// controllers are members (nil for the cgroup2 hierarchy), from
// /proc/self/cgroup.
func ownCgroup(members []string) (string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if members == nil {
			if parts[0] == "0" && parts[1] == "" {
				return parts[2], nil
			}
			continue
		}
		if sameSet(strings.Split(parts[1], ","), members) {
			return parts[2], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no line for %v in /proc/self/cgroup", members)
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, x := range a {
		seen[x] = true
	}
	for _, x := range b {
		if !seen[x] {
			return false
		}
	}
	return true
}

// hostCgroupDir is the host directory of this process's own cgroup in h,
// used when the container cannot mount the hierarchy itself.
func hostCgroupDir(h hierarchy) string {
	var members []string
	if h.fstype == "cgroup" {
		members = h.members
	}
	own, err := ownCgroup(members)
	if err != nil {
		return h.mount
	}
	if h.root != "/" {
		if own != h.root && !strings.HasPrefix(own, h.root+"/") {
			return h.mount
		}
		own = strings.TrimPrefix(own, h.root)
	}
	return filepath.Join(h.mount, own)
}

func (p *preparer) hasCgroupNS() bool {
	if p.c.Spec.Linux == nil {
		return false
	}
	for _, ns := range p.c.Spec.Linux.Namespaces {
		if ns.Type == "cgroup" {
			return true
		}
	}
	return false
}

// mountCgroup mounts the cgroup filesystems at a type "cgroup" entry. On a
// unified host that is one cgroup2 mount. Otherwise it is a tmpfs holding one
// mount per host hierarchy, each a real cgroup mount when the container has
// its own cgroup namespace (so it shows the container's subtree as its root)
// and a bind of the container's own host cgroup directory when it has not or
// the kernel refuses.
func (p *preparer) mountCgroup(e *entry) error {
	if err := checkProcDest(e, false); err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(hostCgroupRoot, &st); err != nil {
		return e.errorf("statfs %s: %w", hostCgroupRoot, err)
	}
	flags := e.o.flags &^ (unix.MS_REC | unix.MS_BIND)
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		dst, err := p.root.mkdir(e.rel)
		if err != nil {
			return e.errorf("create mount point: %w", err)
		}
		defer dst.Close()
		h := hierarchy{name: ".", fstype: "cgroup2", mount: hostCgroupRoot, root: "/"}
		if err := p.mountHierarchy(e, dst, e.rel, h, flags); err != nil {
			return err
		}
		top, err := p.root.mountedAt(e.rel, dst)
		if err != nil {
			return e.errorf("%w", err)
		}
		defer top.Close()
		return p.finishMount(e, top)
	}

	dst, err := p.root.mkdir(e.rel)
	if err != nil {
		return e.errorf("create mount point: %w", err)
	}
	defer dst.Close()
	tmpFlags := flags&^unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := unix.Mount("tmpfs", fdPath(dst), "tmpfs", tmpFlags, p.mountData("tmpfs", "mode=755")); err != nil {
		return e.errorf("mount tmpfs: %w", err)
	}
	top, err := p.root.mountedAt(e.rel, dst)
	if err != nil {
		return e.errorf("%w", err)
	}
	defer top.Close()
	hs, err := hostHierarchies()
	if err != nil {
		return e.errorf("%w", err)
	}
	for _, h := range hs {
		subRel := filepath.Join(e.rel, h.name)
		sub, err := p.root.mkdir(subRel)
		if err != nil {
			return e.errorf("create %s: %w", h.name, err)
		}
		err = p.mountHierarchy(e, sub, subRel, h, flags)
		sub.Close()
		if err != nil {
			return err
		}
		// Co-mounted controllers ("cpu,cpuacct") get a symlink per
		// controller, as hosts lay them out.
		if strings.Contains(h.name, ",") {
			for _, c := range strings.Split(h.name, ",") {
				err := unix.Symlinkat(h.name, int(top.Fd()), c)
				if err != nil && !errors.Is(err, unix.EEXIST) {
					return e.errorf("symlink %s -> %s: %w", c, h.name, err)
				}
			}
		}
	}
	if flags&unix.MS_RDONLY != 0 {
		if err := setattr(top, false, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
			return e.errorf("remount read-only: %w", err)
		}
	}
	return p.finishMount(e, top)
}

func (p *preparer) mountHierarchy(e *entry, dst *os.File, rel string, h hierarchy, flags uintptr) error {
	var err error
	if p.hasCgroupNS() {
		err = unix.Mount(h.fstype, fdPath(dst), h.fstype, flags, h.data)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EBUSY) {
			return e.errorf("mount %s hierarchy %s: %w", h.fstype, h.name, err)
		}
	}
	srcPath := hostCgroupDir(h)
	src, oerr := os.OpenFile(srcPath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if oerr != nil {
		return e.errorf("open host cgroup %s: %w", srcPath, errors.Join(err, oerr))
	}
	defer src.Close()
	if berr := bindFd(src, dst, false); berr != nil {
		return e.errorf("bind host cgroup %s: %w", srcPath, errors.Join(err, berr))
	}
	top, terr := p.root.mountedAt(rel, dst)
	if terr != nil {
		return e.errorf("%w", terr)
	}
	defer top.Close()
	attr := bindAttr(flags)
	if attr.Attr_set != 0 {
		if err := setattr(top, false, &attr); err != nil {
			return e.errorf("cgroup %s flags: %w", h.name, err)
		}
	}
	return nil
}
