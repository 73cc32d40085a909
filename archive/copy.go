package archive

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// CopyDir copies src's contents into the existing directory dst, keeping
// types, modes, owners, times, xattrs and hard links (reflinks where the
// file system can). Both are trusted directories of the store (a vfs
// snapshot, a volume), so paths are walked by name.
func CopyDir(ctx context.Context, src, dst string) error {
	links := map[uint64]string{}
	type dirTimes struct {
		path string
		ts   [2]unix.Timespec
	}
	var dirs []dirTimes
	euid := os.Geteuid()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		mode := st.Mode & unix.S_IFMT
		if mode != unix.S_IFDIR && st.Nlink > 1 {
			if first, ok := links[st.Ino]; ok {
				return os.Link(first, target)
			}
			links[st.Ino] = target
		}
		switch mode {
		case unix.S_IFDIR:
			if rel != "." {
				if err := os.Mkdir(target, 0o700); err != nil {
					return err
				}
			}
		case unix.S_IFREG:
			if err := copyFile(p, target); err != nil {
				return err
			}
		case unix.S_IFLNK:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, target); err != nil {
				return err
			}
		case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
			if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
				return err
			}
		default:
			return nil // sockets are not content
		}
		if err := unix.Lchown(target, int(st.Uid), int(st.Gid)); err != nil && !(euid != 0 && errors.Is(err, unix.EPERM)) {
			return err
		}
		copyXattrs(p, target)
		ts := [2]unix.Timespec{st.Atim, st.Mtim}
		if mode == unix.S_IFLNK {
			return unix.UtimesNanoAt(unix.AT_FDCWD, target, ts[:], unix.AT_SYMLINK_NOFOLLOW)
		}
		if err := unix.Chmod(target, st.Mode&0o7777); err != nil {
			return err
		}
		if mode == unix.S_IFDIR {
			dirs = append(dirs, dirTimes{target, ts})
			return nil
		}
		return unix.UtimesNanoAt(unix.AT_FDCWD, target, ts[:], unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, dirs[i].path, dirs[i].ts[:], 0); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	// Reflink where the file system can (btrfs, xfs): instant and free.
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		return nil
	}
	_, err = io.Copy(out, in) // copy_file_range where it can
	return err
}

func copyXattrs(src, dst string) {
	sz, err := unix.Llistxattr(src, nil)
	if err != nil || sz <= 0 {
		return
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(src, buf)
	if err != nil {
		return
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		vsz, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			continue
		}
		val := make([]byte, vsz)
		if vsz, err = unix.Lgetxattr(src, name, val); err != nil {
			continue
		}
		unix.Lsetxattr(dst, name, val[:vsz], 0)
	}
}
