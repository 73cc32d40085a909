package container

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/berthproject/berth/archive"
)

func TestHostPath(t *testing.T) {
	rootfs, bind, vol, sub := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	conf := filepath.Join(t.TempDir(), "app.conf")
	writeFile(t, filepath.Dir(conf), "app.conf", "x=1", 0o644)
	symlink(t, rootfs, "link", "/etc")
	symlink(t, bind, "esc", "/../../..")
	c := &Container{Mounts: []Mount{
		{Type: "bind", Source: bind, Destination: "/data", RW: true},
		{Type: "volume", Name: "sub", Source: sub, Destination: "/data/sub", RW: true},
		{Type: "volume", Name: "v", Source: vol, Destination: "/var/lib/app", RW: true},
		{Type: "bind", Source: conf, Destination: "/etc/app.conf", RW: true},
		{Type: "tmpfs", Destination: "/run", RW: true},
	}}
	tests := []struct{ in, want string }{
		{"/etc/passwd", filepath.Join(rootfs, "etc/passwd")},
		{"etc/passwd", filepath.Join(rootfs, "etc/passwd")},
		{"/", rootfs},
		{"/../../etc/passwd", filepath.Join(rootfs, "etc/passwd")},
		{"/link/passwd", filepath.Join(rootfs, "etc/passwd")},
		{"/data", bind},
		{"/data/", bind},
		{"/data/x/y", filepath.Join(bind, "x/y")},
		{"/database", filepath.Join(rootfs, "database")},
		{"/data/sub/f", filepath.Join(sub, "f")},
		{"/data/esc/x", filepath.Join(bind, "x")},
		{"/var/lib/app/db", filepath.Join(vol, "db")},
		{"/etc/app.conf", conf},
		{"/run/x", filepath.Join(rootfs, "run/x")}, // a tmpfs is not on the host
	}
	for _, tt := range tests {
		got, err := hostPath(c, rootfs, tt.in)
		if err != nil || got != tt.want {
			t.Errorf("hostPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestWithoutMountpoints(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "etc/hosts", "", 0o644)
	writeFile(t, root, "etc/hostname", "changed\n", 0o644)
	writeFile(t, root, "etc/resolv.conf", "", 0o644)
	writeFile(t, root, "newfile", "", 0o644)
	writeFile(t, root, "full/f", "x", 0o644)
	for _, d := range []string{"proc", "sys", "dev", "data", "empty"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	c := &Container{Mounts: []Mount{{Type: "volume", Destination: "/data"}, {Type: "bind", Destination: "/full"}}}
	add := func(p string) archive.Change { return archive.Change{Kind: archive.ChangeAdd, Path: p} }
	in := []archive.Change{
		add("/etc/hosts"),    // an empty mount point: dropped
		add("/etc/hostname"), // written to: kept
		{Kind: archive.ChangeModify, Path: "/etc/resolv.conf"}, // changed, not made: kept
		add("/proc"), add("/sys"), add("/dev"), // empty default mount points: dropped
		add("/data"),     // an empty volume mount point: dropped
		add("/full"),     // a mount point with content: kept
		add("/newfile"),  // empty, not a mount point: kept
		add("/empty"),    // empty, not a mount point: kept
		add("/dev/init"), // not there: kept
		{Kind: archive.ChangeDelete, Path: "/proc"},
	}
	got := withoutMountpoints(c, root, slices.Clone(in))
	var paths []string
	for _, ch := range got {
		paths = append(paths, string(ch.Kind)+" "+ch.Path)
	}
	want := []string{"A /etc/hostname", "C /etc/resolv.conf", "A /full", "A /newfile", "A /empty", "A /dev/init", "D /proc"}
	if !slices.Equal(paths, want) {
		t.Errorf("withoutMountpoints = %q, want %q", paths, want)
	}
}

func TestIsEmptyDir(t *testing.T) {
	empty, full := t.TempDir(), t.TempDir()
	writeFile(t, full, "f", "", 0o644)
	for p, want := range map[string]bool{empty: true, full: false, filepath.Join(empty, "nope"): false} {
		if got := isEmptyDir(p); got != want {
			t.Errorf("isEmptyDir(%s) = %v, want %v", p, got, want)
		}
	}
}

// TestWithoutMountpointsParents: a directory changed only by the mount
// points made in it goes too; one holding a change of the container stays.
func TestWithoutMountpointsParents(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "etc/hosts", "", 0o644)
	writeFile(t, root, "etc/resolv.conf", "", 0o644)
	writeFile(t, root, "tmp/note", "x", 0o644)
	os.MkdirAll(filepath.Join(root, "var/lib/data"), 0o755)
	c := &Container{Mounts: []Mount{{Type: "volume", Destination: "/var/lib/data"}}}
	mod := func(p string) archive.Change { return archive.Change{Kind: archive.ChangeModify, Path: p} }
	add := func(p string) archive.Change { return archive.Change{Kind: archive.ChangeAdd, Path: p} }
	for _, tt := range []struct {
		name string
		in   []archive.Change
		want []string
	}{
		{"only mount points", []archive.Change{mod("/etc"), add("/etc/hosts"), add("/etc/resolv.conf")}, nil},
		{"nested mount point", []archive.Change{mod("/var"), mod("/var/lib"), add("/var/lib/data")}, nil},
		{"a real change beside them", []archive.Change{mod("/etc"), add("/etc/hosts"), add("/etc/passwd")}, []string{"C /etc", "A /etc/passwd"}},
		{"a change elsewhere", []archive.Change{mod("/etc"), add("/etc/hosts"), mod("/tmp"), add("/tmp/note")}, []string{"C /tmp", "A /tmp/note"}},
		{"a changed dir without mount points stays", []archive.Change{mod("/tmp")}, []string{"C /tmp"}},
	} {
		var got []string
		for _, ch := range withoutMountpoints(c, root, slices.Clone(tt.in)) {
			got = append(got, string(ch.Kind)+" "+ch.Path)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
