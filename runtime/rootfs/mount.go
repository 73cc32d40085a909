package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/selinux/go-selinux"
	"github.com/opencontainers/selinux/go-selinux/label"
	"golang.org/x/sys/unix"
)

// preparer carries what Prepare needs across the mounts[] entries.
type preparer struct {
	c    *Config
	root *root
}

// entry is one mounts[] element with its resolved pieces.
type entry struct {
	i    int
	m    specs.Mount
	o    mountOptions
	dest string // cleaned absolute destination as written in the spec
	rel  string // destination relative to the root, symlinks resolved in it
}

func (e *entry) errorf(format string, args ...any) error {
	typ := e.m.Type
	if typ == "" {
		typ = "bind"
	}
	return fmt.Errorf("mounts[%d] %s (%s): %w", e.i, e.m.Destination, typ, fmt.Errorf(format, args...))
}

// isBindMount tells whether a mounts[] entry is a bind mount: by option, or by
// the type "bind" that many runtimes accept alone.
func isBindMount(m specs.Mount) bool {
	if m.Type == "bind" || m.Type == "rbind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

func (p *preparer) mount(i int, m specs.Mount) error {
	e := &entry{i: i, m: m, o: parseOptions(m.Options)}
	if m.Destination == "" {
		return fmt.Errorf("mounts[%d].destination: empty", i)
	}
	// Relative destinations are relative to / (runc accepts them for
	// compatibility with old specs).
	e.dest = filepath.Clean("/" + m.Destination)
	if isBindMount(m) {
		e.o.flags |= unix.MS_BIND
		if m.Type == "rbind" {
			e.o.flags |= unix.MS_REC
		}
	} else if m.Type == "" {
		return fmt.Errorf("mounts[%d].type: empty for a mount that is not a bind mount", i)
	}
	if (len(m.UIDMappings) > 0) != (len(m.GIDMappings) > 0) {
		return fmt.Errorf("mounts[%d].uidMappings/gidMappings: both or neither must be given", i)
	}
	if len(m.UIDMappings) > 0 {
		if e.o.flags&unix.MS_BIND == 0 {
			return fmt.Errorf("mounts[%d].uidMappings: idmapped mounts are only supported for bind mounts", i)
		}
		if !e.o.idmap {
			// Mappings without the option: runc's rule, recursive when the
			// bind is.
			e.o.idmap, e.o.recIdmap = true, e.o.flags&unix.MS_REC != 0
		}
	} else if e.o.idmap {
		return fmt.Errorf("mounts[%d].options: idmap needs mounts[%d].uidMappings and gidMappings", i, i)
	}
	rel, err := p.root.rel(e.dest)
	if err != nil {
		return e.errorf("resolve destination in root: %w", err)
	}
	e.rel = rel
	if rel == "." {
		return fmt.Errorf("mounts[%d].destination: %q is the container's root; set root.path instead", i, m.Destination)
	}
	switch {
	case e.o.flags&unix.MS_BIND != 0:
		return p.mountBind(e)
	case m.Type == "cgroup":
		return p.mountCgroup(e)
	default:
		return p.mountFS(e)
	}
}

// validProcBinds are the files under /proc a bind mount may cover: the ones
// lxcfs and similar tools virtualise. Anything else under /proc is refused,
// because a mount there can hide the runtime's own view of the container
// (runc's CVE-2019-19921 class).
var validProcBinds = map[string]bool{
	"proc/cpuinfo":                   true,
	"proc/diskstats":                 true,
	"proc/meminfo":                   true,
	"proc/stat":                      true,
	"proc/swaps":                     true,
	"proc/uptime":                    true,
	"proc/loadavg":                   true,
	"proc/slabinfo":                  true,
	"proc/sys/kernel/ns_last_pid":    true,
	"proc/sys/kernel/overflowuid":    true,
	"proc/sys/kernel/overflowgid":    true,
	"proc/pressure/cpu":              true,
	"proc/pressure/io":               true,
	"proc/pressure/memory":           true,
	"proc/sys/kernel/random/boot_id": true,
}

func checkProcDest(e *entry, srcIsProc bool) error {
	switch {
	case e.rel == "proc":
		if e.m.Type == "proc" || srcIsProc {
			return nil
		}
		return e.errorf("only a proc filesystem may be mounted on /proc")
	case strings.HasPrefix(e.rel, "proc/"):
		if e.o.flags&unix.MS_BIND != 0 && validProcBinds[e.rel] {
			return nil
		}
		return e.errorf("refusing a mount inside /proc (/%s)", e.rel)
	}
	return nil
}

func (p *preparer) mountBind(e *entry) error {
	srcPath := e.m.Source
	if srcPath == "" {
		return fmt.Errorf("mounts[%d].source: empty for a bind mount", e.i)
	}
	if !filepath.IsAbs(srcPath) {
		srcPath = filepath.Join(p.c.Bundle, srcPath)
	}
	// The source is a host path chosen by whoever wrote the spec, so it is
	// trusted; it is opened once and used by descriptor from then on.
	src, err := os.OpenFile(srcPath, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return e.errorf("open source: %w", err)
	}
	defer src.Close()
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(src.Fd()), &sfs); err != nil {
		return e.errorf("statfs source: %w", err)
	}
	if err := checkProcDest(e, sfs.Type == unix.PROC_SUPER_MAGIC); err != nil {
		return err
	}
	srcDir, err := isDir(src)
	if err != nil {
		return e.errorf("%w", err)
	}
	var dst *os.File
	if srcDir {
		dst, err = p.root.mkdir(e.rel)
	} else {
		dst, err = p.root.mkfile(e.rel)
	}
	if err != nil {
		return e.errorf("create mount point: %w", err)
	}
	defer dst.Close()

	tree, err := cloneMount(src, e.o.flags&unix.MS_REC != 0)
	if err != nil {
		return e.errorf("%w", err)
	}
	defer tree.Close()
	if e.o.idmap {
		if err := idmapTree(tree, e); err != nil {
			return err
		}
	}
	if err := attach(tree, dst); err != nil {
		return e.errorf("%w", err)
	}
	top, err := p.root.mountedAt(e.rel, dst)
	if err != nil {
		return e.errorf("%w", err)
	}
	defer top.Close()

	attr := bindAttr(e.o.flags)
	if attr.Attr_set != 0 || attr.Attr_clr != 0 {
		err := setattr(top, false, &attr)
		if errors.Is(err, unix.EPERM) && attr.Attr_clr&unix.MOUNT_ATTR__ATIME != 0 {
			// The source's atime mode is locked (a mount inherited from a
			// more privileged user namespace): keep it, as the source's
			// statfs flags say, and apply the rest.
			attr.Attr_clr &^= unix.MOUNT_ATTR__ATIME
			attr.Attr_set &^= unix.MOUNT_ATTR__ATIME
			err = setattr(top, false, &attr)
		}
		if err != nil {
			return e.errorf("set mount flags: %w", err)
		}
	}
	return p.finishMount(e, top)
}

// finishMount applies what every mount type shares once the mount is in
// place: recursive attributes, then propagation.
func (p *preparer) finishMount(e *entry, top *os.File) error {
	if e.o.recSet != 0 || e.o.recClr != 0 {
		if err := setattr(top, true, &unix.MountAttr{Attr_set: e.o.recSet, Attr_clr: e.o.recClr}); err != nil {
			return e.errorf("recursive mount attributes: %w", err)
		}
	}
	for _, prop := range e.o.propagation {
		if err := setPropagation(top, prop); err != nil {
			return e.errorf("propagation: %w", err)
		}
	}
	return nil
}

// labelled are the filesystems that take an SELinux context= option.
var labelled = map[string]bool{"tmpfs": true, "devpts": true, "mqueue": true}

func (p *preparer) mountData(typ string, data string) string {
	if p.c.MountLabel != "" && labelled[typ] && selinux.GetEnabled() {
		return label.FormatMountLabel(data, p.c.MountLabel)
	}
	return data
}

func (p *preparer) mountFS(e *entry) error {
	if err := checkProcDest(e, false); err != nil {
		return err
	}
	typ := e.m.Type
	dst, err := p.root.mkdir(e.rel)
	if err != nil {
		return e.errorf("create mount point: %w", err)
	}
	defer dst.Close()

	flags := e.o.flags &^ (unix.MS_REC | unix.MS_BIND)
	readonlyLater := false
	if flags&unix.MS_RDONLY != 0 && (typ == "tmpfs" || e.dest == "/dev") {
		// A read-only tmpfs starts empty and stays so; mount it writable,
		// fill it (tmpcopyup, devices) and make it read-only afterwards.
		// /dev waits for Finalize because devices are created after all
		// mounts.
		flags &^= unix.MS_RDONLY
		readonlyLater = e.dest != "/dev"
	}
	src := e.m.Source
	if src == "" {
		src = typ
	}
	data := p.mountData(typ, joinData(e.o.data...))
	err = unix.Mount(src, fdPath(dst), typ, flags, data)
	if err != nil {
		switch {
		case typ == "sysfs" && errors.Is(err, unix.EPERM) && p.c.UserNS:
			// A user namespace that does not own the network namespace
			// cannot mount sysfs; show the host's, read-only, as runc does.
			return p.bindFallback(e, "/sys", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
		case typ == "mqueue" && errors.Is(err, unix.EPERM) && p.c.UserNS:
			return p.bindFallback(e, "/dev/mqueue", flags)
		}
		return e.errorf("mount: %w", err)
	}
	top, err := p.root.mountedAt(e.rel, dst)
	if err != nil {
		return e.errorf("%w", err)
	}
	defer top.Close()
	if e.o.tmpcopyup && typ == "tmpfs" {
		if err := copyTree(dst, top); err != nil {
			return e.errorf("tmpcopyup: %w", err)
		}
	}
	if readonlyLater {
		if err := setattr(top, false, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
			return e.errorf("remount read-only: %w", err)
		}
	}
	return p.finishMount(e, top)
}

// bindFallback replaces a filesystem mount that the kernel refused with a
// recursive bind of the host's instance.
func (p *preparer) bindFallback(e *entry, source string, flags uintptr) error {
	fe := *e
	fe.m.Source = source
	fe.o.flags = flags | unix.MS_BIND | unix.MS_REC
	fe.o.data = nil
	fe.o.idmap, fe.o.recIdmap = false, false
	return p.mountBind(&fe)
}
