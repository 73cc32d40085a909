package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/selinux/go-selinux"
	"golang.org/x/sys/unix"
)

// Config is what the three steps need. The same value is passed to each.
type Config struct {
	Spec       *specs.Spec
	Rootfs     string // absolute, cleaned host path of root.path
	Bundle     string // absolute bundle directory: relative bind sources are relative to it
	NoPivot    bool   // MS_MOVE + chroot instead of pivot_root (rootfs on ramfs)
	MountLabel string // linux.mountLabel: context= for tmpfs/devpts/mqueue when SELinux is enabled
	UserNS     bool   // own user namespace: devices are bound from the host, sysfs/mqueue may fall back to binds
}

func (c *Config) check() error {
	if c == nil || c.Spec == nil {
		return errors.New("rootfs: no spec")
	}
	if !filepath.IsAbs(c.Rootfs) {
		return fmt.Errorf("root.path: %q is not an absolute path", c.Rootfs)
	}
	return nil
}

func (c *Config) linux() *specs.Linux {
	if c.Spec.Linux == nil {
		return &specs.Linux{}
	}
	return c.Spec.Linux
}

// Prepare builds the root filesystem while the process still sees the host's
// tree: propagation of /, the rootfs bind mount, every mounts[] entry in
// order, and /dev (unless the spec binds a /dev of its own).
func Prepare(c *Config) error {
	if err := c.check(); err != nil {
		return err
	}
	prop, err := parsePropagation(c.linux().RootfsPropagation)
	if err != nil {
		return err
	}
	// First, so that nothing mounted below reaches the host's peers.
	if err := unix.Mount("", "/", "", prop, ""); err != nil {
		return fmt.Errorf("linux.rootfsPropagation: set propagation of /: %w", err)
	}
	if err := parentPrivate(c.Rootfs); err != nil {
		return err
	}
	// pivot_root needs the new root to be a mount point; binding it onto
	// itself also makes the rootfs one mount we can later make read-only.
	if err := unix.Mount(c.Rootfs, c.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("root.path %s: bind onto itself: %w", c.Rootfs, err)
	}
	r, err := openRoot(c.Rootfs)
	if err != nil {
		return fmt.Errorf("root.path: %w", err)
	}
	defer r.Close()
	p := &preparer{c: c, root: r}
	for i, m := range c.Spec.Mounts {
		if err := p.mount(i, m); err != nil {
			return err
		}
	}
	if needsDev(c.Spec) {
		if err := p.setupDev(); err != nil {
			return err
		}
	}
	return nil
}

// parentPrivate makes the mount holding the rootfs private when it is
// shared: pivot_root refuses a shared parent, and a shared parent would
// carry the rootfs bind to the host's peers.
func parentPrivate(rootfs string) error {
	infos, err := mountinfo.GetMounts(mountinfo.ParentsFilter(rootfs))
	if err != nil {
		return fmt.Errorf("root.path: read mountinfo: %w", err)
	}
	var parent *mountinfo.Info
	for _, in := range infos {
		if parent == nil || len(in.Mountpoint) >= len(parent.Mountpoint) {
			parent = in
		}
	}
	if parent == nil || !strings.Contains(parent.Optional, "shared:") {
		return nil
	}
	if err := unix.Mount("", parent.Mountpoint, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("root.path: make parent mount %s private: %w", parent.Mountpoint, err)
	}
	return nil
}

// Pivot makes the prepared rootfs the process's root: pivot_root with the
// old root detached (its unmount kept from propagating), or with NoPivot a
// move of the rootfs mount onto / and a chroot. The working directory ends
// at the new /.
func Pivot(c *Config) error {
	if err := c.check(); err != nil {
		return err
	}
	if c.NoPivot {
		return moveRoot(c.Rootfs)
	}
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pivot_root: open old root: %w", err)
	}
	defer unix.Close(oldRoot)
	newRoot, err := unix.Open(c.Rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pivot_root: open root.path %s: %w", c.Rootfs, err)
	}
	defer unix.Close(newRoot)
	if err := unix.Fchdir(newRoot); err != nil {
		return fmt.Errorf("pivot_root: chdir %s: %w", c.Rootfs, err)
	}
	// pivot_root(".", ".") stacks the old root on top of the new one, so no
	// directory for it is needed inside the container.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", c.Rootfs, err)
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return fmt.Errorf("pivot_root: chdir old root: %w", err)
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("pivot_root: make old root rslave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("pivot_root: detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("pivot_root: chdir /: %w", err)
	}
	return nil
}

// moveRoot is the NoPivot path. The host's proc and sysfs mounts stay
// reachable through the old root after a chroot, so they are detached (or,
// where the kernel refuses, covered with an empty tmpfs) first.
func moveRoot(rootfs string) error {
	infos, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("proc", "sysfs"))
	if err != nil {
		return fmt.Errorf("no pivot: read mountinfo: %w", err)
	}
	sort.Slice(infos, func(i, j int) bool { return len(infos[i].Mountpoint) > len(infos[j].Mountpoint) })
	for _, in := range infos {
		mp := in.Mountpoint
		if mp == rootfs || strings.HasPrefix(mp, rootfs+"/") {
			continue
		}
		if err := unix.Mount("", mp, "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
				continue // already gone with its parent
			}
			return fmt.Errorf("no pivot: make %s rslave: %w", mp, err)
		}
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EPERM) {
				return fmt.Errorf("no pivot: unmount %s: %w", mp, err)
			}
			if err := unix.Mount("tmpfs", mp, "tmpfs", 0, ""); err != nil {
				return fmt.Errorf("no pivot: cover %s: %w", mp, err)
			}
		}
	}
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("no pivot: chdir %s: %w", rootfs, err)
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("no pivot: move %s onto /: %w", rootfs, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("no pivot: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("no pivot: chdir /: %w", err)
	}
	return nil
}

// Finalize runs inside the new root: linux.readonlyPaths, linux.maskedPaths,
// a read-only /dev when its mount asked for it, root.readonly, the final
// linux.rootfsPropagation, and stdio that pointed at the host's /dev/null
// moved to the container's.
func Finalize(c *Config) error {
	if err := c.check(); err != nil {
		return err
	}
	r, err := openRoot("/")
	if err != nil {
		return err
	}
	defer r.Close()
	lx := c.linux()
	for i, p := range lx.ReadonlyPaths {
		if err := readonlyPath(r, p); err != nil {
			return fmt.Errorf("linux.readonlyPaths[%d] %s: %w", i, p, err)
		}
	}
	for i, p := range lx.MaskedPaths {
		if err := maskPath(r, p, c.MountLabel); err != nil {
			return fmt.Errorf("linux.maskedPaths[%d] %s: %w", i, p, err)
		}
	}
	for i, m := range c.Spec.Mounts {
		if filepath.Clean("/"+m.Destination) != "/dev" || isBindMount(m) || parseOptions(m.Options).flags&unix.MS_RDONLY == 0 {
			continue
		}
		dev, err := r.open("dev")
		if err != nil {
			return fmt.Errorf("mounts[%d] /dev: %w", i, err)
		}
		err = setattr(dev, false, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
		dev.Close()
		if err != nil {
			return fmt.Errorf("mounts[%d] /dev: remount read-only: %w", i, err)
		}
	}
	if c.Spec.Root != nil && c.Spec.Root.Readonly {
		if err := setattr(r.dir, false, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
			return fmt.Errorf("root.readonly: remount / read-only: %w", err)
		}
	}
	if s := lx.RootfsPropagation; s != "" {
		prop, err := parsePropagation(s)
		if err != nil {
			return err
		}
		if err := setPropagation(r.dir, prop); err != nil {
			return fmt.Errorf("linux.rootfsPropagation: %w", err)
		}
	}
	return reopenDevNull(r)
}

// readonlyPath binds a path onto itself, read-only down to every submount.
// A path missing from the image is not an error: default specs list paths
// that only some kernels have.
func readonlyPath(r *root, p string) error {
	target, err := r.openExisting(p)
	if target == nil || err != nil {
		return err
	}
	defer target.Close()
	tree, err := cloneMount(target, true)
	if err != nil {
		return err
	}
	defer tree.Close()
	if err := setattr(tree, true, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return err
	}
	return attach(tree, target)
}

// maskPath hides a path: a directory under an empty read-only tmpfs, a file
// under the container's /dev/null. Missing paths are skipped.
func maskPath(r *root, p, mountLabel string) error {
	target, err := r.openExisting(p)
	if target == nil || err != nil {
		return err
	}
	defer target.Close()
	dir, err := isDir(target)
	if err != nil {
		return err
	}
	if dir {
		return maskDir(target, mountLabel)
	}
	null, err := openDevNull(r)
	if err != nil {
		return err
	}
	defer null.Close()
	return bindFd(null, target, false)
}

func maskDir(target *os.File, mountLabel string) error {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen tmpfs: %w", err)
	}
	defer unix.Close(fsfd)
	if mountLabel != "" && selinux.GetEnabled() {
		if err := unix.FsconfigSetString(fsfd, "context", mountLabel); err != nil {
			return fmt.Errorf("tmpfs context=%s: %w", mountLabel, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("create tmpfs: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return fmt.Errorf("fsmount tmpfs: %w", err)
	}
	m := os.NewFile(uintptr(mfd), "tmpfs")
	defer m.Close()
	return attach(m, target)
}

// openDevNull opens the container's /dev/null and proves by fstat that it is
// the null character device (1:3): the path alone proves nothing in an
// image-controlled tree.
func openDevNull(r *root) (*os.File, error) {
	f, err := r.open("dev/null")
	if err != nil {
		return nil, fmt.Errorf("open /dev/null: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("fstat /dev/null: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		f.Close()
		return nil, fmt.Errorf("/dev/null in the container is not the null device (mode %#o, rdev %d:%d)",
			st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return f, nil
}

// reopenDevNull points stdio descriptors that are the host's /dev/null at
// the container's, so no descriptor into the host's /dev survives into the
// container.
func reopenDevNull(r *root) error {
	var null *os.File
	defer func() {
		if null != nil {
			null.Close()
		}
	}()
	for fd := 0; fd < 3; fd++ {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
			continue
		}
		if null == nil {
			n, err := openDevNull(r)
			if err != nil {
				return fmt.Errorf("reopen stdio on /dev/null: %w", err)
			}
			null = n
		}
		f, err := pathrs.Reopen(null, unix.O_RDWR)
		if err != nil {
			return fmt.Errorf("reopen stdio on /dev/null: %w", err)
		}
		err = unix.Dup3(int(f.Fd()), fd, 0)
		f.Close()
		if err != nil {
			return fmt.Errorf("reopen stdio fd %d on /dev/null: %w", fd, err)
		}
	}
	return nil
}

// BindConsole binds the terminal's pty slave onto /dev/console in the new
// root, creating the mount point when the image lacks it. It is called after
// Pivot and before Finalize.
func BindConsole(slave *os.File) error {
	r, err := openRoot("/")
	if err != nil {
		return err
	}
	defer r.Close()
	dst, err := r.mkfile("dev/console")
	if err != nil {
		return fmt.Errorf("process.terminal: /dev/console: %w", err)
	}
	defer dst.Close()
	if d, err := isDir(dst); err != nil {
		return fmt.Errorf("process.terminal: %w", err)
	} else if d {
		return errors.New("process.terminal: /dev/console is a directory in the image")
	}
	if err := bindFd(slave, dst, false); err != nil {
		// Older kernels may not clone a devpts file; bind by path then.
		if err2 := unix.Mount(fdPath(slave), fdPath(dst), "", unix.MS_BIND, ""); err2 != nil {
			return fmt.Errorf("process.terminal: bind pty onto /dev/console: %w", errors.Join(err, err2))
		}
	}
	return nil
}

// openExisting opens the container path p inside the root, or returns nil
// and no error when it is missing: default specs list masked and read-only
// paths that only some kernels have.
func (r *root) openExisting(p string) (*os.File, error) {
	rel, err := r.rel(p)
	if err != nil {
		return nil, err
	}
	f, err := r.open(rel)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return f, err
}
