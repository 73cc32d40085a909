package cgroup

import (
	"os"
	"path/filepath"
	"testing"
)

func loadHost(t *testing.T, name string) *host {
	t.Helper()
	mi, err := os.Open(filepath.Join("testdata", name+".mountinfo"))
	if err != nil {
		t.Fatal(err)
	}
	defer mi.Close()
	pc, err := os.Open(filepath.Join("testdata", name+".cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	h, err := parseHost(mi, pc)
	if err != nil {
		t.Fatalf("parseHost(%s): %v", name, err)
	}
	return h
}

func TestParseHostLayout(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layout Layout
		keys   int
	}{
		{"hybrid", Hybrid, 10},  // 8 controllers, name=systemd, unified
		{"unified", Unified, 1}, // just ""
		{"legacy", Legacy, 6},   // cpu, cpuacct, memory, net_cls, net_prio, name=systemd
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := loadHost(t, tc.name)
			if h.layout != tc.layout {
				t.Fatalf("layout = %v, want %v", h.layout, tc.layout)
			}
			paths, err := h.resolve("/x", "id")
			if err != nil {
				t.Fatal(err)
			}
			if len(paths) != tc.keys {
				t.Errorf("got %d keys %v, want %d", len(paths), paths, tc.keys)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		host, cgroupsPath, id string
		want                  map[string]string
	}{
		// Absolute: under each mount, whatever our own cgroup is.
		{"hybrid", "/berth/c1", "c1", map[string]string{
			"cpu":          "/sys/fs/cgroup/cpu/berth/c1",
			"memory":       "/sys/fs/cgroup/memory/berth/c1",
			"name=systemd": "/sys/fs/cgroup/systemd/berth/c1",
			"":             "/sys/fs/cgroup/unified/berth/c1",
		}},
		// Relative: under our own cgroup in each hierarchy.
		{"hybrid", "berth/c1", "c1", map[string]string{
			"cpu":    "/sys/fs/cgroup/cpu/berth/c1",
			"memory": "/sys/fs/cgroup/memory/process_api/93fea/berth/c1",
			"":       "/sys/fs/cgroup/unified/berth/c1",
		}},
		// Empty: the container ID, relative (runc's cgroupfs default).
		{"hybrid", "", "ctr-7", map[string]string{
			"memory":  "/sys/fs/cgroup/memory/process_api/93fea/ctr-7",
			"devices": "/sys/fs/cgroup/devices/ctr-7",
		}},
		// A relative path cannot climb out of our cgroup.
		{"hybrid", "../../../etc", "x", map[string]string{
			"memory": "/sys/fs/cgroup/memory/process_api/93fea/etc",
		}},
		// Pure v2 under systemd: init.scope is a leaf, use its parent.
		{"unified", "c1", "c1", map[string]string{"": "/sys/fs/cgroup/c1"}},
		{"unified", "/a/b/../c", "c1", map[string]string{"": "/sys/fs/cgroup/a/c"}},
		// Legacy inside a container: mount roots are not "/", and
		// cpu,cpuacct share a directory under both keys.
		{"legacy", "c1", "c1", map[string]string{
			"cpu":          "/sys/fs/cgroup/cpu,cpuacct/sub/c1",
			"cpuacct":      "/sys/fs/cgroup/cpu,cpuacct/sub/c1",
			"memory":       "/sys/fs/cgroup/memory/c1",
			"net_prio":     "/sys/fs/cgroup/net_cls,net_prio/c1",
			"name=systemd": "/sys/fs/cgroup/systemd/sub/c1",
		}},
		{"legacy", "/top", "c1", map[string]string{
			"cpu":    "/sys/fs/cgroup/cpu,cpuacct/top",
			"memory": "/sys/fs/cgroup/memory/top",
		}},
	} {
		t.Run(tc.host+":"+tc.cgroupsPath, func(t *testing.T) {
			got, err := loadHost(t, tc.host).resolve(tc.cgroupsPath, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.want {
				if got[k] != want {
					t.Errorf("paths[%q] = %q, want %q", k, got[k], want)
				}
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	h := loadHost(t, "hybrid")
	if _, err := h.resolve("", ""); err == nil {
		t.Error("empty path and empty id: want an error")
	}
	delete(h.own, "memory")
	if _, err := h.resolve("rel", "id"); err == nil {
		t.Error("relative path with no own memory cgroup: want an error")
	}
	if _, err := h.resolve("/abs", "id"); err != nil {
		t.Errorf("absolute path needs no own cgroup: %v", err)
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"":            "",
		"/":           "/",
		"/a/../../b":  "/b",
		"a/b":         "a/b",
		"../a":        "a",
		"./a/./b/":    "a/b",
		"..":          "",
		"a/../../../": "",
	} {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoadInfersLayout(t *testing.T) {
	for _, tc := range []struct {
		paths map[string]string
		want  Layout
	}{
		{map[string]string{"": "/sys/fs/cgroup/x"}, Unified},
		{map[string]string{"": "/sys/fs/cgroup/unified/x", "memory": "/sys/fs/cgroup/memory/x"}, Hybrid},
		{map[string]string{"memory": "/sys/fs/cgroup/memory/x"}, Legacy},
	} {
		m, err := Load(tc.paths)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.(*manager).layout; got != tc.want {
			t.Errorf("Load(%v) layout = %v, want %v", tc.paths, got, tc.want)
		}
	}
	if _, err := Load(map[string]string{"memory": "relative"}); err == nil {
		t.Error("relative path: want an error")
	}
	if _, err := Load(nil); err == nil {
		t.Error("no paths: want an error")
	}
}

func TestAncestors(t *testing.T) {
	got := ancestors("/sys/fs/cgroup/unified", "/sys/fs/cgroup/unified/a/b/c")
	want := []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup/unified/a", "/sys/fs/cgroup/unified/a/b"}
	if len(got) != len(want) {
		t.Fatalf("ancestors = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ancestors = %v, want %v", got, want)
		}
	}
	if got := ancestors("/r", "/r"); len(got) != 0 {
		t.Errorf("ancestors of the root = %v, want none", got)
	}
}
