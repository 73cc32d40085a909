package archive

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// TreeOptions control WriteTree.
type TreeOptions struct {
	// Owner, when set, overrides every entry's owner (docker cp gives
	// copies root's ownership unless asked to keep it).
	Owner *[2]int
	// Skip names paths (relative to the tree, slash separated) left out,
	// with everything below them.
	Skip func(rel string) bool
	// Contents writes what a directory holds under name, without an entry
	// for the directory itself (docker cp SRC/. semantics).
	Contents bool
}

// WriteTree writes the file or directory at src into tw, named name (and
// name/... below it), with types, modes, owners, times, xattrs and hard
// links (within the tree) as they are. src is a trusted path: the caller
// has resolved it (inside a container root, through securejoin), and the
// walk never follows a symlink.
func WriteTree(ctx context.Context, tw *tar.Writer, src, name string, o TreeOptions) error {
	links := map[[2]uint64]string{}
	name = strings.TrimSuffix(name, "/")
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		rel = filepath.ToSlash(rel)
		if rel != "." && o.Skip != nil && o.Skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		entry := name
		if rel != "." {
			entry = path.Join(name, rel)
			if name == "" || name == "." {
				entry = rel
			}
		} else if o.Contents || name == "" || name == "." {
			return nil
		}
		return writeEntry(tw, p, entry, links, o.Owner)
	})
}

// writeEntry writes one file system object as a tar entry.
func writeEntry(tw *tar.Writer, p, name string, links map[[2]uint64]string, owner *[2]int) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	hdr := &tar.Header{
		Name:       name,
		Mode:       int64(st.Mode & 0o7777),
		Uid:        int(st.Uid),
		Gid:        int(st.Gid),
		ModTime:    time.Unix(st.Mtim.Unix()),
		AccessTime: time.Unix(st.Atim.Unix()),
		ChangeTime: time.Unix(st.Ctim.Unix()),
		Format:     tar.FormatPAX,
	}
	if owner != nil {
		hdr.Uid, hdr.Gid = owner[0], owner[1]
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case unix.S_IFREG:
		if st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[key]; ok {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				return tw.WriteHeader(hdr)
			}
			links[key] = name
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil // sockets are not content
	}
	if x := readXattrsL(p); len(x) > 0 {
		hdr.PAXRecords = x
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.Copy(tw, f)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if n != hdr.Size {
			return fmt.Errorf("%s changed size while it was read", p)
		}
	}
	return nil
}

// readXattrsL reads a path's xattrs without following a final symlink,
// leaving out overlay's own.
func readXattrsL(p string) map[string]string {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz <= 0 {
		return nil
	}
	buf := make([]byte, sz)
	if sz, err = unix.Llistxattr(p, buf); err != nil {
		return nil
	}
	out := map[string]string{}
	names := strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00")
	sort.Strings(names)
	for _, n := range names {
		if n == "" || refusedXattr(n) {
			continue
		}
		vsz, err := unix.Lgetxattr(p, n, nil)
		if err != nil {
			continue
		}
		v := make([]byte, vsz)
		if vsz, err = unix.Lgetxattr(p, n, v); err != nil {
			continue
		}
		out["SCHILY.xattr."+n] = string(v[:vsz])
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
