package bundle

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// newBundle makes a bundle directory holding config (if not nil) and a
// "rootfs" directory, plus a regular file "rootfs-file" for the case of a
// rootfs that is not a directory.
func newBundle(t testing.TB, config []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rootfs-file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if config != nil {
		if err := os.WriteFile(filepath.Join(dir, ConfigFile), config, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestLoadBad loads every testdata/bad/*.json and wants exactly one
// one-line message for each; "{{bundle}}" stands for the bundle directory.
func TestLoadBad(t *testing.T) {
	want := map[string]string{
		// Wrong types, at several depths.
		"type-args-number":         `config.json: process.args: expected array of strings, got number`,
		"type-args-element":        `config.json: process.args[1]: expected string, got number`,
		"type-uid-negative":        `config.json: process.user.uid: expected non-negative 32-bit integer, got number -1`,
		"type-namespace-type":      `config.json: linux.namespaces[1].type: expected string, got number`,
		"type-mounts-object":       `config.json: mounts: expected array of objects, got object`,
		"type-sysctl-value":        `config.json: linux.sysctl["net.ipv4.ip_forward"]: expected string, got number`,
		"type-memory-limit":        `config.json: linux.resources.memory.limit: expected 64-bit integer, got boolean`,
		"type-terminal-string":     `config.json: process.terminal: expected boolean, got string`,
		"type-device-major-string": `config.json: linux.devices[1].major: expected 64-bit integer, got string`,
		"type-hook-timeout-float":  `config.json: hooks.poststop[0].timeout: expected integer, got number 1.5`,
		"type-top-level-array":     `config.json: expected object, got array`,
		// Not JSON.
		"syntax-missing-comma": `config.json:4:3: invalid character '"' after object key:value pair`,
		"syntax-single-quotes": `config.json:2:3: invalid character '\'' looking for beginning of object key string`,
		"truncated":            `config.json: unexpected end of file: the JSON is truncated (an unclosed { or [ ?)`,
		"empty":                `config.json: empty file: expected a JSON object`,
		"trailing-data":        `config.json:2:1: unexpected data after the top-level object`,
		// Valid JSON, invalid config.
		"missing-process":            `config.json: process: required to create a container (e.g. {"args": ["sh"], "cwd": "/"})`,
		"empty-args":                 `config.json: process.args: required: name the program to run (e.g. ["sh"])`,
		"relative-cwd":               `config.json: process.cwd: "work" must be an absolute path (e.g. "/work")`,
		"env-without-equals":         `config.json: process.env[1]: "DEBUG" is not of the form KEY=VALUE`,
		"bad-capability":             `config.json: process.capabilities.bounding[1]: "NET_ADMIN" is not a capability name (want e.g. "CAP_NET_ADMIN")`,
		"bad-rlimit-type":            `config.json: process.rlimits[1].type: unknown rlimit "RLIMIT_FOO" (see getrlimit(2), e.g. "RLIMIT_NOFILE")`,
		"duplicate-rlimit":           `config.json: process.rlimits[1].type: duplicate rlimit "RLIMIT_NOFILE"`,
		"soft-above-hard":            `config.json: process.rlimits[0]: soft limit 4096 is above hard limit 1024`,
		"scheduler-priority":         `config.json: process.scheduler.priority: only SCHED_FIFO and SCHED_RR take a priority, not SCHED_OTHER`,
		"empty-mount-destination":    `config.json: mounts[1].destination: required (an absolute path in the container)`,
		"relative-hook-path":         `config.json: hooks.createRuntime[0].path: "hooks/setup-net" must be an absolute path`,
		"hook-timeout-zero":          `config.json: hooks.poststop[0].timeout: must be greater than zero (got 0); omit it for no timeout`,
		"unknown-namespace":          `config.json: linux.namespaces[3].type: unknown namespace type "foo" (want cgroup, ipc, mount, network, pid, time, user or uts)`,
		"duplicate-namespace":        `config.json: linux.namespaces[2].type: duplicate namespace "pid"`,
		"relative-namespace-path":    `config.json: linux.namespaces[1].path: "run/netns/x" must be an absolute path (e.g. /proc/<pid>/ns/net)`,
		"userns-without-mappings":    `config.json: linux.uidMappings: required with a user namespace (e.g. [{"containerID": 0, "hostID": 100000, "size": 65536}])`,
		"mappings-without-userns":    `config.json: linux.uidMappings: set without a user namespace (add {"type": "user"} to linux.namespaces)`,
		"timeoffsets-without-timens": `config.json: linux.timeOffsets: needs a new time namespace (add {"type": "time"} to linux.namespaces)`,
		"bad-device-type":            `config.json: linux.devices[0].type: unknown device type "x" (want c, b, u or p)`,
		"device-without-major":       `config.json: linux.devices[0].major: required for a device of type "c" (only type p has none)`,
		"bad-seccomp-action":         `config.json: linux.seccomp.syscalls[0].action: unknown action "SCMP_ACT_DENY"`,
		"hostname-without-uts":       `config.json: hostname: needs a uts namespace (add {"type": "uts"} to linux.namespaces), or the host's name would change`,
		"host-sysctl":                `config.json: linux.sysctl: "vm.swappiness" is not namespaced: setting it would change the host (set it on the host instead)`,
		"intel-rdt":                  `config.json: linux.intelRdt: Intel RDT is not supported by berth-runtime; remove it`,
		"missing-linux":              `config.json: linux: required on Linux (at least {"namespaces": [{"type": "mount"}]})`,
		"ociversion-0.1":             `config.json: ociVersion "0.1" is not supported (want 1.0.0 or later)`,
		"ociversion-missing":         `config.json: ociVersion: required (e.g. "` + specs.Version + `")`,
		"ociversion-not-semver":      `config.json: ociVersion "1.2" is not a semantic version (want e.g. "` + specs.Version + `")`,
		// The bundle on disk.
		"missing-root":   `config.json: root: required (the container's root filesystem, e.g. {"path": "rootfs"})`,
		"missing-rootfs": `config.json: root.path: rootfs "{{bundle}}/nosuch" does not exist`,
		"rootfs-is-file": `config.json: root.path: rootfs "{{bundle}}/rootfs-file" is not a directory`,
	}
	files, err := filepath.Glob("testdata/bad/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	for name := range want {
		if !slices.Contains(names, name) {
			t.Errorf("testdata/bad/%s.json is missing", name)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("testdata/bad/%s.json has no expected message in this table", name)
			}
			b, err := os.ReadFile(filepath.Join("testdata/bad", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			dir := newBundle(t, b)
			s, err := Load(dir)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", s)
			}
			if s != nil {
				t.Errorf("Load returned a spec with its error")
			}
			w = strings.ReplaceAll(w, "{{bundle}}", dir)
			if got := err.Error(); got != w {
				t.Errorf("error\n got: %s\nwant: %s", got, w)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestLoadMissingConfig(t *testing.T) {
	dir := newBundle(t, nil)
	_, err := Load(dir)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want a not-exist error", err)
	}
	want := "config.json: not found in bundle " + dir + " (write one with `berth-runtime spec`)"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %q, want prefix %q", err, want)
	}
}

// TestLoadGood loads configs that must be accepted, and checks that what
// comes back is what the file said.
func TestLoadGood(t *testing.T) {
	def, err := json.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		config string
		check  func(*testing.T, *specs.Spec)
	}{
		{"default", string(def), func(t *testing.T, s *specs.Spec) {
			if s.Hostname != "berth" || s.Linux.Seccomp == nil || len(s.Mounts) != 7 {
				t.Errorf("default spec did not round-trip: hostname %q, %d mounts", s.Hostname, len(s.Mounts))
			}
		}},
		{"minimal", `{"ociVersion": "1.0.0", "process": {"args": ["true"], "cwd": "/"}, "root": {"path": "rootfs"}, "linux": {}}`,
			func(t *testing.T, s *specs.Spec) {
				if s.Process.Args[0] != "true" || s.Root.Path != "rootfs" {
					t.Errorf("got %+v", s)
				}
			}},
		{"unknown fields are ignored", `{"ociVersion": "1.2.0", "futureField": {"x": 1}, "process": {"args": ["sh"], "cwd": "/", "newThing": true}, "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}]}}`,
			func(t *testing.T, s *specs.Spec) {
				if s.Version != "1.2.0" {
					t.Errorf("ociVersion %q", s.Version)
				}
			}},
		{"prerelease and later minor", `{"ociVersion": "1.9.0-rc.1+build.5", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs"}, "linux": {}}`, nil},
		{"relative mount destination is deprecated but allowed", `{"ociVersion": "1.2.0", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs"}, "mounts": [{"destination": "tmp", "type": "tmpfs", "source": "tmpfs"}], "linux": {"namespaces": [{"type": "mount"}]}}`,
			func(t *testing.T, s *specs.Spec) {
				if s.Mounts[0].Destination != "tmp" {
					t.Errorf("destination rewritten to %q", s.Mounts[0].Destination)
				}
			}},
		{"user namespace joined by path needs no mappings", `{"ociVersion": "1.2.0", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "user", "path": "/proc/1/ns/user"}]}}`, nil},
		{"time namespace with offsets", `{"ociVersion": "1.2.0", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "time"}], "timeOffsets": {"monotonic": {"secs": 86400}, "boottime": {"secs": -5, "nanosecs": 999999999}}}}`,
			func(t *testing.T, s *specs.Spec) {
				if s.Linux.TimeOffsets["monotonic"].Secs != 86400 {
					t.Errorf("timeOffsets %+v", s.Linux.TimeOffsets)
				}
			}},
		{"fifo device needs no numbers", `{"ociVersion": "1.2.0", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs"}, "linux": {"devices": [{"path": "/dev/fifo", "type": "p"}, {"path": "/dev/null", "type": "c", "major": 1, "minor": 3}]}}`, nil},
		{"capabilities the kernel may lack", `{"ociVersion": "1.2.0", "process": {"args": ["sh"], "cwd": "/", "capabilities": {"bounding": ["CAP_FUTURE_THING_99"]}}, "root": {"path": "rootfs"}, "linux": {}}`, nil},
		{"namespaced sysctls", `{"ociVersion": "1.2.0", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "network"}, {"type": "ipc"}], "sysctl": {"net.ipv4.ip_forward": "1", "net/ipv4/ping_group_range": "0 0", "kernel.shmmax": "1", "fs.mqueue.queues_max": "10"}}}`, nil},
		{"absolute rootfs path", `{"ociVersion": "1.2.0", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "/"}, "linux": {}}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Load(newBundle(t, []byte(tc.config)))
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

func TestRootfsPath(t *testing.T) {
	real := t.TempDir()
	b := newBundle(t, nil)
	rootfs := filepath.Join(real, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	// A bundle reached through a symlink, with a rootfs that is one too.
	link := filepath.Join(t.TempDir(), "bundle-link")
	if err := os.Symlink(b, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rootfs, filepath.Join(b, "rootfs-link")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, root, dir, want, err string
	}{
		{"relative", "rootfs", b, filepath.Join(b, "rootfs"), ""},
		{"relative uncleaned", "./x/../rootfs/", b, filepath.Join(b, "rootfs"), ""},
		{"bundle through a symlink", "rootfs", link, filepath.Join(b, "rootfs"), ""},
		{"rootfs is a symlink", "rootfs-link", b, rootfs, ""},
		{"absolute", rootfs + "/.", "/nonexistent-bundle", rootfs, ""},
		{"missing", "nosuch", b, "", `root.path: rootfs "` + b + `/nosuch" does not exist`},
		{"empty", "", b, "", "root.path: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RootfsPath(&specs.Spec{Root: &specs.Root{Path: tc.root}}, tc.dir)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("got %q, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/bad/*.json")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	def, err := json.Marshal(Default())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(def)
	dir := newBundle(f, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		// decode and Validate are what Load runs after reading the file;
		// calling them directly keeps the fuzzer off the disk.
		s, err := decode(data)
		if err != nil {
			if s != nil {
				t.Fatal("decode returned a spec with its error")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if err := Validate(s, dir); err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("multi-line error: %q", err)
		}
	})
}
