package bundle

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/berthproject/berth/seccomp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares v, as `berth-runtime` prints it, with testdata/name.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", path, got)
	}
}

// TestDefault checks `berth-runtime spec`: the golden file holds everything
// but linux.seccomp, which depends on the host's architecture and is
// checked against the seccomp package instead.
func TestDefault(t *testing.T) {
	s := Default()
	if s.Linux.Seccomp == nil {
		t.Fatal("no linux.seccomp in the default spec")
	}
	if want := seccomp.Default(s.Process.Capabilities.Bounding); !reflect.DeepEqual(s.Linux.Seccomp, want) {
		t.Error("linux.seccomp is not seccomp.Default(process.capabilities.bounding)")
	}
	if s.Linux.Seccomp.DefaultAction != "SCMP_ACT_ERRNO" {
		t.Errorf("seccomp defaultAction %q, want Docker's SCMP_ACT_ERRNO", s.Linux.Seccomp.DefaultAction)
	}
	// Each call must be independent: the CLI edits what it gets.
	s.Process.Capabilities.Bounding[0] = "CAP_SYS_ADMIN"
	s.Mounts[0].Destination = "/changed"
	if d := Default(); d.Process.Capabilities.Bounding[0] != "CAP_AUDIT_WRITE" || d.Mounts[0].Destination != "/proc" {
		t.Error("Default shares state between calls")
	}
	s = Default()
	s.Linux.Seccomp = nil
	golden(t, "default.json", s)
}

func TestToRootless(t *testing.T) {
	s := Default()
	ToRootless(s)
	var types []string
	for _, n := range s.Linux.Namespaces {
		types = append(types, string(n.Type))
	}
	if want := []string{"pid", "ipc", "uts", "mount", "cgroup", "user"}; !slices.Equal(types, want) {
		t.Errorf("namespaces %v, want %v", types, want)
	}
	if m := s.Linux.UIDMappings; len(m) != 1 || m[0].HostID != uint32(os.Geteuid()) || m[0].ContainerID != 0 || m[0].Size != 1 {
		t.Errorf("uidMappings %+v, want the caller (%d) as root", m, os.Geteuid())
	}
	if m := s.Linux.GIDMappings; len(m) != 1 || m[0].HostID != uint32(os.Getegid()) || m[0].ContainerID != 0 || m[0].Size != 1 {
		t.Errorf("gidMappings %+v, want the caller's group (%d) as root", m, os.Getegid())
	}
	if s.Linux.Resources != nil {
		t.Error("linux.resources kept")
	}
	for _, m := range s.Mounts {
		for _, o := range m.Options {
			if strings.HasPrefix(o, "gid=") || strings.HasPrefix(o, "uid=") {
				t.Errorf("mount %s keeps %s", m.Destination, o)
			}
		}
	}
	if err := Validate(s, newBundle(t, nil)); err != nil {
		t.Errorf("rootless default does not validate: %v", err)
	}
	// Idempotent: a second pass must not add a second user namespace.
	ToRootless(s)
	if err := Validate(s, newBundle(t, nil)); err != nil {
		t.Errorf("ToRootless twice: %v", err)
	}
	ToRootless(nil)

	s = Default()
	ToRootless(s)
	s.Linux.Seccomp = nil
	// The caller's ids are host facts; the golden file holds 1000.
	s.Linux.UIDMappings[0].HostID, s.Linux.GIDMappings[0].HostID = 1000, 1000
	golden(t, "default-rootless.json", s)
}

// TestFeatures checks `berth-runtime features`. The golden file holds the
// host-independent part; the capability list (this kernel's), the seccomp
// architectures and supported flags (this libseccomp's and kernel's) and
// the Go version are checked here and blanked there.
func TestFeatures(t *testing.T) {
	f := Features("1.2.3-test")
	if f.Annotations[AnnotationVersion] != "1.2.3-test" {
		t.Errorf("version annotation %q", f.Annotations[AnnotationVersion])
	}
	if f.Annotations[AnnotationGoVersion] != runtime.Version() {
		t.Errorf("go version annotation %q", f.Annotations[AnnotationGoVersion])
	}
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Fatal(err)
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	caps := f.Linux.Capabilities
	if want := min(last+1, len(capNames)); len(caps) != want {
		t.Errorf("%d capabilities, want %d (cap_last_cap %d)", len(caps), want, last)
	}
	for _, c := range []string{"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_AUDIT_READ"} {
		if !slices.Contains(caps, c) {
			t.Errorf("capabilities lack %s", c)
		}
	}
	if i := slices.Index(caps, "CAP_NET_ADMIN"); i != 12 {
		t.Errorf("CAP_NET_ADMIN at %d, want its number 12", i)
	}
	sc := f.Linux.Seccomp
	if sc == nil || sc.Enabled == nil || !*sc.Enabled {
		t.Fatal("seccomp not reported as enabled")
	}
	native := map[string]string{"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64"}[runtime.GOARCH]
	if native != "" && !slices.Contains(sc.Archs, native) {
		t.Errorf("seccomp archs %v lack the native %s", sc.Archs, native)
	}
	for _, fl := range sc.SupportedFlags {
		if !slices.Contains(sc.KnownFlags, fl) {
			t.Errorf("supported flag %s is not a known flag", fl)
		}
	}
	// Every mount option must be one the spec defines; the table in
	// config.md lists 62.
	if len(f.MountOptions) != 62 || !slices.IsSorted(f.MountOptions) {
		t.Errorf("%d mount options (sorted: %v), want config.md's 62 sorted", len(f.MountOptions), slices.IsSorted(f.MountOptions))
	}

	f.Linux.Capabilities = []string{"(host-dependent: this kernel's cap_last_cap)"}
	sc.Archs = []string{"(host-dependent: what libseccomp supports)"}
	sc.SupportedFlags = []string{"(host-dependent: what libseccomp and the kernel support)"}
	f.Annotations[AnnotationGoVersion] = "(build-dependent: go version)"
	golden(t, "features.json", f)
}
