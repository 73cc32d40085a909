package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tu "github.com/berthproject/berth/internal/testutil"
	"golang.org/x/sys/unix"
)

// base makes a tree to change.
func baseTree(t *testing.T) string {
	dir := t.TempDir()
	if _, err := apply(t, dir, WhiteoutDelete,
		tu.Dir("etc"), tu.File("etc/conf", "v1"), tu.File("etc/keep", "k"), tu.Dir("var"), tu.Dir("var/lib"), tu.File("var/lib/db", "db"),
		tu.Dir("gone"), tu.File("gone/x", "x"), tu.Dir("opq"), tu.File("opq/old", "o"), tu.Symlink("link", "etc/conf")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// change makes the same changes in dir (a copy, or an overlay mount).
func change(t *testing.T, dir string) {
	must(t, os.WriteFile(filepath.Join(dir, "etc/conf"), []byte("v2"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "etc/new"), []byte("new"), 0o600))
	must(t, os.MkdirAll(filepath.Join(dir, "srv/app"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "srv/app/main"), []byte("main"), 0o755))
	must(t, os.Link(filepath.Join(dir, "srv/app/main"), filepath.Join(dir, "srv/app/main-hard")))
	must(t, os.RemoveAll(filepath.Join(dir, "gone")))
	must(t, os.Remove(filepath.Join(dir, "var/lib/db")))
	must(t, os.RemoveAll(filepath.Join(dir, "opq")))
	must(t, os.Mkdir(filepath.Join(dir, "opq"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "opq/fresh"), []byte("f"), 0o644))
	must(t, os.Remove(filepath.Join(dir, "link")))
	must(t, os.Symlink("etc/new", filepath.Join(dir, "link")))
}

// replay applies the layer ChangesTar wrote onto a fresh base and returns
// the result, which must equal the changed tree.
func replay(t *testing.T, layer []byte) string {
	dir := baseTree(t)
	if _, err := Apply(context.Background(), dir, bytes.NewReader(layer), Options{IgnoreOwner: os.Geteuid() != 0}); err != nil {
		t.Fatalf("apply the layer: %v", err)
	}
	return dir
}

func kinds(cs []Change) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.String())
	}
	return strings.Join(s, ", ")
}

func TestCompareChangesRoundTrip(t *testing.T) {
	base := baseTree(t)
	cur := t.TempDir()
	must(t, CopyDir(context.Background(), base, cur))
	change(t, cur)
	cs, err := CompareChanges(context.Background(), base, cur)
	if err != nil {
		t.Fatal(err)
	}
	got := kinds(cs)
	for _, want := range []string{"C /etc/conf", "A /etc/new", "A /srv", "A /srv/app/main", "D /gone", "D /var/lib/db", "C /link", "C /var/lib"} {
		if !strings.Contains(got, want) {
			t.Errorf("changes lack %q: %s", want, got)
		}
	}
	if strings.Contains(got, "/etc/keep") || strings.Contains(got, "D /gone/x") {
		t.Errorf("changes list what did not change, or children of a deleted directory: %s", got)
	}
	var buf bytes.Buffer
	if err := ChangesTar(context.Background(), &buf, cs, cur); err != nil {
		t.Fatal(err)
	}
	if d := tu.DiffTrees(tu.TreeOf(t, cur, tu.TreeOptions{}), tu.TreeOf(t, replay(t, buf.Bytes()), tu.TreeOptions{})); len(d) > 0 {
		t.Fatalf("the layer does not reproduce the changes:\n%s", strings.Join(d, "\n"))
	}
}

func TestOverlayChangesRoundTrip(t *testing.T) {
	tu.RequireRoot(t)
	base := baseTree(t)
	upper, work, merged := t.TempDir(), t.TempDir(), t.TempDir()
	if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+base+",upperdir="+upper+",workdir="+work); err != nil {
		t.Skipf("overlayfs: %v", err)
	}
	change(t, merged)
	want := tu.TreeOf(t, merged, tu.TreeOptions{})
	must(t, unix.Unmount(merged, 0))
	cs, err := OverlayChanges(context.Background(), upper, &OverlayLower{Dirs: []string{base}})
	if err != nil {
		t.Fatal(err)
	}
	got := kinds(cs)
	for _, want := range []string{"C /etc/conf", "A /etc/new", "A /srv", "D /gone", "D /var/lib/db", "C /opq"} {
		if !strings.Contains(got, want) {
			t.Errorf("changes lack %q: %s", want, got)
		}
	}
	var buf bytes.Buffer
	if err := ChangesTar(context.Background(), &buf, cs, upper); err != nil {
		t.Fatal(err)
	}
	if d := tu.DiffTrees(want, tu.TreeOf(t, replay(t, buf.Bytes()), tu.TreeOptions{})); len(d) > 0 {
		t.Fatalf("the layer does not reproduce the changes:\n%s", strings.Join(d, "\n"))
	}
}

func TestWriteTree(t *testing.T) {
	src := baseTree(t)
	must(t, os.Link(filepath.Join(src, "etc/conf"), filepath.Join(src, "etc/conf-hard")))
	for _, c := range []struct {
		name     string
		o        TreeOptions
		wantRoot string
	}{
		{"named", TreeOptions{}, "copy/"},
		{"contents", TreeOptions{Contents: true}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			name := "copy"
			if c.o.Contents {
				name = "."
			}
			must(t, WriteTree(context.Background(), tw, src, name, c.o))
			must(t, tw.Close())
			tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
			first, err := tr.Next()
			if err != nil {
				t.Fatal(err)
			}
			if c.wantRoot != "" && first.Name != c.wantRoot {
				t.Fatalf("first entry %q, want %q", first.Name, c.wantRoot)
			}
			dst := t.TempDir()
			if _, err := Apply(context.Background(), dst, bytes.NewReader(buf.Bytes()), Options{IgnoreOwner: os.Geteuid() != 0}); err != nil {
				t.Fatal(err)
			}
			got := dst
			if !c.o.Contents {
				got = filepath.Join(dst, "copy")
			}
			if d := tu.DiffTrees(tu.TreeOf(t, src, tu.TreeOptions{}), tu.TreeOf(t, got, tu.TreeOptions{})); len(d) > 0 {
				t.Fatalf("round trip:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}
