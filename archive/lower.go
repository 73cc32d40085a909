package archive

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Lower is the read-only merged view of the layers below an overlay upper
// directory.
type Lower interface {
	// Lookup returns an O_PATH handle on the entry at rel (a clean path
	// relative to the root) as the merged view shows it, without
	// following a symlink in its last component, or fs.ErrNotExist.
	Lookup(rel string) (*os.File, error)
}

// OverlayLower resolves paths through a stack of overlay layer
// directories the way overlayfs merges them: the first layer (top first)
// that has the path wins, a whiteout hides the path in every layer below,
// an opaque directory hides what the layers below have inside it, and a
// non-directory hides the directories below it. Path components are
// taken literally, never through a symlink: in a layer directory a symlink
// is just content.
type OverlayLower struct {
	// Dirs are the layer directories, top first.
	Dirs []string
	// Ready, when set, is called before the first lookup; a parallel
	// unpack uses it to wait until the layers below are complete.
	Ready func() error

	readyErr  error
	readyDone bool
}

func (l *OverlayLower) Lookup(rel string) (*os.File, error) {
	if l.Ready != nil && !l.readyDone {
		l.readyErr = l.Ready()
		l.readyDone = true
	}
	if l.readyErr != nil {
		return nil, l.readyErr
	}
	comps := strings.Split(rel, "/")
	for _, dir := range l.Dirs {
		f, st, err := lookupLayer(dir, comps)
		switch st {
		case lookupFound:
			return f, nil
		case lookupHidden:
			return nil, fs.ErrNotExist
		case lookupError:
			return nil, err
		}
	}
	return nil, fs.ErrNotExist
}

type lookupState int

const (
	lookupMissing lookupState = iota // not in this layer: look further down
	lookupFound
	lookupHidden // hidden from the layers below: stop
	lookupError
)

func lookupLayer(dir string, comps []string) (*os.File, lookupState, error) {
	cur, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, lookupError, fmt.Errorf("layer %s: %w", dir, err)
	}
	opaque := false
	for i, c := range comps {
		next, err := unix.Openat(cur, c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if err == unix.ENOENT || err == unix.ENOTDIR {
			if opaque {
				return nil, lookupHidden, nil
			}
			return nil, lookupMissing, nil
		}
		if err != nil {
			return nil, lookupError, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(next, &st); err != nil {
			unix.Close(next)
			return nil, lookupError, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			unix.Close(next)
			return nil, lookupHidden, nil
		}
		if i == len(comps)-1 {
			return os.NewFile(uintptr(next), c), lookupFound, nil
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			unix.Close(next)
			return nil, lookupHidden, nil
		}
		var v [1]byte
		if n, err := unix.Getxattr(fmt.Sprintf("/proc/self/fd/%d", next), opaqueXattr, v[:]); err == nil && n == 1 && v[0] == 'y' {
			opaque = true
		}
		cur = next
	}
	return nil, lookupMissing, nil
}

// readXattrs returns the xattrs of the file at p (followed; callers pass
// /proc/self/fd paths of non-symlinks) as tar PAX records.
func readXattrs(p string) map[string]string {
	sz, err := unix.Listxattr(p, nil)
	if err != nil || sz <= 0 {
		return nil
	}
	buf := make([]byte, sz)
	sz, err = unix.Listxattr(p, buf)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" || refusedXattr(name) {
			continue
		}
		vsz, err := unix.Getxattr(p, name, nil)
		if err != nil {
			continue
		}
		v := make([]byte, vsz)
		vsz, err = unix.Getxattr(p, name, v)
		if err != nil {
			continue
		}
		out["SCHILY.xattr."+name] = string(v[:vsz])
	}
	return out
}

// copyUp copies the lower entry src (an O_PATH handle) to base in the
// directory pfd with its content, ownership, mode, xattrs and times, as
// overlayfs would copy it up before a hard link is made to it.
func copyUp(src *os.File, pfd int, base string, ignoreOwner bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return err
	}
	perm := st.Mode & 0o7777
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		in, err := os.Open(procPath(src))
		if err != nil {
			return err
		}
		defer in.Close()
		fd, err := unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		out := os.NewFile(uintptr(fd), base)
		defer out.Close()
		if _, err := io.Copy(out, in); err != nil {
			return err
		}
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(int(src.Fd()), "", buf)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(string(buf[:n]), pfd, base); err != nil {
			return err
		}
		if !ignoreOwner {
			if err := unix.Fchownat(pfd, base, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
		}
		return unix.UtimesNanoAt(pfd, base, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if err := unix.Mknodat(pfd, base, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	default:
		return errors.New("cannot copy up a directory or socket")
	}
	f, err := openNoFollow(pfd, base, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	p := procPath(f)
	if !ignoreOwner {
		if err := unix.Fchownat(int(f.Fd()), "", int(st.Uid), int(st.Gid), unix.AT_EMPTY_PATH); err != nil {
			return err
		}
	}
	for k, v := range readXattrs(procPath(src)) {
		unix.Setxattr(p, strings.TrimPrefix(k, "SCHILY.xattr."), []byte(v), 0)
	}
	if err := unix.Chmod(p, perm); err != nil {
		return err
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{st.Atim, st.Mtim}, 0)
}
