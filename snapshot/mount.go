package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount is one mount(2) a snapshot needs, in the vocabulary of
// runtime-spec mounts.
type Mount struct {
	Type    string   `json:"type"`
	Source  string   `json:"source"`
	Options []string `json:"options,omitempty"`
}

// Mount mounts m on target.
func (m Mount) Mount(target string) error {
	flags, data := parseOptions(m.Options)
	if m.Type == "bind" {
		if err := unix.Mount(m.Source, target, "", flags|unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount %s on %s: %w", m.Source, target, err)
		}
		// A bind mount ignores MS_RDONLY until it is remounted.
		if flags&unix.MS_RDONLY != 0 {
			if err := unix.Mount("", target, "", flags|unix.MS_BIND|unix.MS_REMOUNT, ""); err != nil {
				unix.Unmount(target, unix.MNT_DETACH)
				return fmt.Errorf("make bind mount %s read-only: %w", target, err)
			}
		}
		return nil
	}
	if m.Type == "overlay" && len(data) >= pageSize()-1 {
		return mountRelative(m, target, flags, data)
	}
	if err := unix.Mount(m.Source, target, m.Type, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", m.Type, target, err)
	}
	return nil
}

// MountAll mounts the snapshot mounts on target, in order.
func MountAll(mounts []Mount, target string) error {
	for i, m := range mounts {
		if err := m.Mount(target); err != nil {
			for j := i - 1; j >= 0; j-- {
				unix.Unmount(target, unix.MNT_DETACH)
			}
			return err
		}
	}
	return nil
}

// Unmount unmounts everything mounted on target (a stack of mounts
// included), and succeeds when nothing is.
func Unmount(target string) error {
	for {
		err := unix.Unmount(target, 0)
		if err == unix.EINVAL || err == unix.ENOENT {
			return nil
		}
		if err == unix.EBUSY {
			err = unix.Unmount(target, unix.MNT_DETACH)
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}

func pageSize() int { return os.Getpagesize() }

var optionFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":       {false, unix.MS_RDONLY},
	"rw":       {true, unix.MS_RDONLY},
	"nosuid":   {false, unix.MS_NOSUID},
	"nodev":    {false, unix.MS_NODEV},
	"noexec":   {false, unix.MS_NOEXEC},
	"rbind":    {false, unix.MS_BIND | unix.MS_REC},
	"bind":     {false, unix.MS_BIND},
	"noatime":  {false, unix.MS_NOATIME},
	"relatime": {false, unix.MS_RELATIME},
}

func parseOptions(opts []string) (uintptr, string) {
	var flags uintptr
	var data []string
	for _, o := range opts {
		if f, ok := optionFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		data = append(data, o)
	}
	return flags, strings.Join(data, ",")
}

// mountRelative mounts an overlay whose options exceed a page (mount(2)
// truncates its data there) by naming the layer directories relative to
// their common parent: the mount runs on a thread that has its own working
// directory (unshare CLONE_FS) and is thrown away afterwards, so the
// process's working directory never changes.
func mountRelative(m Mount, target string, flags uintptr, data string) error {
	var dirs []string
	for _, o := range strings.Split(data, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			dirs = append(dirs, strings.Split(v, ":")...)
		case "upperdir", "workdir":
			dirs = append(dirs, v)
		}
	}
	base := commonDir(dirs)
	if base == "" || base == "/" {
		return fmt.Errorf("mount overlay on %s: options of %d bytes, and the layers share no directory to shorten them", target, len(data))
	}
	var opts []string
	for _, o := range strings.Split(data, ",") {
		k, v, ok := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			var rel []string
			for _, d := range strings.Split(v, ":") {
				rel = append(rel, relTo(base, d))
			}
			o = "lowerdir=" + strings.Join(rel, ":")
		case "upperdir", "workdir":
			if ok {
				o = k + "=" + relTo(base, v)
			}
		}
		opts = append(opts, o)
	}
	short := strings.Join(opts, ",")
	if len(short) >= pageSize()-1 {
		return fmt.Errorf("mount overlay on %s: %d layers are too many for one overlay mount (%d bytes of options)", target, len(dirs), len(short))
	}
	absTarget, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		// The thread is locked and never unlocked: it dies with the
		// goroutine, taking its private working directory along.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare CLONE_FS: %w", err)
			return
		}
		if err := unix.Chdir(base); err != nil {
			errc <- err
			return
		}
		if err := unix.Mount(m.Source, absTarget, m.Type, flags, short); err != nil {
			errc <- fmt.Errorf("mount overlay on %s: %w", target, err)
			return
		}
		errc <- nil
	}()
	return <-errc
}

func relTo(base, p string) string {
	r, err := filepath.Rel(base, p)
	if err != nil {
		return p
	}
	return r
}

func commonDir(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	common := filepath.Dir(paths[0])
	for _, p := range paths[1:] {
		for common != "/" && !strings.HasPrefix(p, common+"/") {
			common = filepath.Dir(common)
		}
	}
	return common
}

// LayerDirs returns the directories, top first, that the mounts of a view
// or an active snapshot read from: an overlay's upper and lower
// directories, or a bind mount's source. An unpack into an overlay upper
// directory consults them for what the layers below hold.
func LayerDirs(mounts []Mount) []string {
	var dirs []string
	for _, m := range mounts {
		switch m.Type {
		case "bind":
			dirs = append(dirs, m.Source)
		case "overlay":
			var upper string
			var lowers []string
			for _, o := range m.Options {
				k, v, _ := strings.Cut(o, "=")
				switch k {
				case "upperdir":
					upper = v
				case "lowerdir":
					lowers = strings.Split(v, ":")
				}
			}
			if upper != "" {
				dirs = append(dirs, upper)
			}
			dirs = append(dirs, lowers...)
		}
	}
	return dirs
}
