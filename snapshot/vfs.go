package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthproject/berth/errdefs"
	"golang.org/x/sys/unix"
)

// VFS is the copying snapshotter, for where overlayfs cannot be mounted
// (no privileges, or a file system overlay cannot sit on): each active
// snapshot starts as a full copy of its parent, hard links, xattrs and
// all. It costs disk space and time, never correctness.
type VFS struct {
	*store
}

var _ Snapshotter = (*VFS)(nil)

// NewVFS opens a copying snapshotter rooted at dir.
func NewVFS(dir string) (*VFS, error) {
	s, err := newStore(dir, "vfs")
	if err != nil {
		return nil, err
	}
	return &VFS{store: s}, nil
}

func (v *VFS) Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error) {
	r, chain, err := v.create(key, parent, KindActive, opts, "fs")
	if err != nil {
		return nil, err
	}
	if len(chain) > 0 {
		if err := copyTree(ctx, v.fsDir(chain[0].id), v.fsDir(r.id)); err != nil {
			v.Remove(ctx, key)
			return nil, fmt.Errorf("prepare %s: copy %s: %w", key, parent, err)
		}
	}
	return []Mount{{Type: "bind", Source: v.fsDir(r.id), Options: []string{"rw", "rbind"}}}, nil
}

func (v *VFS) View(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error) {
	r, chain, err := v.create(key, parent, KindView, opts, "fs")
	if err != nil {
		return nil, err
	}
	return v.viewMounts(r, chain), nil
}

func (v *VFS) viewMounts(r *record, chain []*record) []Mount {
	src := v.fsDir(r.id)
	if len(chain) > 0 {
		src = v.fsDir(chain[0].id) // committed trees never change: no copy needed
	}
	return []Mount{{Type: "bind", Source: src, Options: []string{"ro", "rbind"}}}
}

func (v *VFS) Mounts(ctx context.Context, key string) ([]Mount, error) {
	r, recs, err := v.get(key)
	if err != nil {
		return nil, err
	}
	switch r.Kind {
	case KindActive:
		return []Mount{{Type: "bind", Source: v.fsDir(r.id), Options: []string{"rw", "rbind"}}}, nil
	case KindView:
		var chain []*record
		if r.Parent != "" {
			if chain, err = chainOf(recs[r.Parent], recs); err != nil {
				return nil, err
			}
		}
		return v.viewMounts(r, chain), nil
	}
	return nil, fmt.Errorf("mounts of %s: committed snapshots are not mounted, view them: %w", key, errdefs.ErrFailedPrecondition)
}

func (v *VFS) Commit(ctx context.Context, name, key string, opts ...Opt) error {
	return v.commit(ctx, name, key, nil, opts)
}

func (v *VFS) Check(ctx context.Context) ([]Problem, error) {
	return v.check(ctx, func(k Kind) bool { return true })
}

// copyTree copies src's contents into the existing directory dst,
// keeping types, modes, owners, times, xattrs and hard links.
func copyTree(ctx context.Context, src, dst string) error {
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
