package testutil

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Entry is one tar entry for MakeTar. Type defaults to a regular file;
// Mode to 0644 for files and 0755 for directories.
type Entry struct {
	Name     string
	Type     byte
	Body     string
	Link     string
	Mode     int64
	UID, GID int
	Xattrs   map[string]string
	ModTime  time.Time
	Major    int64
	Minor    int64
}

// File, Dir, Symlink and Link make the common entries.
func File(name, body string) Entry { return Entry{Name: name, Body: body} }
func Dir(name string) Entry        { return Entry{Name: name, Type: tar.TypeDir} }
func Symlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Link: target}
}
func Link(name, target string) Entry { return Entry{Name: name, Type: tar.TypeLink, Link: target} }

// Stamp is the fixed time MakeTar gives entries without one.
var Stamp = time.Date(2024, 2, 29, 12, 30, 45, 0, time.UTC)

// MakeTar builds a PAX tar of the entries, in order, without any cleaning
// of names: hostile names reach the reader exactly as written.
func MakeTar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:     e.Name,
			Typeflag: e.Type,
			Linkname: e.Link,
			Mode:     e.Mode,
			Uid:      e.UID,
			Gid:      e.GID,
			ModTime:  e.ModTime,
			Devmajor: e.Major,
			Devminor: e.Minor,
			Format:   tar.FormatPAX,
		}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.ModTime.IsZero() {
			hdr.ModTime = Stamp
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if len(e.Xattrs) > 0 {
			hdr.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				hdr.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %q: %v", e.Name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, e.Body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Node is what TreeOf records of one file system entry: everything an
// unpack must keep.
type Node struct {
	Type     string // "file", "dir", "symlink", "char", "block", "fifo", "socket"
	Mode     os.FileMode
	UID, GID uint32
	Size     int64
	SHA256   string
	Target   string // symlink target
	Rdev     uint64
	Xattrs   map[string]string
	MtimeNS  int64
	LinkedTo string // another path sharing the inode (the first in order)
}

func (n Node) String() string {
	s := fmt.Sprintf("%s %v %d:%d", n.Type, n.Mode, n.UID, n.GID)
	switch n.Type {
	case "file":
		s += fmt.Sprintf(" size=%d sha256=%.12s", n.Size, n.SHA256)
	case "symlink":
		s += " -> " + n.Target
	case "char", "block":
		s += fmt.Sprintf(" rdev=%d", n.Rdev)
	}
	if n.LinkedTo != "" {
		s += " linked=" + n.LinkedTo
	}
	if len(n.Xattrs) > 0 {
		keys := make([]string, 0, len(n.Xattrs))
		for k := range n.Xattrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s += fmt.Sprintf(" %s=%q", k, n.Xattrs[k])
		}
	}
	return s
}

// TreeOptions tune TreeOf.
type TreeOptions struct {
	// Mtimes records modification times (off when comparing unpacks whose
	// tools set directory times differently is wanted).
	Mtimes bool
	// SkipXattr drops xattrs with these prefixes.
	SkipXattr []string
	// RootMeta includes the root directory itself as ".".
	RootMeta bool
}

// TreeOf walks dir and returns every entry by slash path relative to it.
func TreeOf(t testing.TB, dir string, o TreeOptions) map[string]Node {
	t.Helper()
	tree := map[string]Node{}
	inodes := map[[2]uint64]string{}
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	sort.Strings(paths)
	for _, p := range paths {
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." && !o.RootMeta {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		n := Node{Mode: os.FileMode(st.Mode & 0o777), UID: st.Uid, GID: st.Gid, Xattrs: xattrsOf(p, o.SkipXattr)}
		if st.Mode&unix.S_ISUID != 0 {
			n.Mode |= os.ModeSetuid
		}
		if st.Mode&unix.S_ISGID != 0 {
			n.Mode |= os.ModeSetgid
		}
		if st.Mode&unix.S_ISVTX != 0 {
			n.Mode |= os.ModeSticky
		}
		if o.Mtimes {
			n.MtimeNS = st.Mtim.Nano()
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			n.Type, n.Size = "file", st.Size
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.Sum256(b)
			n.SHA256 = hex.EncodeToString(h[:])
			if st.Nlink > 1 {
				key := [2]uint64{st.Dev, st.Ino}
				if first, ok := inodes[key]; ok {
					n.LinkedTo = first
				} else {
					inodes[key] = rel
				}
			}
		case unix.S_IFDIR:
			n.Type = "dir"
		case unix.S_IFLNK:
			n.Type = "symlink"
			n.Target, _ = os.Readlink(p)
			n.Mode = 0
		case unix.S_IFCHR:
			n.Type, n.Rdev = "char", st.Rdev
		case unix.S_IFBLK:
			n.Type, n.Rdev = "block", st.Rdev
		case unix.S_IFIFO:
			n.Type = "fifo"
		default:
			n.Type = "socket"
		}
		tree[rel] = n
	}
	return tree
}

func xattrsOf(p string, skip []string) map[string]string {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz <= 0 {
		return nil
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil
	}
	out := map[string]string{}
names:
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		for _, s := range skip {
			if strings.HasPrefix(name, s) {
				continue names
			}
		}
		v := make([]byte, 4096)
		n, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			continue
		}
		out[name] = string(v[:n])
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// DiffTrees lists the differences between two trees, one line each;
// none means equal.
func DiffTrees(a, b map[string]Node) []string {
	var out []string
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		na, oka := a[k]
		nb, okb := b[k]
		switch {
		case !oka:
			out = append(out, fmt.Sprintf("+ %s: %s", k, nb))
		case !okb:
			out = append(out, fmt.Sprintf("- %s: %s", k, na))
		case na.String() != nb.String() || na.MtimeNS != nb.MtimeNS:
			out = append(out, fmt.Sprintf("~ %s: %s (mtime %d) != %s (mtime %d)", k, na, na.MtimeNS, nb, nb.MtimeNS))
		}
	}
	return out
}
