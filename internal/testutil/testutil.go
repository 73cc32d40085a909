// Package testutil holds what berth's tests share: gating integration tests on
// root with a stated reason, locating or building the project's binaries, and
// building busybox root filesystems and OCI bundles without any network.
//
// It owns nothing that ships; only _test.go files import it.
package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// RequireRoot skips the test, saying why, unless it runs as root. Integration
// tests that create namespaces, mounts or cgroups start with it.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("integration test: needs root (namespaces, mounts, cgroups); run `sudo make test`")
	}
}

// RequireBusybox skips unless a static busybox is installed; `make deps`
// installs Debian's busybox-static, so under make this never skips.
func RequireBusybox(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(BusyboxPath); err != nil {
		t.Skipf("needs %s from Debian's busybox-static (make deps installs it): %v", BusyboxPath, err)
	}
}

// ModuleRoot returns the directory holding go.mod, found from the working
// directory upwards (go test runs each package in its own directory).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testutil: go.mod not found above the working directory")
		}
		dir = parent
	}
}

var (
	buildMu    sync.Mutex
	builtBins  = map[string]string{}
	buildDirMu sync.Once
	buildDir   string
)

// Binary returns the path of one of the project's commands (for example
// "berth-runtime"). Under make, BERTH_BIN_DIR points at the freshly built
// bin/; otherwise the command is built once per test process into a
// temporary directory, so `go test ./...` alone also works.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv("BERTH_BIN_DIR"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("BERTH_BIN_DIR=%s has no %s: %v (run make build)", dir, name, err)
		}
		return p
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := builtBins[name]; ok {
		return p
	}
	buildDirMu.Do(func() {
		d, err := os.MkdirTemp("", "berth-testbin-")
		if err == nil {
			buildDir = d
		}
	})
	if buildDir == "" {
		t.Fatal("testutil: cannot create a directory for test binaries")
	}
	out := filepath.Join(buildDir, name)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = ModuleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	builtBins[name] = out
	return out
}

// BusyboxRootfs fills dir with a minimal busybox root filesystem: the static
// binary, a symlink per applet, and the files and directories a container
// expects (/etc/passwd, /etc/group, /proc, /sys, /dev, /tmp).
func BusyboxRootfs(t testing.TB, dir string) {
	t.Helper()
	RequireBusybox(t)
	if err := MakeBusyboxRootfs(dir); err != nil {
		t.Fatal(err)
	}
}

// MakeBusyboxRootfs is BusyboxRootfs for callers without a testing.TB (the
// demo and benchmark helpers).
func MakeBusyboxRootfs(dir string) error {
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "etc", "tmp", "root", "var", "run", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	src, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return fmt.Errorf("busybox rootfs: %w (install busybox-static)", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), src, 0o755); err != nil {
		return err
	}
	list, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		link := filepath.Join(dir, "bin", applet)
		if err := os.Symlink("busybox", link); err != nil && !os.IsExist(err) {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd":      "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
		"etc/group":       "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n",
		"etc/hostname":    "",
		"etc/hosts":       "127.0.0.1 localhost\n",
		"etc/resolv.conf": "",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Bundle makes an OCI bundle in a new temporary directory: a busybox rootfs
// in rootfs/ and spec written as config.json with root.path set to
// "rootfs". It returns the bundle directory.
func Bundle(t testing.TB, spec *specs.Spec) string {
	t.Helper()
	dir := t.TempDir()
	// Containers running as other users must be able to reach the rootfs.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	BusyboxRootfs(t, filepath.Join(dir, "rootfs"))
	if spec.Root == nil {
		spec.Root = &specs.Root{}
	}
	spec.Root.Path = "rootfs"
	WriteSpec(t, dir, spec)
	return dir
}

// WriteSpec writes spec as dir/config.json.
func WriteSpec(t testing.TB, dir string, spec *specs.Spec) {
	t.Helper()
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Run executes a command and returns its stdout, stderr and exit code; a
// failure to start at all fails the test. Output goes through temporary
// files, not pipes: a detached container inherits the runtime's stdio, and
// a pipe would keep Run waiting until the container exits.
func Run(t testing.TB, stdin []byte, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	o, err := os.CreateTemp("", "berth-test-out-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(o.Name())
	defer o.Close()
	e, err := os.CreateTemp("", "berth-test-err-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(e.Name())
	defer e.Close()
	cmd.Stdout, cmd.Stderr = o, e
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	runErr := cmd.Run()
	ob, _ := os.ReadFile(o.Name())
	eb, _ := os.ReadFile(e.Name())
	if runErr != nil {
		if ee, ok := runErr.(*exec.ExitError); ok {
			return string(ob), string(eb), ee.ExitCode()
		}
		t.Fatalf("run %s %v: %v", name, args, runErr)
	}
	return string(ob), string(eb), 0
}
