package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/berthproject/berth/errdefs"
	tu "github.com/berthproject/berth/internal/testutil"
	"golang.org/x/sys/unix"
)

// The conformance suite: every test here runs against every
// snapshotter, so that the engine may rely on the interface alone.

type maker func(t *testing.T, dir string) Snapshotter

func drivers(t *testing.T) map[string]maker {
	m := map[string]maker{
		"vfs": func(t *testing.T, dir string) Snapshotter {
			s, err := NewVFS(dir)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	if os.Geteuid() == 0 {
		m["overlay"] = func(t *testing.T, dir string) Snapshotter {
			if err := OverlaySupported(dir); err != nil {
				t.Skipf("overlayfs does not work under %s: %v", dir, err)
			}
			s, err := NewOverlay(dir)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	} else {
		t.Log("overlay driver not exercised: overlay mounts need root")
	}
	return m
}

func forEachDriver(t *testing.T, fn func(t *testing.T, sn Snapshotter, dir string)) {
	for name, mk := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			fn(t, mk(t, dir), dir)
		})
	}
}

// withMounted runs fn with the mounts' tree at a path: mounted for real as
// root; as another user a bind mount's source stands in for it.
func withMounted(t *testing.T, mounts []Mount, fn func(dir string)) {
	t.Helper()
	if os.Geteuid() != 0 {
		if len(mounts) != 1 || mounts[0].Type != "bind" {
			t.Skip("mounting needs root")
		}
		fn(mounts[0].Source)
		return
	}
	target := t.TempDir()
	if err := MountAll(mounts, target); err != nil {
		t.Fatalf("mount %+v: %v", mounts, err)
	}
	defer func() {
		if err := Unmount(target); err != nil {
			t.Errorf("unmount: %v", err)
		}
	}()
	fn(target)
}

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// layer prepares key on parent, runs fn in it and commits it as name.
func layer(t *testing.T, sn Snapshotter, name, parent string, fn func(dir string)) {
	t.Helper()
	ctx := context.Background()
	key := "prepare-" + name
	mounts, err := sn.Prepare(ctx, key, parent)
	if err != nil {
		t.Fatalf("prepare %s on %q: %v", key, parent, err)
	}
	withMounted(t, mounts, fn)
	if err := sn.Commit(ctx, name, key); err != nil {
		t.Fatalf("commit %s: %v", name, err)
	}
}

func TestSuiteLifecycle(t *testing.T) {
	forEachDriver(t, func(t *testing.T, sn Snapshotter, dir string) {
		ctx := context.Background()
		layer(t, sn, "base", "", func(d string) {
			write(t, filepath.Join(d, "etc/os-release"), "berth")
			write(t, filepath.Join(d, "bin/sh"), "shell")
		})
		info, err := sn.Stat(ctx, "base")
		if err != nil || info.Kind != KindCommitted || info.Parent != "" {
			t.Fatalf("stat base: %+v %v", info, err)
		}
		if u, err := sn.Usage(ctx, "base"); err != nil || u.Size != int64(len("berth")+len("shell")) || u.Inodes != 4 {
			t.Fatalf("usage of base: %+v %v", u, err)
		}
		layer(t, sn, "app", "base", func(d string) {
			if got, err := os.ReadFile(filepath.Join(d, "etc/os-release")); err != nil || string(got) != "berth" {
				t.Fatalf("the parent's file in the child: %q %v", got, err)
			}
			write(t, filepath.Join(d, "app/main"), "app")
			if err := os.Remove(filepath.Join(d, "bin/sh")); err != nil {
				t.Fatal(err)
			}
		})
		mounts, err := sn.View(ctx, "view", "app")
		if err != nil {
			t.Fatal(err)
		}
		withMounted(t, mounts, func(d string) {
			got := tu.TreeOf(t, d, tu.TreeOptions{})
			var names []string
			for k := range got {
				names = append(names, k)
			}
			if s := strings.Join(sorted(names), " "); s != "app app/main bin etc etc/os-release" {
				t.Fatalf("view of app: %s", s)
			}
			if os.Geteuid() == 0 {
				if err := os.WriteFile(filepath.Join(d, "x"), nil, 0o644); !errors.Is(err, unix.EROFS) {
					t.Fatalf("write into a view: %v, want EROFS", err)
				}
			}
		})
		// The base is unchanged by what the child did.
		mounts, _ = sn.View(ctx, "view-base", "base")
		withMounted(t, mounts, func(d string) {
			if _, err := os.Stat(filepath.Join(d, "bin/sh")); err != nil {
				t.Fatalf("the child's deletion reached the base: %v", err)
			}
		})
		if err := sn.Remove(ctx, "base"); !errdefs.IsFailedPrecondition(err) {
			t.Fatalf("remove of a parent: %v", err)
		}
		for _, k := range []string{"view", "view-base", "app", "base"} {
			if err := sn.Remove(ctx, k); err != nil {
				t.Fatalf("remove %s: %v", k, err)
			}
		}
		n := 0
		sn.Walk(ctx, func(Info) error { n++; return nil })
		if n != 0 {
			t.Fatalf("%d snapshots left after removing all", n)
		}
		left, _ := os.ReadDir(filepath.Join(dir, "snapshots"))
		if len(left) != 0 {
			t.Fatalf("directories left: %v", left)
		}
	})
}

func TestSuiteErrors(t *testing.T) {
	forEachDriver(t, func(t *testing.T, sn Snapshotter, dir string) {
		ctx := context.Background()
		if _, err := sn.Prepare(ctx, "a", "missing"); !errdefs.IsNotFound(err) {
			t.Errorf("prepare on a missing parent: %v", err)
		}
		if _, err := sn.Prepare(ctx, "a", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := sn.Prepare(ctx, "a", ""); !errdefs.IsAlreadyExists(err) {
			t.Errorf("second prepare of one key: %v", err)
		}
		if _, err := sn.Prepare(ctx, "b", "a"); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("prepare on an active parent: %v", err)
		}
		if _, err := sn.Prepare(ctx, "", ""); !errdefs.IsInvalidArgument(err) {
			t.Errorf("empty key: %v", err)
		}
		if err := sn.Commit(ctx, "c", "missing"); !errdefs.IsNotFound(err) {
			t.Errorf("commit of a missing key: %v", err)
		}
		if err := sn.Commit(ctx, "c", "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := sn.Prepare(ctx, "a2", ""); err != nil {
			t.Fatal(err)
		}
		if err := sn.Commit(ctx, "c", "a2"); !errdefs.IsAlreadyExists(err) {
			t.Errorf("commit onto a taken name: %v", err)
		}
		if err := sn.Commit(ctx, "d", "c"); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("commit of a committed snapshot: %v", err)
		}
		if _, err := sn.Mounts(ctx, "c"); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("mounts of a committed snapshot: %v", err)
		}
		if err := sn.Remove(ctx, "missing"); !errdefs.IsNotFound(err) {
			t.Errorf("remove of a missing key: %v", err)
		}
	})
}

func TestSuiteConcurrentCommitsOfOneName(t *testing.T) {
	forEachDriver(t, func(t *testing.T, sn Snapshotter, dir string) {
		ctx := context.Background()
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := fmt.Sprintf("extract-%d", i)
				mounts, err := sn.Prepare(ctx, key, "")
				if err != nil {
					errs[i] = err
					return
				}
				write(t, filepath.Join(mounts[0].Source, "f"), "same")
				errs[i] = sn.Commit(ctx, "sha256:chain", key)
				if errdefs.IsAlreadyExists(errs[i]) {
					errs[i] = sn.Remove(ctx, key)
					if errs[i] == nil {
						errs[i] = errdefs.ErrAlreadyExists
					}
				}
			}()
		}
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case errdefs.IsAlreadyExists(err):
			default:
				t.Errorf("committer %d: %v", i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d committers won, want exactly one", wins)
		}
		var infos []Info
		sn.Walk(ctx, func(i Info) error { infos = append(infos, i); return nil })
		if len(infos) != 1 || infos[0].Name != "sha256:chain" {
			t.Fatalf("snapshots after the race: %+v", infos)
		}
	})
}

func TestSuiteCheckAndRepair(t *testing.T) {
	forEachDriver(t, func(t *testing.T, sn Snapshotter, dir string) {
		ctx := context.Background()
		layer(t, sn, "l1", "", func(d string) { write(t, filepath.Join(d, "a"), "a") })
		layer(t, sn, "l2", "l1", func(d string) { write(t, filepath.Join(d, "b"), "b") })
		layer(t, sn, "l3", "l2", func(d string) { write(t, filepath.Join(d, "c"), "c") })
		layer(t, sn, "other", "", func(d string) { write(t, filepath.Join(d, "o"), "o") })
		if p, err := sn.Check(ctx); err != nil || len(p) != 0 {
			t.Fatalf("check of a healthy store: %+v %v", p, err)
		}
		// Damage: l2 loses its info (as a torn write would never leave it,
		// but a disk might), and an interrupted prepare leaves a bare dir.
		s := storeOf(sn)
		r2, _, _ := s.get("l2")
		must(t, os.Remove(filepath.Join(s.dir(r2.id), "info.json")))
		must(t, os.Mkdir(s.dir("deadbeef"), 0o700))

		problems, err := sn.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var whats []string
		for _, p := range problems {
			whats = append(whats, p.Snapshot+": "+p.What)
		}
		if len(problems) != 3 {
			t.Fatalf("problems: %q, want l2's info, the bare dir, and l3's missing parent", whats)
		}
		for _, p := range problems {
			if p.Repair == nil {
				t.Fatalf("no repair for %s", p.What)
			}
			if err := p.Repair(ctx); err != nil {
				t.Fatalf("repair %s: %v", p.What, err)
			}
		}
		if p, _ := sn.Check(ctx); len(p) != 0 {
			t.Fatalf("problems after repair: %+v", p)
		}
		for _, keep := range []string{"l1", "other"} {
			if _, err := sn.Stat(ctx, keep); err != nil {
				t.Fatalf("repair removed the healthy %s: %v", keep, err)
			}
		}
		if _, err := sn.Stat(ctx, "l3"); !errdefs.IsNotFound(err) {
			t.Fatalf("l3 (on a broken parent) survived repair: %v", err)
		}
	})
}

func TestSuiteInterruptedRemoveIsFinished(t *testing.T) {
	forEachDriver(t, func(t *testing.T, sn Snapshotter, dir string) {
		half := filepath.Join(dir, "removing", "cafebabe")
		write(t, filepath.Join(half, "fs/leftover"), "x")
		var err error
		switch sn.Driver() {
		case "vfs":
			_, err = NewVFS(dir)
		default:
			_, err = NewOverlay(dir)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(half); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("leftover of an interrupted remove is still there: %v", err)
		}
	})
}

func storeOf(sn Snapshotter) *store {
	switch s := sn.(type) {
	case *Overlay:
		return s.store
	case *VFS:
		return s.store
	}
	panic("unknown snapshotter")
}

func TestOverlayRebase(t *testing.T) {
	tu.RequireRoot(t)
	dir := t.TempDir()
	if err := OverlaySupported(dir); err != nil {
		t.Skipf("no overlayfs: %v", err)
	}
	sn, err := NewOverlay(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Extract two layers at once, each into its own directory, then stack.
	m1, _ := sn.Prepare(ctx, "x1", "")
	m2, _ := sn.Prepare(ctx, "x2", "")
	write(t, filepath.Join(m1[0].Source, "one"), "1")
	write(t, filepath.Join(m2[0].Source, "two"), "2")
	if err := sn.CommitOnto(ctx, "c2", "x2", "c1"); !errdefs.IsNotFound(err) {
		t.Fatalf("commit onto a parent not yet there: %v", err)
	}
	must(t, sn.Commit(ctx, "c1", "x1"))
	must(t, sn.CommitOnto(ctx, "c2", "x2", "c1"))
	info, _ := sn.Stat(ctx, "c2")
	if info.Parent != "c1" {
		t.Fatalf("c2's parent is %q", info.Parent)
	}
	mounts, err := sn.View(ctx, "v", "c2")
	if err != nil {
		t.Fatal(err)
	}
	withMounted(t, mounts, func(d string) {
		for _, f := range []string{"one", "two"} {
			if _, err := os.Stat(filepath.Join(d, f)); err != nil {
				t.Fatalf("%s missing from the stacked view: %v", f, err)
			}
		}
	})
	m3, _ := sn.Prepare(ctx, "x3", "c1")
	_ = m3
	if err := sn.CommitOnto(ctx, "c3", "x3", "c2"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("rebase of a snapshot prepared on a parent: %v", err)
	}
}

// TestOverlayManyLayers stacks more layers than fit in one page of mount
// options with absolute paths.
func TestOverlayManyLayers(t *testing.T) {
	tu.RequireRoot(t)
	dir := t.TempDir()
	if err := OverlaySupported(dir); err != nil {
		t.Skipf("no overlayfs: %v", err)
	}
	sn, err := NewOverlay(dir)
	if err != nil {
		t.Fatal(err)
	}
	const n = 120
	parent := ""
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("layer-%03d", i)
		layer(t, sn, name, parent, func(d string) { write(t, filepath.Join(d, name), name) })
		parent = name
	}
	mounts, err := sn.View(context.Background(), "v", parent)
	if err != nil {
		t.Fatal(err)
	}
	_, data := parseOptions(mounts[0].Options)
	if len(data) < os.Getpagesize() {
		t.Fatalf("options are only %d bytes; the test needs more than a page", len(data))
	}
	withMounted(t, mounts, func(d string) {
		ents, err := os.ReadDir(d)
		if err != nil || len(ents) != n {
			t.Fatalf("view of %d layers shows %d entries: %v", n, len(ents), err)
		}
	})
	if wd, _ := os.Getwd(); wd == dir {
		t.Fatal("the mount changed the process's working directory")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}
