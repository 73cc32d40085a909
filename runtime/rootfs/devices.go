package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func fileMode(m os.FileMode) *os.FileMode { return &m }

// defaultDevices are the nodes every container gets (runtime-spec "Default
// Devices"); linux.devices entries with the same path replace them.
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: fileMode(0o666)},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5, FileMode: fileMode(0o666)},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7, FileMode: fileMode(0o666)},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8, FileMode: fileMode(0o666)},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9, FileMode: fileMode(0o666)},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0, FileMode: fileMode(0o666)},
}

// needsDev tells whether the runtime builds /dev: not when the spec binds a
// whole /dev from somewhere (the caller then owns its content).
func needsDev(spec *specs.Spec) bool {
	for _, m := range spec.Mounts {
		if filepath.Clean("/"+m.Destination) == "/dev" && isBindMount(m) {
			return false
		}
	}
	return true
}

// deviceType maps linux.devices[].type to the S_IF* file type.
func deviceType(t string) (uint32, error) {
	switch t {
	case "c", "u":
		return unix.S_IFCHR, nil
	case "b":
		return unix.S_IFBLK, nil
	case "p":
		return unix.S_IFIFO, nil
	}
	return 0, fmt.Errorf("unknown device type %q (want c, u, b or p)", t)
}

func (p *preparer) setupDev() error {
	var spec []specs.LinuxDevice
	if p.c.Spec.Linux != nil {
		spec = p.c.Spec.Linux.Devices
	}
	mounted := map[string]bool{}
	for _, m := range p.c.Spec.Mounts {
		mounted[filepath.Clean("/"+m.Destination)] = true
	}
	override := map[string]bool{}
	for _, d := range spec {
		override[filepath.Clean(d.Path)] = true
	}
	for _, d := range defaultDevices {
		if override[d.Path] || mounted[d.Path] {
			continue
		}
		if err := p.createDevice(d); err != nil {
			return fmt.Errorf("default device %s: %w", d.Path, err)
		}
	}
	for i, d := range spec {
		if !filepath.IsAbs(d.Path) {
			return fmt.Errorf("linux.devices[%d].path: %q is not absolute", i, d.Path)
		}
		if _, err := deviceType(d.Type); err != nil {
			return fmt.Errorf("linux.devices[%d].type: %w", i, err)
		}
		if mounted[filepath.Clean(d.Path)] {
			continue
		}
		if err := p.createDevice(d); err != nil {
			return fmt.Errorf("linux.devices[%d] %s: %w", i, d.Path, err)
		}
	}
	return p.devLinks()
}

// createDevice makes one device node in the root: mknod, or in a user
// namespace (where mknod of devices is not allowed) a bind of the host's
// node over an empty file.
func (p *preparer) createDevice(d specs.LinuxDevice) error {
	typ, err := deviceType(d.Type)
	if err != nil {
		return err
	}
	rel, err := p.root.rel(d.Path)
	if err != nil {
		return err
	}
	if rel == "." {
		return errors.New("path resolves to the root itself")
	}
	if p.c.UserNS {
		src, err := os.OpenFile(d.Path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open host device to bind: %w", err)
		}
		defer src.Close()
		dst, err := p.root.mkfile(rel)
		if err != nil {
			return err
		}
		defer dst.Close()
		if err := bindFd(src, dst, false); err != nil {
			return fmt.Errorf("bind host device: %w", err)
		}
		return nil
	}
	parent, err := p.root.mkdir(filepath.Dir(rel))
	if err != nil {
		return err
	}
	defer parent.Close()
	dirfd, base := int(parent.Fd()), filepath.Base(rel)
	// Whatever the image has there (a stale node, a symlink) is replaced, so
	// the node is exactly what the spec asks for.
	if err := unix.Unlinkat(dirfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove existing %s: %w", rel, err)
	}
	mode := uint32(0o666)
	if d.FileMode != nil {
		mode = uint32(d.FileMode.Perm())
	}
	dev := 0
	if typ != unix.S_IFIFO {
		dev = int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))
	}
	if err := unix.Mknodat(dirfd, base, typ|mode, dev); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	var uid, gid uint32
	if d.UID != nil {
		uid = *d.UID
	}
	if d.GID != nil {
		gid = *d.GID
	}
	if err := unix.Fchownat(dirfd, base, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	// mknod applied the umask; set the mode the spec asked for.
	if err := unix.Fchmodat(dirfd, base, mode, 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// devLinks adds the conventional /dev symlinks: ptmx into the devpts
// instance and the /proc/self/fd aliases.
func (p *preparer) devLinks() error {
	dev, err := p.root.mkdir("dev")
	if err != nil {
		return fmt.Errorf("/dev: %w", err)
	}
	defer dev.Close()
	dirfd := int(dev.Fd())
	if err := unix.Unlinkat(dirfd, "ptmx", 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("/dev/ptmx: remove: %w", err)
	}
	if err := unix.Symlinkat("pts/ptmx", dirfd, "ptmx"); err != nil {
		return fmt.Errorf("/dev/ptmx: %w", err)
	}
	links := [][2]string{
		{"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"},
	}
	if p.procMounted() {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[0], dirfd, l[1]); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("/dev/%s: %w", l[1], err)
		}
	}
	return nil
}

func (p *preparer) procMounted() bool {
	for _, m := range p.c.Spec.Mounts {
		if m.Type == "proc" && filepath.Clean("/"+m.Destination) == "/proc" {
			return true
		}
	}
	return false
}
