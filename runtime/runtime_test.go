package runtime_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/testutil"
	"github.com/berthproject/berth/runtime/bundle"
	"github.com/berthproject/berth/seccomp"
)

// harness drives the real berth-runtime binary with a private --root.
type harness struct {
	t    *testing.T
	bin  string
	root string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	h := &harness{t: t, bin: testutil.Binary(t, "berth-runtime"), root: t.TempDir()}
	t.Cleanup(func() {
		out, _, _ := testutil.Run(t, nil, h.bin, "--root", h.root, "list", "-q")
		for _, id := range strings.Fields(out) {
			testutil.Run(t, nil, h.bin, "--root", h.root, "delete", "-f", id)
		}
	})
	return h
}

func (h *harness) run(args ...string) (string, string, int) {
	h.t.Helper()
	return testutil.Run(h.t, nil, h.bin, append([]string{"--root", h.root}, args...)...)
}

func (h *harness) must(args ...string) string {
	h.t.Helper()
	out, errOut, code := h.run(args...)
	if code != 0 {
		h.t.Fatalf("berth-runtime %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (h *harness) status(id string) string {
	h.t.Helper()
	var st struct {
		Status string `json:"status"`
		Pid    int    `json:"pid"`
	}
	out := h.must("state", id)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		h.t.Fatalf("state %s: %v: %s", id, err, out)
	}
	return st.Status
}

// spec is the default spec without a terminal, running args.
func spec(args ...string) *specs.Spec {
	s := bundle.Default()
	s.Process.Terminal = false
	s.Process.Args = args
	return s
}

func uniqueID(t *testing.T) string {
	return fmt.Sprintf("t%d-%s", os.Getpid(), strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()))
}

func TestRunExitCodes(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"true", []string{"true"}, 0, ""},
		{"exit3", []string{"sh", "-c", "exit 3"}, 3, ""},
		{"echo", []string{"echo", "hello from berth"}, 0, "hello from berth\n"},
		{"notfound", []string{"/no/such/program"}, -1, "/no/such/program"},
		{"childkilled", []string{"sh", "-c", `sh -c 'kill -9 $$'; exit $?`}, 137, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testutil.Bundle(t, spec(tc.args...))
			out, errOut, code := h.run("run", "--bundle", b, uniqueID(t))
			if tc.code < 0 {
				if code == 0 || !strings.Contains(errOut, tc.out) {
					t.Fatalf("exit %d, stderr %q: want a failure naming %q", code, errOut, tc.out)
				}
				return
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, errOut)
			}
			if tc.out != "" && out != tc.out {
				t.Fatalf("stdout %q, want %q", out, tc.out)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	h := newHarness(t)
	b := testutil.Bundle(t, spec("sleep", "60"))
	id := uniqueID(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	h.must("create", "--bundle", b, "--pid-file", pidFile, id)
	if s := h.status(id); s != "created" {
		t.Fatalf("after create: %s", s)
	}
	pid, err := os.ReadFile(pidFile)
	if err != nil || len(pid) == 0 {
		t.Fatalf("pid file: %v %q", err, pid)
	}
	// Before start the init runs from the sealed in-memory copy of the
	// runtime, never from the binary on disk.
	exe, err := os.Readlink("/proc/" + string(pid) + "/exe")
	if err != nil || !strings.Contains(exe, "memfd:berth-runtime") {
		t.Fatalf("init exe %q (%v): want the sealed memfd copy", exe, err)
	}
	if f, err := os.OpenFile("/proc/"+string(pid)+"/exe", os.O_WRONLY, 0); err == nil {
		f.Close()
		t.Fatal("the init's executable could be opened for writing")
	}
	if _, _, code := h.run("create", "--bundle", b, id); code == 0 {
		t.Fatal("create with a taken id succeeded")
	}
	h.must("start", id)
	if s := h.status(id); s != "running" {
		t.Fatalf("after start: %s", s)
	}
	if _, _, code := h.run("start", id); code == 0 {
		t.Fatal("start of a running container succeeded")
	}
	if _, _, code := h.run("delete", id); code == 0 {
		t.Fatal("delete of a running container without --force succeeded")
	}
	h.must("pause", id)
	if s := h.status(id); s != "paused" {
		t.Fatalf("after pause: %s", s)
	}
	h.must("resume", id)
	if s := h.status(id); s != "running" {
		t.Fatalf("after resume: %s", s)
	}
	list := h.must("list", "--format", "json")
	if !strings.Contains(list, `"id":"`+id+`"`) {
		t.Fatalf("list json lacks %s: %s", id, list)
	}
	ps := h.must("ps", "--format", "json", id)
	if !strings.Contains(ps, strings.TrimSpace(string(pid))) {
		t.Fatalf("ps %s lacks init pid %s", ps, pid)
	}
	h.must("kill", id, "KILL")
	waitStatus(t, h, id, "stopped")
	if _, _, code := h.run("kill", id, "TERM"); code == 0 {
		t.Fatal("kill of a stopped container succeeded")
	}
	h.must("delete", id)
	if _, _, code := h.run("state", id); code == 0 {
		t.Fatal("state after delete succeeded")
	}
}

func waitStatus(t *testing.T, h *harness, id, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := h.status(id)
		if s == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %s, want %s", s, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIsolation(t *testing.T) {
	h := newHarness(t)
	s := spec("sh", "-c", "hostname; echo pid=$$; ls /proc/self/fd | wc -l; wc -l < /proc/self/mountinfo; grep CapEff /proc/self/status")
	s.Hostname = "berth-test"
	b := testutil.Bundle(t, s)
	out := h.must("run", "--bundle", b, uniqueID(t))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("output: %q", out)
	}
	if lines[0] != "berth-test" {
		t.Errorf("hostname %q", lines[0])
	}
	if lines[1] != "pid=1" {
		t.Errorf("%s: want pid=1", lines[1])
	}
	// ls sees 0, 1, 2 and the directory it reads: nothing of the runtime's.
	if strings.TrimSpace(lines[2]) != "4" {
		t.Errorf("open fds in the container: %s, want 4 (0, 1, 2 and ls's own)", lines[2])
	}
	host, _ := os.ReadFile("/proc/self/mountinfo")
	if n := strings.Count(string(host), "\n"); fmt.Sprint(n) == strings.TrimSpace(lines[3]) {
		t.Errorf("the container sees as many mounts as the host (%d)", n)
	}
	// The default spec's capabilities: AUDIT_WRITE, KILL, NET_BIND_SERVICE.
	if !strings.Contains(lines[4], "00000000200000420") && !strings.Contains(lines[4], "0000000020000420") {
		t.Errorf("effective capabilities %q, want the default three", lines[4])
	}
}

func TestExec(t *testing.T) {
	h := newHarness(t)
	s := spec("sleep", "60")
	s.Hostname = "exec-test"
	b := testutil.Bundle(t, s)
	id := uniqueID(t)
	h.must("run", "-d", "--bundle", b, id)
	out := h.must("exec", id, "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '")
	if !strings.Contains(out, "exec-test") || !strings.Contains(out, "sleep 60") {
		t.Fatalf("exec output %q", out)
	}
	if _, _, code := h.run("exec", id, "sh", "-c", "exit 7"); code != 7 {
		t.Fatalf("exec exit code %d, want 7", code)
	}
	out = h.must("exec", "--user", "65534:65534", "--cwd", "/tmp", "-e", "FOO=bar", id, "sh", "-c", "id -u; id -g; pwd; echo $FOO")
	if got := strings.Fields(out); len(got) != 4 || got[0] != "65534" || got[1] != "65534" || got[2] != "/tmp" || got[3] != "bar" {
		t.Fatalf("exec with user/cwd/env: %q", out)
	}
	h.must("delete", "-f", id)
}

// TestSeccompProgramAnnotation: a precompiled program in crun's annotation
// is what the container gets, in place of compiling linux.seccomp.
func TestSeccompProgramAnnotation(t *testing.T) {
	h := newHarness(t)
	prof := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}}}
	f, err := seccomp.Compile(prof)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := f.Program()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := spec("sh", "-c", "grep Seccomp: /proc/self/status; mkdir /tmp/d && echo made")
	// linux.seccomp allows everything: only the annotation refuses mkdir.
	s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	s.Annotations = map[string]string{seccomp.BPFAnnotation: base64.StdEncoding.EncodeToString(prog)}
	out, errOut, code := h.run("run", "--bundle", testutil.Bundle(t, s), uniqueID(t))
	if code == 0 || strings.Contains(out, "made") || !strings.Contains(out, "Seccomp:\t2") || !strings.Contains(errOut, "Operation not permitted") {
		t.Fatalf("exit %d, stdout %q, stderr %q: want mkdir refused by the annotation's program", code, out, errOut)
	}
}

func TestMemoryLimitKills(t *testing.T) {
	h := newHarness(t)
	s := spec("sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1 && echo survived")
	limit := int64(16 << 20)
	s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &limit}}
	b := testutil.Bundle(t, s)
	out, _, code := h.run("run", "--bundle", b, uniqueID(t))
	if strings.Contains(out, "survived") {
		t.Fatalf("an allocation past the memory limit survived (exit %d)", code)
	}
}

// TestBadInput: each bad bundle is refused with a one-line error naming the
// field, and nothing is left behind.
func TestBadInput(t *testing.T) {
	h := newHarness(t)
	hostDir := t.TempDir()
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, dir string, s *specs.Spec) []byte
		want   string
	}{
		{"malformed", func(t *testing.T, dir string, s *specs.Spec) []byte {
			return []byte(`{"ociVersion": "1.0.0", "process": {`)
		}, "config.json"},
		{"wrongtype", func(t *testing.T, dir string, s *specs.Spec) []byte {
			return []byte(`{"ociVersion":"1.0.0","root":{"path":"rootfs"},"process":{"args":"sh","cwd":"/"},"linux":{}}`)
		}, "process.args"},
		{"norootfs", func(t *testing.T, dir string, s *specs.Spec) []byte {
			s.Root.Path = "nope"
			return nil
		}, "root.path"},
		{"badseccomp", func(t *testing.T, dir string, s *specs.Spec) []byte {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_ALLOW", Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: "SCMP_ACT_BOGUS"}}}
			return nil
		}, "linux.seccomp"},
		{"badbpfannotation", func(t *testing.T, dir string, s *specs.Spec) []byte {
			s.Annotations = map[string]string{seccomp.BPFAnnotation: "not base64!"}
			return nil
		}, seccomp.BPFAnnotation},
		{"shortbpfannotation", func(t *testing.T, dir string, s *specs.Spec) []byte {
			s.Annotations = map[string]string{seccomp.BPFAnnotation: base64.StdEncoding.EncodeToString([]byte("12345"))}
			return nil
		}, "BPF instructions"},
		{"unknownns", func(t *testing.T, dir string, s *specs.Spec) []byte {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
			return nil
		}, "linux.namespaces"},
		{"symlinkmount", func(t *testing.T, dir string, s *specs.Spec) []byte {
			if err := os.Symlink(hostDir, filepath.Join(dir, "rootfs", "evil")); err != nil {
				t.Fatal(err)
			}
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/evil/x", Type: "bind", Source: "/nonexistent-source", Options: []string{"bind"}})
			return nil
		}, "mounts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := spec("true")
			dir := testutil.Bundle(t, s)
			if raw := tc.mutate(t, dir, s); raw != nil {
				os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644)
			} else {
				testutil.WriteSpec(t, dir, s)
			}
			before, _ := os.ReadFile("/proc/self/mountinfo")
			id := uniqueID(t)
			_, errOut, code := h.run("run", "--bundle", dir, id)
			if code == 0 {
				t.Fatal("accepted")
			}
			msg := strings.TrimSpace(errOut)
			if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q: want one line naming %s", msg, tc.want)
			}
			if _, err := os.Stat(filepath.Join(h.root, id)); !os.IsNotExist(err) {
				t.Errorf("state dir left behind: %v", err)
			}
			for _, c := range []string{"memory", "pids", "freezer"} {
				matches, _ := filepath.Glob("/sys/fs/cgroup/" + c + "/*/" + id)
				m2, _ := filepath.Glob("/sys/fs/cgroup/" + c + "/" + id)
				if len(matches)+len(m2) > 0 {
					t.Errorf("cgroup left behind: %v %v", matches, m2)
				}
			}
			after, _ := os.ReadFile("/proc/self/mountinfo")
			if strings.Count(string(after), "\n") != strings.Count(string(before), "\n") {
				t.Errorf("mount table changed")
			}
			if ents, _ := os.ReadDir(hostDir); len(ents) != 0 {
				t.Errorf("the host directory behind the symlink was written to: %v", ents)
			}
		})
	}
}

func TestUpdateEventsSpecFeatures(t *testing.T) {
	h := newHarness(t)
	b := testutil.Bundle(t, spec("sleep", "60"))
	id := uniqueID(t)
	h.must("run", "-d", "--bundle", b, id)
	h.must("update", "--memory", "48m", "--pids-limit", "42", id)
	var ev struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Data struct {
			Memory struct {
				Usage struct {
					Limit uint64 `json:"limit"`
				} `json:"usage"`
			} `json:"memory"`
			Pids struct {
				Current uint64 `json:"current"`
				Limit   uint64 `json:"limit"`
			} `json:"pids"`
		} `json:"data"`
	}
	out := h.must("events", "--stats", id)
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatalf("events --stats: %v: %s", err, out)
	}
	if ev.Type != "stats" || ev.ID != id || ev.Data.Memory.Usage.Limit != 48<<20 || ev.Data.Pids.Limit != 42 || ev.Data.Pids.Current < 1 {
		t.Fatalf("stats after update: %+v", ev)
	}
	if _, errOut, code := h.run("update", "--memory", "lots", id); code == 0 || !strings.Contains(errOut, "--memory") {
		t.Fatalf("bad --memory accepted (exit %d): %s", code, errOut)
	}
	h.must("delete", "-f", id)

	dir := t.TempDir()
	h.must("spec", "--bundle", dir)
	if _, _, code := h.run("spec", "--bundle", dir); code == 0 {
		t.Fatal("spec overwrote an existing config.json")
	}
	var s specs.Spec
	raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := json.Unmarshal(raw, &s); err != nil || s.Linux.Seccomp == nil || len(s.Linux.Seccomp.Syscalls) == 0 {
		t.Fatalf("spec: no default seccomp profile: %v", err)
	}
	var f struct {
		OCIVersionMax string   `json:"ociVersionMax"`
		Hooks         []string `json:"hooks"`
	}
	if err := json.Unmarshal([]byte(h.must("features")), &f); err != nil || f.OCIVersionMax == "" || len(f.Hooks) != 6 {
		t.Fatalf("features: %+v %v", f, err)
	}
	if _, errOut, code := h.run("--systemd-cgroup", "list"); code == 0 || !strings.Contains(errOut, "not supported") {
		t.Fatalf("--systemd-cgroup: exit %d %s", code, errOut)
	}
}

func newCmd(h *harness, args ...string) *exec.Cmd {
	return exec.Command(h.bin, append([]string{"--root", h.root}, args...)...)
}
