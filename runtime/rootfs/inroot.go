package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/cyphar/filepath-securejoin/pathrs-lite/procfs"
	"golang.org/x/sys/unix"
)

// root is an open handle on a container root: every path from the spec is
// looked up relative to it, with symlinks and ".." confined to it, so a
// hostile image can never point a mount at the host.
type root struct {
	dir  *os.File // O_PATH directory handle
	path string   // the same directory as we named it; for lexical pre-resolution and messages
}

func openRoot(path string) (*root, error) {
	f, err := os.OpenFile(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", path, err)
	}
	return &root{dir: f, path: path}, nil
}

func (r *root) Close() error { return r.dir.Close() }

// rel turns a spec path into a path relative to the root with every symlink
// it crosses resolved inside the root. Dangling symlinks are resolved too
// (evil -> /host-dir becomes host-dir), which is what lets missing targets be
// created inside the root rather than rejected. The lexical pass can race
// with changes to the tree; that is harmless because every use of the result
// goes through pathrs again, which stays in the root whatever happens.
func (r *root) rel(p string) (string, error) {
	full, err := securejoin.SecureJoin(r.path, p)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(r.path, full)
	if err != nil {
		return "", err
	}
	return rel, nil
}

// open returns an O_PATH handle on rel, resolved inside the root.
func (r *root) open(rel string) (*os.File, error) {
	return pathrs.OpenatInRoot(r.dir, rel)
}

// mkdir creates rel and its missing parents inside the root and returns a
// handle on the directory.
func (r *root) mkdir(rel string) (*os.File, error) {
	return pathrs.MkdirAllHandle(r.dir, rel, 0o755)
}

// mkfile makes sure rel exists as a non-directory (creating an empty file
// when it is missing) and returns an O_PATH handle on it. Bind mounts of files
// and device nodes in a user namespace need such a mount point.
func (r *root) mkfile(rel string) (*os.File, error) {
	if f, err := r.open(rel); err == nil {
		return f, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	parent, err := r.mkdir(filepath.Dir(rel))
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	base := filepath.Base(rel)
	fd, err := unix.Openat(int(parent.Fd()), base, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0o644)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create %s: %w", rel, err)
	}
	if err == nil {
		unix.Close(fd)
	}
	fd, err = unix.Openat(int(parent.Fd()), base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", rel, err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(r.path, rel)), nil
}

// mountedAt returns a handle on the mount that now covers under (the handle
// on rel taken before mounting), after checking that the new mount really is
// on top of that very path: a different mount than under's, at the same
// place. A tree changed underneath us between the mount and the lookup is an
// error, not a guess.
func (r *root) mountedAt(rel string, under *os.File) (*os.File, error) {
	top, err := r.open(rel)
	if err != nil {
		return nil, fmt.Errorf("reopen after mount: %w", err)
	}
	underID, err1 := mountID(under)
	topID, err2 := mountID(top)
	if err := errors.Join(err1, err2); err != nil {
		top.Close()
		return nil, err
	}
	if underID == topID {
		top.Close()
		return nil, fmt.Errorf("mount check: %s is not a new mount after mounting (the path changed underneath)", rel)
	}
	underPath, err1 := procfs.ProcSelfFdReadlink(under)
	topPath, err2 := procfs.ProcSelfFdReadlink(top)
	if err := errors.Join(err1, err2); err != nil {
		top.Close()
		return nil, fmt.Errorf("mount check: %w", err)
	}
	if underPath != topPath {
		top.Close()
		return nil, fmt.Errorf("mount check: mount landed on %s but %s now resolves to %s", underPath, rel, topPath)
	}
	return top, nil
}

func mountID(f *os.File) (uint64, error) {
	var stx unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx); err != nil {
		return 0, fmt.Errorf("statx %s: %w", f.Name(), err)
	}
	return stx.Mnt_id, nil
}

// fdPath names an open file for mount(2), which only takes paths. It is used
// only before pivot_root, while /proc is still the host's.
func fdPath(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}

// cloneMount makes a detached copy of the mount tree at src (a bind mount
// not yet attached anywhere), recursive or not.
func cloneMount(src *os.File, recursive bool) (*os.File, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(int(src.Fd()), "", flags)
	if err != nil {
		return nil, fmt.Errorf("open_tree: %w", err)
	}
	return os.NewFile(uintptr(fd), "detached:"+src.Name()), nil
}

// attach puts a detached mount on top of the file dst refers to. Going by
// descriptors on both sides means no path is looked up again.
func attach(tree, dst *os.File) error {
	err := unix.MoveMount(int(tree.Fd()), "", int(dst.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// bindFd bind-mounts src onto dst, both given as open files.
func bindFd(src, dst *os.File, recursive bool) error {
	tree, err := cloneMount(src, recursive)
	if err != nil {
		return err
	}
	defer tree.Close()
	return attach(tree, dst)
}

// setattr changes a mount's attributes through its handle.
func setattr(f *os.File, recursive bool, attr *unix.MountAttr) error {
	flags := uint(unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(int(f.Fd()), "", flags, attr); err != nil {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	return nil
}

// setPropagation applies a propagation option (MS_SHARED|MS_REC, ...) to
// the mount f is the root of.
func setPropagation(f *os.File, p uintptr) error {
	return setattr(f, p&unix.MS_REC != 0, &unix.MountAttr{Propagation: uint64(p &^ unix.MS_REC)})
}

func isDir(f *os.File) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false, fmt.Errorf("fstat %s: %w", f.Name(), err)
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}
