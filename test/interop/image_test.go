// Package interop runs berth's image store against the tools people
// already have: images written by podman and skopeo load in berth and
// unpack to the same tree as umoci's, and what berth saves loads and runs
// in podman and passes skopeo inspect.
//
// The peers come from Debian (make test installs them); each test uses
// its own podman storage and berth root under a temporary directory.
package interop

import (
	"archive/tar"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tu "github.com/berthproject/berth/internal/testutil"
)

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("interop test: needs %s from Debian (make test installs it): %v", name, err)
	}
	return p
}

// env is one test's private berth store and podman storage.
type env struct {
	t     *testing.T
	dir   string
	pod   string
	berth string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	tu.RequireRoot(t)
	requireTool(t, "podman")
	requireTool(t, "skopeo")
	requireTool(t, "umoci")
	requireTool(t, "runc")
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// podman refuses a runroot longer than 50 characters.
	pod, err := os.MkdirTemp("/tmp", "bpod")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, pod: pod, berth: tu.Binary(t, "berth")}
	t.Cleanup(func() {
		exec.Command(e.berth, e.berthArgs("image", "unmount", "--all")...).Run()
		// podman leaves its storage mounted; take it down with the test.
		exec.Command("podman", e.podmanArgs("system", "reset", "-f")...).Run()
		exec.Command("umount", "-R", pod).Run()
		os.RemoveAll(pod)
	})
	return e
}

func (e *env) berthArgs(args ...string) []string {
	return append([]string{"--root", filepath.Join(e.dir, "berth"), "--runroot", filepath.Join(e.dir, "berth-run")}, args...)
}

func (e *env) podmanArgs(args ...string) []string {
	return append([]string{
		"--root", filepath.Join(e.pod, "root"), "--runroot", filepath.Join(e.pod, "run"),
		"--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--runtime", "runc",
		"--events-backend", "file", "--tmpdir", filepath.Join(e.pod, "tmp"),
	}, args...)
}

// storage is podman's store as a containers-storage transport prefix.
func (e *env) storage() string {
	return "containers-storage:[overlay@" + filepath.Join(e.pod, "root") + "+" + filepath.Join(e.pod, "run") + "]"
}

func (e *env) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (e *env) berthRun(t *testing.T, args ...string) string {
	return e.run(t, e.berth, e.berthArgs(args...)...)
}
func (e *env) podman(t *testing.T, args ...string) string {
	return e.run(t, "podman", e.podmanArgs(args...)...)
}

// richImage is a three-layer image holding every kind of entry the store
// must keep exactly, on a busybox base so that it runs.
func richImage(t *testing.T) *tu.TestImage {
	t.Helper()
	tu.RequireBusybox(t)
	root := t.TempDir()
	if err := tu.MakeBusyboxRootfs(root); err != nil {
		t.Fatal(err)
	}
	base := entriesOf(t, root)
	capV2 := string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	base = append(base,
		tu.Entry{Name: "srv/", Type: tar.TypeDir, Mode: 0o2775, UID: 1000, GID: 1000},
		tu.Entry{Name: "srv/private/", Type: tar.TypeDir, Mode: 0o700, UID: 1000, GID: 1000},
		tu.Entry{Name: "srv/private/key", Body: "secret", Mode: 0o600, UID: 1000, GID: 1000},
		tu.Entry{Name: "srv/tool", Body: "setuid", Mode: 0o4755},
		tu.Entry{Name: "srv/gtool", Body: "setgid", Mode: 0o2755, GID: 6},
		tu.Entry{Name: "srv/ping", Body: "caps", Mode: 0o755, Xattrs: map[string]string{"security.capability": capV2}},
		tu.Entry{Name: "srv/noted", Body: "with a note", Mode: 0o644, Xattrs: map[string]string{"user.note": "kept"}},
		tu.Entry{Name: "srv/hard-a", Body: "linked twice", Mode: 0o644},
		tu.Entry{Name: "srv/hard-b", Type: tar.TypeLink, Link: "srv/hard-a"},
		tu.Entry{Name: "srv/rel", Type: tar.TypeSymlink, Link: "hard-a"},
		tu.Entry{Name: "srv/abs", Type: tar.TypeSymlink, Link: "/etc/passwd"},
		tu.Entry{Name: "srv/dangling", Type: tar.TypeSymlink, Link: "../nowhere/at/all"},
		tu.Entry{Name: "srv/fifo", Type: tar.TypeFifo, Mode: 0o640},
		tu.Entry{Name: "srv/null", Type: tar.TypeChar, Major: 1, Minor: 3, Mode: 0o666},
		tu.Entry{Name: "srv/sp ace", Body: "1"},
		tu.Entry{Name: "srv/ünïcödé", Body: "2"},
		tu.Entry{Name: "srv/empty", Body: ""},
		tu.Entry{Name: "srv/emptydir/", Type: tar.TypeDir, Mode: 0o755},
		tu.Entry{Name: "srv/opq/", Type: tar.TypeDir, Mode: 0o755},
		tu.Entry{Name: "srv/opq/old1", Body: "old"},
		tu.Entry{Name: "srv/opq/old2", Body: "old"},
		tu.Entry{Name: "srv/gone", Body: "to be deleted"},
		tu.Entry{Name: "srv/becomes-file/", Type: tar.TypeDir, Mode: 0o755},
		tu.Entry{Name: "srv/becomes-file/x", Body: "x"},
	)
	layer2 := []tu.Entry{
		{Name: "srv/", Type: tar.TypeDir, Mode: 0o2775, UID: 1000, GID: 1000},
		{Name: "srv/.wh.gone"},
		{Name: "srv/opq/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "srv/opq/.wh..wh..opq"},
		{Name: "srv/opq/new", Body: "new"},
		{Name: "srv/noted", Body: "changed above", Mode: 0o640, Xattrs: map[string]string{"user.note": "changed"}},
		{Name: "srv/added", Body: "added in layer 2"},
	}
	layer3 := []tu.Entry{
		{Name: "srv/", Type: tar.TypeDir, Mode: 0o2775, UID: 1000, GID: 1000},
		{Name: "srv/.wh.becomes-file"},
		{Name: "srv/becomes-file", Body: "now a file"},
		{Name: "srv/rel2", Type: tar.TypeSymlink, Link: "added"},
	}
	return tu.BuildImage(t, tu.ImageOptions{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}}, base, layer2, layer3)
}

// entriesOf makes tar entries of a directory tree.
func entriesOf(t *testing.T, root string) []tu.Entry {
	var out []tu.Entry
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case fi.IsDir():
			out = append(out, tu.Entry{Name: rel + "/", Type: tar.TypeDir, Mode: int64(fi.Mode().Perm() | modeBits(fi))})
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out = append(out, tu.Entry{Name: rel, Type: tar.TypeSymlink, Link: l})
		default:
			b, _ := os.ReadFile(p)
			out = append(out, tu.Entry{Name: rel, Body: string(b), Mode: int64(fi.Mode().Perm())})
		}
		return nil
	})
	return out
}

func modeBits(fi os.FileInfo) os.FileMode {
	if fi.Mode()&os.ModeSticky != 0 {
		return 0o1000
	}
	return 0
}

// unpackUmoci unpacks an OCI layout's image with umoci, the reference.
func (e *env) unpackUmoci(t *testing.T, layout, tag string) string {
	bundle := filepath.Join(e.dir, "umoci-"+filepath.Base(layout)+"-"+tag)
	e.run(t, "umoci", "unpack", "--image", layout+":"+tag, bundle)
	return filepath.Join(bundle, "rootfs")
}

// mounted is berth's merged tree of an image.
func (e *env) mounted(t *testing.T, ref string) string {
	return strings.TrimSpace(e.berthRun(t, "image", "mount", ref))
}

var treeOpts = tu.TreeOptions{SkipXattr: []string{"security.selinux", "trusted.", "system."}}

func sameTree(t *testing.T, want, got string) {
	t.Helper()
	if d := tu.DiffTrees(tu.TreeOf(t, want, treeOpts), tu.TreeOf(t, got, treeOpts)); len(d) > 0 {
		t.Fatalf("%s (reference) and %s (berth) differ:\n%s", want, got, strings.Join(d, "\n"))
	}
}

func TestPodmanAndSkopeoImagesLoadInBerth(t *testing.T) {
	e := newEnv(t)
	img := richImage(t)
	src := filepath.Join(e.dir, "src.tar")
	if err := os.WriteFile(src, tu.OCIArchive(t, []*tu.TestImage{img}, []string{"localhost/rich:1"}), 0o644); err != nil {
		t.Fatal(err)
	}
	// The reference tree: umoci's unpack of the image as podman stored it.
	e.podman(t, "load", "-q", "-i", src)
	layout := filepath.Join(e.dir, "skopeo-layout")
	e.run(t, "skopeo", "copy", "-q", e.storage()+"localhost/rich:1", "oci:"+layout+":rich")
	want := e.unpackUmoci(t, layout, "rich")
	// The reference must hold what the comparison is about, or equality
	// would prove nothing.
	ref := tu.TreeOf(t, want, treeOpts)
	for p, ok := range map[string]bool{
		"srv/ping has security.capability": ref["srv/ping"].Xattrs["security.capability"] != "",
		"srv/noted has user.note=changed":  ref["srv/noted"].Xattrs["user.note"] == "changed",
		"srv/hard-b is a hard link":        ref["srv/hard-b"].LinkedTo == "srv/hard-a",
		"srv/null is a device":             ref["srv/null"].Type == "char",
		"srv/tool is setuid":               ref["srv/tool"].Mode&os.ModeSetuid != 0,
		"srv is setgid":                    ref["srv"].Mode&os.ModeSetgid != 0,
		"srv/private is 1000's":            ref["srv/private"].UID == 1000,
		"srv/opq/old1 is gone":             ref["srv/opq/old1"].Type == "",
		"srv/becomes-file is a file":       ref["srv/becomes-file"].Type == "file",
		"bin/busybox is there":             ref["bin/busybox"].Size > 100000,
	} {
		if !ok {
			t.Fatalf("umoci's unpack lacks what the test is about: %s", p)
		}
	}

	e.podman(t, "save", "-q", "--format", "docker-archive", "-o", filepath.Join(e.dir, "podman-docker.tar"), "localhost/rich:1")
	e.podman(t, "save", "-q", "--format", "oci-archive", "-o", filepath.Join(e.dir, "podman-oci.tar"), "localhost/rich:1")

	for _, c := range []struct{ name, path, ref string }{
		// ref "": whatever name or ID berth reports (an OCI layout that
		// names the image by a bare tag gives no repository).
		{"podman save docker-archive", filepath.Join(e.dir, "podman-docker.tar"), "localhost/rich:1"},
		{"podman save oci-archive", filepath.Join(e.dir, "podman-oci.tar"), ""},
		{"skopeo copy oci:", layout, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := e.berthRun(t, "load", "-i", c.path)
			ref := loadedRef(t, out)
			if c.ref != "" && ref != c.ref {
				t.Fatalf("berth load named the image %q, want %q", ref, c.ref)
			}
			sameTree(t, want, e.mounted(t, ref))
			e.berthRun(t, "image", "unmount", ref)
		})
	}
	if out := e.berthRun(t, "system", "check"); !strings.Contains(out, "No problems found") {
		t.Fatalf("system check: %s", out)
	}
}

func TestBerthSavedImagesWorkInPodmanAndSkopeo(t *testing.T) {
	e := newEnv(t)
	img := richImage(t)
	src := filepath.Join(e.dir, "src.tar")
	if err := os.WriteFile(src, tu.OCIArchive(t, []*tu.TestImage{img}, []string{"localhost/rich:1"}), 0o644); err != nil {
		t.Fatal(err)
	}
	e.berthRun(t, "load", "-i", src)
	for _, f := range []string{"docker-archive", "oci-archive", "oci-dir"} {
		t.Run(f, func(t *testing.T) {
			out := filepath.Join(e.dir, "berth-"+f)
			e.berthRun(t, "save", "--format", f, "-o", out, "localhost/rich:1")
			transport := map[string]string{"docker-archive": "docker-archive:", "oci-archive": "oci-archive:", "oci-dir": "oci:"}[f]
			inspect := e.run(t, "skopeo", "inspect", transport+out)
			if !strings.Contains(inspect, `"Architecture": "amd64"`) || !strings.Contains(inspect, `"Os": "linux"`) {
				t.Fatalf("skopeo inspect %s:\n%s", f, inspect)
			}
			// podman load takes archives; a layout goes in through skopeo.
			name := "localhost/from-berth-" + f + ":1"
			if f == "oci-dir" {
				e.run(t, "skopeo", "copy", "-q", "oci:"+out, e.storage()+name)
			} else {
				e.podman(t, "load", "-q", "-i", out)
				e.podman(t, "tag", "localhost/rich:1", name)
				e.podman(t, "rmi", "localhost/rich:1")
			}
			got := e.podman(t, "run", "--rm", "--network", "none", "--pull", "never",
				"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
				name, "sh", "-c", "cat /srv/added /srv/becomes-file; ls /srv/opq; stat -c '%a %u:%g' /srv/tool /srv/private/key; test -e /srv/gone || echo gone")
			want := "added in layer 2now a filenew\n4755 0:0\n600 1000:1000\ngone\n"
			if got != want {
				t.Fatalf("podman run of berth's %s:\n%q\nwant\n%q", f, got, want)
			}
		})
	}
}

// loadedRef is the name (or, for an unnamed image, the ID) berth load
// reported.
func loadedRef(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "Loaded image: "); ok {
			return strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "Loaded image ID: "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("berth load printed no image: %q", out)
	return ""
}
