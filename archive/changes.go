package archive

import (
	"archive/tar"
	"context"
	"errors"
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

// ChangeKind is how a path changed: added, changed or deleted (docker
// diff's A, C and D).
type ChangeKind byte

const (
	ChangeAdd    ChangeKind = 'A'
	ChangeModify ChangeKind = 'C'
	ChangeDelete ChangeKind = 'D'
)

// Change is one changed path ("/etc/hosts").
type Change struct {
	Kind ChangeKind
	Path string
	// Opaque: a directory whose lower content was hidden (it was removed
	// and made again).
	Opaque bool
}

func (c Change) String() string { return string(c.Kind) + " " + c.Path }

// OverlayChanges lists what an overlay upper directory changes over the
// layers below it.
func OverlayChanges(ctx context.Context, upper string, lower Lower) ([]Change, error) {
	var out []Change
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(upper, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			out = append(out, Change{Kind: ChangeDelete, Path: "/" + rel})
			return nil
		}
		kind := ChangeAdd
		if lower != nil {
			if f, err := lower.Lookup(rel); err == nil {
				f.Close()
				kind = ChangeModify
			}
		}
		c := Change{Kind: kind, Path: "/" + rel}
		if d.IsDir() {
			var v [1]byte
			if n, err := unix.Lgetxattr(p, opaqueXattr, v[:]); err == nil && n == 1 && v[0] == 'y' {
				c.Opaque = true
			}
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// CompareChanges lists how the tree cur differs from base (for the vfs
// snapshotter, whose snapshots are whole copies): by type, mode, owner,
// size, modification time and link target, as docker diff compares.
func CompareChanges(ctx context.Context, base, cur string) ([]Change, error) {
	var out []Change
	err := filepath.WalkDir(cur, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(cur, p)
		if rel == "." {
			return nil
		}
		var a, b unix.Stat_t
		if err := unix.Lstat(p, &a); err != nil {
			return err
		}
		if err := unix.Lstat(filepath.Join(base, rel), &b); err != nil {
			out = append(out, Change{Kind: ChangeAdd, Path: "/" + filepath.ToSlash(rel)})
			return nil
		}
		if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || a.Rdev != b.Rdev ||
			(a.Mode&unix.S_IFMT != unix.S_IFDIR && (a.Size != b.Size || a.Mtim != b.Mtim)) {
			out = append(out, Change{Kind: ChangeModify, Path: "/" + filepath.ToSlash(rel)})
		} else if a.Mode&unix.S_IFMT == unix.S_IFLNK {
			la, _ := os.Readlink(p)
			lb, _ := os.Readlink(filepath.Join(base, rel))
			if la != lb {
				out = append(out, Change{Kind: ChangeModify, Path: "/" + filepath.ToSlash(rel)})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		if rel == "." {
			return nil
		}
		if _, err := os.Lstat(filepath.Join(cur, rel)); errors.Is(err, fs.ErrNotExist) {
			out = append(out, Change{Kind: ChangeDelete, Path: "/" + filepath.ToSlash(rel)})
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A changed directory's mtime changes whenever an entry in it does;
	// report the directory as changed then, as docker diff does.
	changed := map[string]bool{}
	for _, c := range out {
		changed[c.Path] = true
	}
	for _, c := range append([]Change(nil), out...) {
		for dir := path.Dir(c.Path); dir != "/" && dir != "."; dir = path.Dir(dir) {
			if changed[dir] {
				break
			}
			changed[dir] = true
			if _, err := os.Lstat(filepath.Join(cur, dir)); err == nil {
				out = append(out, Change{Kind: ChangeModify, Path: dir})
			}
		}
	}
	sortChanges(out)
	return out, nil
}

func sortChanges(cs []Change) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].Path < cs[j].Path })
}

// ChangesTar writes the layer that makes changes, taking added and
// changed entries from root (the container's tree: an overlay upper
// directory, or a whole copy), deletions as whiteouts, and every parent
// directory of a change, so the layer applies on its own.
func ChangesTar(ctx context.Context, w io.Writer, changes []Change, root string) error {
	tw := tar.NewWriter(w)
	sorted := append([]Change(nil), changes...)
	sortChanges(sorted)
	written := map[string]bool{}
	links := map[[2]uint64]string{}
	var writeParents func(dir string) error
	writeParents = func(dir string) error {
		if dir == "/" || dir == "." || written[dir] {
			return nil
		}
		if err := writeParents(path.Dir(dir)); err != nil {
			return err
		}
		written[dir] = true
		return writeEntry(tw, filepath.Join(root, dir), strings.TrimPrefix(dir, "/"), links, nil)
	}
	for _, c := range sorted {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel := strings.TrimPrefix(c.Path, "/")
		if err := writeParents(path.Dir(c.Path)); err != nil {
			return err
		}
		switch c.Kind {
		case ChangeDelete:
			wh := path.Join(path.Dir(rel), whiteoutPrefix+path.Base(rel))
			if err := tw.WriteHeader(&tar.Header{Name: wh, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
				return err
			}
		default:
			if written[c.Path] {
				continue
			}
			written[c.Path] = true
			if err := writeEntry(tw, filepath.Join(root, rel), rel, links, nil); err != nil {
				return err
			}
			if c.Opaque {
				if err := tw.WriteHeader(&tar.Header{Name: path.Join(rel, opaqueMarker), Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
					return err
				}
			}
		}
	}
	return tw.Close()
}
