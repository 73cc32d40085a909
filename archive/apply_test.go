package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	tu "github.com/berthproject/berth/internal/testutil"
	"golang.org/x/sys/unix"
)

// capV2 is a security.capability value granting cap_net_bind_service
// (VFS_CAP_REVISION_2, effective bit set).
var capV2 = string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

func TestApplyKeepsEverything(t *testing.T) {
	root := os.Geteuid() == 0
	mt := time.Date(2001, 2, 3, 4, 5, 6, 789000000, time.UTC)
	entries := []tu.Entry{
		{Name: "./", Type: tar.TypeDir, Mode: 0o755, ModTime: mt},
		{Name: "bin/", Type: tar.TypeDir, Mode: 0o755, ModTime: mt},
		{Name: "bin/tool", Body: "#!/bin/sh\n", Mode: 0o4755, ModTime: mt},
		{Name: "bin/group-tool", Body: "g", Mode: 0o2711, ModTime: mt},
		{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777, ModTime: mt},
		{Name: "etc/", Type: tar.TypeDir, Mode: 0o750, ModTime: mt},
		{Name: "etc/conf", Body: "a=1\n", Mode: 0o600, ModTime: mt, Xattrs: map[string]string{"user.origin": "layer"}},
		{Name: "etc/conf.hard", Type: tar.TypeLink, Link: "etc/conf"},
		{Name: "etc/rel", Type: tar.TypeSymlink, Link: "conf", ModTime: mt},
		{Name: "etc/abs", Type: tar.TypeSymlink, Link: "/does/not/exist", ModTime: mt},
		{Name: "run/pipe", Type: tar.TypeFifo, Mode: 0o620, ModTime: mt},
		{Name: "odd/sp ace", Body: "1", ModTime: mt},
		{Name: "odd/new\nline", Body: "2", ModTime: mt},
		{Name: "odd/\xff\xfe-not-utf8", Body: "3", ModTime: mt},
		{Name: "odd/ünïcödé", Body: "4", ModTime: mt},
		{Name: "odd/" + strings.Repeat("l", 255), Body: "5", ModTime: mt},
		{Name: "empty", Body: "", Mode: 0o400, ModTime: mt},
	}
	if root {
		entries = append(entries,
			tu.Entry{Name: "home/user/", Type: tar.TypeDir, Mode: 0o700, UID: 1000, GID: 1000, ModTime: mt},
			tu.Entry{Name: "home/user/file", Body: "mine", Mode: 0o640, UID: 1000, GID: 100, ModTime: mt},
			tu.Entry{Name: "home/user/link", Type: tar.TypeSymlink, Link: "file", UID: 1000, GID: 1000, ModTime: mt},
			tu.Entry{Name: "bin/ping", Body: "elf", Mode: 0o755, ModTime: mt, Xattrs: map[string]string{"security.capability": capV2}},
			tu.Entry{Name: "dev/null", Type: tar.TypeChar, Major: 1, Minor: 3, Mode: 0o666, ModTime: mt},
			tu.Entry{Name: "dev/loop0", Type: tar.TypeBlock, Major: 7, Minor: 0, Mode: 0o660, GID: 6, ModTime: mt},
		)
	}
	dir := t.TempDir()
	res, err := Apply(context.Background(), dir, bytes.NewReader(tu.MakeTar(t, entries...)), Options{IgnoreOwner: !root})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != len(entries) {
		t.Errorf("applied %d entries, want %d", res.Entries, len(entries))
	}
	tree := tu.TreeOf(t, dir, tu.TreeOptions{Mtimes: true})
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	want := map[string]string{
		"bin/tool":       fmt.Sprintf("file urwxr-xr-x %d:%d", uid, gid),
		"bin/group-tool": fmt.Sprintf("file grwx--x--x %d:%d", uid, gid),
		"tmp":            fmt.Sprintf("dir trwxrwxrwx %d:%d", uid, gid),
		"etc":            fmt.Sprintf("dir -rwxr-x--- %d:%d", uid, gid),
		"etc/rel":        fmt.Sprintf("symlink ---------- %d:%d -> conf", uid, gid),
		"etc/abs":        fmt.Sprintf("symlink ---------- %d:%d -> /does/not/exist", uid, gid),
		"run/pipe":       fmt.Sprintf("fifo -rw--w---- %d:%d", uid, gid),
		"empty":          fmt.Sprintf("file -r-------- %d:%d size=0", uid, gid),
	}
	if root {
		want["home/user/file"] = "file -rw-r----- 1000:100 size=4"
		want["home/user/link"] = "symlink ---------- 1000:1000 -> file"
		want["dev/null"] = fmt.Sprintf("char -rw-rw-rw- 0:0 rdev=%d", unix.Mkdev(1, 3))
		want["dev/loop0"] = fmt.Sprintf("block -rw-rw---- 0:6 rdev=%d", unix.Mkdev(7, 0))
	}
	for p, w := range want {
		n, ok := tree[p]
		if !ok {
			t.Errorf("%s missing", p)
			continue
		}
		if got := n.String(); !strings.HasPrefix(got, w) {
			t.Errorf("%s: %s, want %s", p, got, w)
		}
	}
	if n := tree["etc/conf"]; n.Xattrs["user.origin"] != "layer" && !errors.Is(xattrSupport(dir), unix.ENOTSUP) {
		t.Errorf("etc/conf xattrs %v", n.Xattrs)
	}
	if tree["etc/conf.hard"].LinkedTo != "etc/conf" {
		t.Errorf("etc/conf.hard is not a hard link of etc/conf: %+v", tree["etc/conf.hard"])
	}
	if root {
		if tree["bin/ping"].Xattrs["security.capability"] != capV2 {
			t.Errorf("security.capability not kept: %q", tree["bin/ping"].Xattrs)
		}
	}
	for _, p := range []string{"bin", "bin/tool", "etc", "etc/conf", "etc/rel", "odd/sp ace", "odd/new\nline", "odd/\xff\xfe-not-utf8", "odd/ünïcödé"} {
		if got := tree[p].MtimeNS; got != mt.UnixNano() {
			t.Errorf("%q mtime %v, want %v", p, time.Unix(0, got).UTC(), mt)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil || st.Mtim.Nano() != mt.UnixNano() {
		t.Errorf("root mtime %v (%v), want the ./ entry's", time.Unix(0, st.Mtim.Nano()), err)
	}
}

func xattrSupport(dir string) error {
	return unix.Setxattr(dir, "user.probe", []byte("1"), 0)
}

func TestApplyReplacesAcrossTypes(t *testing.T) {
	dir := t.TempDir()
	steps := [][]tu.Entry{
		{tu.File("a", "file"), tu.Dir("b"), tu.File("b/child", "c"), tu.Symlink("c", "a")},
		{tu.Dir("a"), tu.File("a/inside", "x"), tu.File("b", "now a file"), tu.File("c", "not a link")},
		{tu.Symlink("a", "b"), tu.File("a", "dup 1"), tu.File("a", "dup 2")},
	}
	for i, s := range steps {
		if _, err := apply(t, dir, WhiteoutDelete, s...); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if got := readFile(t, filepath.Join(dir, "a")); got != "dup 2" {
		t.Errorf("a = %q, want the last duplicate", got)
	}
	if got := readFile(t, filepath.Join(dir, "b")); got != "now a file" {
		t.Errorf("b = %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "c")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("c: %v %v", fi, err)
	}
}

func TestWhiteoutDelete(t *testing.T) {
	dir := t.TempDir()
	if _, err := apply(t, dir, WhiteoutDelete,
		tu.Dir("keep"), tu.File("keep/a", "a"), tu.File("gone", "g"), tu.Dir("opq"), tu.File("opq/old", "o"), tu.Dir("opq/olddir"), tu.File("opq/olddir/x", "x"), tu.Dir("tree"), tu.File("tree/deep", "d")); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, dir, WhiteoutDelete,
		tu.File(".wh.gone", ""), tu.File(".wh.tree", ""), tu.File("opq/new-before", "n"), tu.File("opq/.wh..wh..opq", ""), tu.File("opq/new-after", "n"), tu.File(".wh.never-existed", "")); err != nil {
		t.Fatal(err)
	}
	tree := tu.TreeOf(t, dir, tu.TreeOptions{})
	var names []string
	for k := range tree {
		names = append(names, k)
	}
	got := strings.Join(sorted(names), " ")
	if want := "keep keep/a opq opq/new-after opq/new-before"; got != want {
		t.Fatalf("after whiteouts: %s, want %s", got, want)
	}
}

func TestWhiteoutOverlayFormat(t *testing.T) {
	tu.RequireRoot(t)
	dir := t.TempDir()
	if _, err := apply(t, dir, WhiteoutOverlay, tu.File("usr/.wh.gone", ""), tu.Dir("opq"), tu.File("opq/.wh..wh..opq", ""), tu.File("opq/kept", "k")); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "usr/gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("usr/gone is not an overlay whiteout: mode %o rdev %d err %v", st.Mode, st.Rdev, err)
	}
	v := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(dir, "opq"), opaqueXattr, v)
	if err != nil || string(v[:n]) != "y" {
		t.Fatalf("opq is not opaque: %q %v", v[:n], err)
	}
}

// TestOverlayMatchesCopy applies the same layers both ways, mounts the
// overlay ones, and requires the two trees to be identical: the overlay
// conversion is right only if the kernel's merge of it equals the plain
// application.
func TestOverlayMatchesCopy(t *testing.T) {
	tu.RequireRoot(t)
	mt := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	layers := [][]tu.Entry{
		{
			{Name: "etc/", Type: tar.TypeDir, Mode: 0o755, ModTime: mt},
			{Name: "etc/passwd", Body: "root:x:0:0\n", ModTime: mt},
			{Name: "etc/group", Body: "root:x:0:\n", ModTime: mt},
			{Name: "srv/", Type: tar.TypeDir, Mode: 0o750, UID: 33, GID: 33, ModTime: mt},
			{Name: "srv/data/", Type: tar.TypeDir, Mode: 0o700, UID: 33, GID: 33, ModTime: mt, Xattrs: map[string]string{"user.kind": "data"}},
			{Name: "srv/data/a", Body: "a", ModTime: mt},
			{Name: "srv/data/b", Body: "b", ModTime: mt},
			{Name: "lib/", Type: tar.TypeDir, Mode: 0o755, ModTime: mt},
			{Name: "lib/libc.so", Body: "libc", Mode: 0o755, ModTime: mt},
			{Name: "opt/", Type: tar.TypeDir, Mode: 0o755, ModTime: mt},
			{Name: "opt/old/", Type: tar.TypeDir, Mode: 0o755, ModTime: mt},
			{Name: "opt/old/x", Body: "x", ModTime: mt},
		},
		{
			// Implied parents whose attributes must come from below.
			{Name: "srv/data/c", Body: "c", ModTime: mt},
			{Name: "etc/.wh.group", ModTime: mt},
			// A hard link to a file that only the layer below has.
			{Name: "lib/libc.so.6", Type: tar.TypeLink, Link: "lib/libc.so"},
			{Name: "opt/.wh..wh..opq", ModTime: mt},
			{Name: "opt/new", Body: "new", ModTime: mt},
		},
		{
			{Name: "srv/.wh.data", ModTime: mt},
			{Name: "srv/data2/", Type: tar.TypeDir, Mode: 0o711, ModTime: mt},
			{Name: "etc/group", Body: "back\n", ModTime: mt},
		},
	}
	flat := t.TempDir()
	var uppers []string
	for i, l := range layers {
		data := tu.MakeTar(t, l...)
		if _, err := Apply(context.Background(), flat, bytes.NewReader(data), Options{Whiteouts: WhiteoutDelete}); err != nil {
			t.Fatalf("copy layer %d: %v", i, err)
		}
		up := t.TempDir()
		lower := &OverlayLower{}
		for j := len(uppers) - 1; j >= 0; j-- {
			lower.Dirs = append(lower.Dirs, uppers[j])
		}
		if _, err := Apply(context.Background(), up, bytes.NewReader(data), Options{Whiteouts: WhiteoutOverlay, Lower: lower}); err != nil {
			t.Fatalf("overlay layer %d: %v", i, err)
		}
		uppers = append(uppers, up)
	}
	merged := t.TempDir()
	var lowerdirs []string
	for j := len(uppers) - 1; j >= 0; j-- {
		lowerdirs = append(lowerdirs, uppers[j])
	}
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(lowerdirs, ":")); err != nil {
		t.Skipf("overlayfs is not available here: %v", err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	opts := tu.TreeOptions{Mtimes: true, SkipXattr: []string{"trusted.overlay.", "security.selinux"}}
	if d := tu.DiffTrees(tu.TreeOf(t, flat, opts), tu.TreeOf(t, merged, opts)); len(d) > 0 {
		t.Fatalf("overlay merge differs from the plain application:\n%s", strings.Join(d, "\n"))
	}
}

func TestDecompressStream(t *testing.T) {
	payload := tu.MakeTar(t, tu.File("f", strings.Repeat("data", 1000)))
	for _, c := range []Compression{Uncompressed, Gzip, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			var buf bytes.Buffer
			w, err := CompressStream(&buf, c)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(payload)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r, got, err := DecompressStream(&buf)
			if err != nil || got != c {
				t.Fatalf("detected %v, %v; want %v", got, err, c)
			}
			var out bytes.Buffer
			if _, err := out.ReadFrom(r); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), payload) {
				t.Fatal("round trip changed the data")
			}
		})
	}
	if _, _, err := DecompressStream(bytes.NewReader([]byte{0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2})); err == nil || !strings.Contains(err.Error(), "xz") {
		t.Fatalf("xz: %v", err)
	}
}

func TestBoundedStopsABomb(t *testing.T) {
	var buf bytes.Buffer
	w, _ := CompressStream(&buf, Gzip)
	zero := make([]byte, 1<<20)
	for i := 0; i < 64; i++ {
		w.Write(zero)
	}
	w.Close()
	r, _, err := DecompressStream(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, err = out.ReadFrom(Bounded(r, 8<<20))
	var le *LimitError
	if !errors.As(err, &le) {
		t.Fatalf("64 MiB of zeros through an 8 MiB bound: %v", err)
	}
	if out.Len() > 8<<20+1 {
		t.Fatalf("read %d bytes past the bound", out.Len())
	}
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}
