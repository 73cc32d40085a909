package process

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func busyboxSpec(script string) *specs.Spec {
	return &specs.Spec{
		Process: &specs.Process{
			Args: []string{"busybox", "sh", "-c", script},
			Env:  []string{"PATH=/usr/local/bin:/bin:/usr/bin"},
			Cwd:  "/",
		},
		Linux: &specs.Linux{},
	}
}

// field returns the value after "key" on the line that starts with it.
func field(t *testing.T, out, key string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %q line in output:\n%s", key, out)
	return ""
}

func mustSucceed(t *testing.T, stdout, stderr string, code int) {
	t.Helper()
	if code != 0 {
		t.Fatalf("child exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestUserCapsLimitsAndCwd runs busybox as an unprivileged user with a
// narrowed capability set, including one the host's bounding set lacks
// (CAP_SYS_RESOURCE) and one name that is no capability, and checks what
// the program sees.
func TestUserCapsLimitsAndCwd(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	if hasBoundingCap("CAP_SYS_RESOURCE") {
		t.Log("CAP_SYS_RESOURCE is in this host's bounding set; the skip path is then not exercised")
	}

	cwd := t.TempDir()
	for d := cwd; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	spec := busyboxSpec(`id; grep -E '^(Cap|NoNewPrivs)' /proc/self/status; grep 'open files' /proc/self/limits;` +
		`echo oom=$(cat /proc/self/oom_score_adj); echo umask=$(umask); echo pwd=$(pwd); echo HOME=$HOME`)
	umask := uint32(0o027)
	oom := 123
	spec.Process.User = specs.User{UID: 12345, GID: 12346, AdditionalGids: []uint32{20, 10, 20}, Umask: &umask}
	spec.Process.Cwd = cwd
	spec.Process.NoNewPrivileges = true
	spec.Process.OOMScoreAdj = &oom
	spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1234, Hard: 4321}}
	spec.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding:    []string{"CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_SYS_RESOURCE", "CAP_KILL"},
		Effective:   []string{"CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_SYS_RESOURCE"},
		Permitted:   []string{"CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_SYS_RESOURCE"},
		Inheritable: []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"},
		Ambient:     []string{"CAP_NET_BIND_SERVICE", "CAP_FOO"},
	}
	out, errOut, code := runChild(t, childConfig{Spec: spec}, 0)
	mustSucceed(t, out, errOut, code)

	idLine := field(t, out, "uid=")
	if !strings.HasPrefix(idLine, "12345 gid=12346") {
		t.Errorf("id = uid=%s, want uid=12345 gid=12346", idLine)
	}
	groups := regexp.MustCompile(`(\d+)(\([^)]*\))?`).FindAllStringSubmatch(idLine[strings.Index(idLine, "groups=")+len("groups="):], -1)
	var got []string
	for _, g := range groups {
		got = append(got, g[1])
	}
	// The kernel keeps the list sorted.
	if strings.Join(got, ",") != "10,20,12346" {
		t.Errorf("groups = %v, want 10,20,12346 (additionalGids and the gid, each once)", got)
	}
	// CAP_CHOWN=0, CAP_KILL=5, CAP_NET_BIND_SERVICE=10.
	wantCaps := map[string]string{
		"CapBnd:": "0000000000000421",
		"CapInh:": "0000000000000420",
		"CapAmb:": "0000000000000400",
		"CapPrm:": "0000000000000400", // a non-root execve keeps only the ambient set
		"CapEff:": "0000000000000400",
	}
	for k, want := range wantCaps {
		if v := field(t, out, k); v != want {
			t.Errorf("%s %s, want %s", k, v, want)
		}
	}
	if v := field(t, out, "NoNewPrivs:"); v != "1" {
		t.Errorf("NoNewPrivs: %s, want 1", v)
	}
	if v := strings.Fields(field(t, out, "Max open files")); len(v) < 2 || v[0] != "1234" || v[1] != "4321" {
		t.Errorf("Max open files %v, want soft 1234 hard 4321", v)
	}
	if v := field(t, out, "oom="); v != "123" {
		t.Errorf("oom_score_adj = %s, want 123", v)
	}
	if v := field(t, out, "umask="); v != "0027" {
		t.Errorf("umask = %s, want 0027", v)
	}
	if v := field(t, out, "pwd="); v != cwd {
		t.Errorf("pwd = %s, want %s", v, cwd)
	}
	if v := field(t, out, "HOME="); v != "/" {
		t.Errorf("HOME = %s, want / (uid 12345 has no passwd entry)", v)
	}
	if !strings.Contains(errOut, `process.capabilities.ambient[1]: \"CAP_FOO\" (unknown)`) {
		t.Errorf("no warning about the unknown ambient capability; stderr:\n%s", errOut)
	}
}

// hasBoundingCap reports whether the test process's bounding set holds name.
func hasBoundingCap(name string) bool {
	c, err := ParseCapability(name)
	if err != nil {
		return false
	}
	r, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
	return err == nil && r == 1
}

// TestRootKeepsAskedCaps checks a root process gets exactly the sets asked
// for (minus what the host lacks) and HOME from /etc/passwd.
func TestRootKeepsAskedCaps(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	spec := busyboxSpec(`grep -E '^Cap' /proc/self/status; echo HOME=$HOME`)
	spec.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding:  []string{"CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_DAC_OVERRIDE"},
		Effective: []string{"CAP_SYS_ADMIN"},
		Permitted: []string{"CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"},
	}
	out, errOut, code := runChild(t, childConfig{Spec: spec}, 0)
	mustSucceed(t, out, errOut, code)
	// root's execve: permitted becomes the bounding set, effective too.
	// CAP_DAC_OVERRIDE=1, CAP_SYS_ADMIN=21.
	want := fmt.Sprintf("%016x", 1<<1|1<<21)
	for _, k := range []string{"CapBnd:", "CapPrm:", "CapEff:"} {
		if v := field(t, out, k); v != want {
			t.Errorf("%s %s, want %s", k, v, want)
		}
	}
	if v := field(t, out, "HOME="); v != "/root" {
		t.Errorf("HOME = %s, want /root", v)
	}
}

// TestSeccompOrder checks LoadSeccomp runs while still root with all
// capabilities when no_new_privs is off, and last, as the final user, when
// it is on.
func TestSeccompOrder(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	for _, tc := range []struct {
		nnp      bool
		wantEUID string
		wantNNP  string
		wantEff  string
	}{
		{nnp: false, wantEUID: "0", wantNNP: "0", wantEff: "full"},
		{nnp: true, wantEUID: "1000", wantNNP: "1", wantEff: "0000000000000400"},
	} {
		t.Run(fmt.Sprintf("nnp=%v", tc.nnp), func(t *testing.T) {
			spec := busyboxSpec("echo ran")
			spec.Process.User = specs.User{UID: 1000, GID: 1000}
			spec.Process.NoNewPrivileges = tc.nnp
			spec.Process.Capabilities = &specs.LinuxCapabilities{
				Effective: []string{"CAP_NET_BIND_SERVICE"},
				Permitted: []string{"CAP_NET_BIND_SERVICE"},
				Bounding:  []string{"CAP_NET_BIND_SERVICE"},
			}
			out, errOut, code := runChild(t, childConfig{Spec: spec, RecordSeccomp: true}, 0)
			mustSucceed(t, out, errOut, code)
			if strings.TrimSpace(out) != "ran" {
				t.Errorf("program output %q, want ran", out)
			}
			lines := regexp.MustCompile(`SECCOMP euid=(\d+) capeff=(\w+) nnp=(\d)`).FindAllStringSubmatch(errOut, -1)
			if len(lines) != 1 {
				t.Fatalf("LoadSeccomp ran %d times, want once; stderr:\n%s", len(lines), errOut)
			}
			euid, eff, nnp := lines[0][1], lines[0][2], lines[0][3]
			if euid != tc.wantEUID || nnp != tc.wantNNP {
				t.Errorf("LoadSeccomp saw euid=%s nnp=%s, want euid=%s nnp=%s", euid, nnp, tc.wantEUID, tc.wantNNP)
			}
			switch tc.wantEff {
			case "full":
				v, _ := strconv.ParseUint(eff, 16, 64)
				if v&(1<<21) == 0 {
					t.Errorf("LoadSeccomp saw CapEff %s without CAP_SYS_ADMIN", eff)
				}
			default:
				if eff != tc.wantEff {
					t.Errorf("LoadSeccomp saw CapEff %s, want %s", eff, tc.wantEff)
				}
			}
		})
	}
}

// TestInitUTSAndSysctl runs the init in new uts and ipc namespaces.
func TestInitUTSAndSysctl(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	hostBefore, _ := os.Hostname()
	spec := busyboxSpec(`echo host=$(hostname); echo domain=$(cat /proc/sys/kernel/domainname); echo msgmax=$(cat /proc/sys/kernel/msgmax)`)
	spec.Hostname = "berth-proc-test"
	spec.Domainname = "berth.test"
	spec.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.UTSNamespace}, {Type: specs.IPCNamespace}}
	spec.Linux.Sysctl = map[string]string{"kernel.msgmax": "12345"}
	out, errOut, code := runChild(t, childConfig{Spec: spec, Init: true}, unix.CLONE_NEWUTS|unix.CLONE_NEWIPC)
	mustSucceed(t, out, errOut, code)
	for k, want := range map[string]string{"host=": "berth-proc-test", "domain=": "berth.test", "msgmax=": "12345"} {
		if v := field(t, out, k); v != want {
			t.Errorf("%s%s, want %s", k, v, want)
		}
	}
	if h, _ := os.Hostname(); h != hostBefore {
		t.Errorf("host's hostname changed from %q to %q", hostBefore, h)
	}

	// A non-init process leaves them alone.
	out, errOut, code = runChild(t, childConfig{Spec: spec, Init: false}, unix.CLONE_NEWUTS|unix.CLONE_NEWIPC)
	mustSucceed(t, out, errOut, code)
	if v := field(t, out, "host="); v != hostBefore {
		t.Errorf("exec process: hostname %s, want the inherited %s", v, hostBefore)
	}
}

func TestInitRefusesHostSysctl(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	spec := busyboxSpec("true")
	spec.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.UTSNamespace}}
	spec.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
	out, errOut, code := runChild(t, childConfig{Spec: spec, Init: true}, unix.CLONE_NEWUTS)
	if code != 3 || !strings.Contains(errOut, `linux.sysctl["net.ipv4.ip_forward"]: needs a network namespace`) {
		t.Fatalf("exit %d, stderr %q, stdout %q; want a linux.sysctl error", code, errOut, out)
	}
}

// TestThreadAttributes execs the test binary as a reporter to read back the
// scheduler, I/O priority, personality and CPU affinity.
func TestThreadAttributes(t *testing.T) {
	testutil.RequireRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{
		Process: &specs.Process{
			Args: []string{self},
			Env:  []string{envReport + "=1"},
			Cwd:  "/",
			Scheduler: &specs.Scheduler{
				Policy: specs.SchedBatch, Nice: 7,
				Flags: []specs.LinuxSchedulerFlag{specs.SchedFlagResetOnFork},
			},
			IOPriority:      &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE, Priority: 6},
			ExecCPUAffinity: &specs.CPUAffinity{Final: "0"},
		},
		Linux: &specs.Linux{Personality: &specs.LinuxPersonality{Domain: specs.PerLinux32}},
	}
	out, errOut, code := runChild(t, childConfig{Spec: spec}, 0)
	mustSucceed(t, out, errOut, code)
	want := map[string]string{
		"sched.policy=": "3", // SCHED_BATCH
		"sched.nice=":   "7",
		"sched.flags=":  "1", // SCHED_FLAG_RESET_ON_FORK
		"ioprio.class=": "3", // IOPRIO_CLASS_IDLE
		"ioprio.level=": "6",
		"personality=":  "0x8", // PER_LINUX32
		"affinity=":     "0",
	}
	if runtime.GOARCH == "amd64" {
		want["machine="] = "i686"
	}
	for k, w := range want {
		if v := field(t, out, k); v != w {
			t.Errorf("%s%s, want %s", k, v, w)
		}
	}

	// The init ignores execCPUAffinity, which the spec gives exec'd
	// processes only.
	spec.Process.ExecCPUAffinity = &specs.CPUAffinity{Final: "1"}
	out, errOut, code = runChild(t, childConfig{Spec: spec, Init: true}, 0)
	mustSucceed(t, out, errOut, code)
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	if all.Count() > 1 && field(t, out, "affinity=") == "1" {
		t.Errorf("init applied execCPUAffinity.final")
	}
}

// TestExecClosesLeakedFDs checks a descriptor the runtime left open does not
// reach the program while one it asked to keep does.
func TestExecClosesLeakedFDs(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	spec := busyboxSpec(`ls /proc/self/fd`)
	out, errOut, code := runChild(t, childConfig{Spec: spec, LeakFD: 100, KeepFD: 101}, 0)
	mustSucceed(t, out, errOut, code)
	fds := strings.Fields(out)
	has := func(fd string) bool {
		for _, f := range fds {
			if f == fd {
				return true
			}
		}
		return false
	}
	if has("100") {
		t.Errorf("leaked fd 100 reached the program: %v", fds)
	}
	if !has("101") {
		t.Errorf("kept fd 101 did not reach the program: %v", fds)
	}
	for _, fd := range fds {
		if n, _ := strconv.Atoi(fd); n > 3 && n != 101 {
			t.Errorf("unexpected fd %s in the program: %v", fd, fds)
		}
	}
}

// TestCwdOutsideRootRefused simulates CVE-2024-21626: process.cwd names a
// directory fd leaked from outside the root.
func TestCwdOutsideRootRefused(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := busyboxSpec("true")
	spec.Process.Cwd = "/proc/self/fd/77"
	out, errOut, code := runChild(t, childConfig{Spec: spec, EscapeRoot: root}, unix.CLONE_NEWNS)
	if code != 3 || !strings.Contains(errOut, `process.cwd: "/proc/self/fd/77" is outside the container's root filesystem`) {
		t.Fatalf("exit %d, stderr %q, stdout %q; want the cwd refused", code, errOut, out)
	}
}

func TestPrepareErrorsInChild(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	var hard unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &hard); err != nil {
		t.Fatal(err)
	}
	held := hasBoundingCap("CAP_SYS_RESOURCE")
	tests := []struct {
		name   string
		mutate func(*specs.Spec)
		want   string
		skip   string // why the case cannot run here; empty runs it
	}{
		{
			name:   "program not in PATH",
			mutate: func(s *specs.Spec) { s.Process.Args = []string{"no-such-program-berth"} },
			want:   `process.args[0]: exec: "no-such-program-berth": executable file not found in $PATH`,
		},
		{
			name:   "no PATH in env",
			mutate: func(s *specs.Spec) { s.Process.Env = nil },
			want:   `process.args[0]: exec: "busybox": executable file not found in $PATH`,
		},
		{
			name:   "absolute path missing",
			mutate: func(s *specs.Spec) { s.Process.Args = []string{"/no/such/program"} },
			want:   `process.args[0]: exec: "/no/such/program": file does not exist`,
		},
		{
			name:   "not executable",
			mutate: func(s *specs.Spec) { s.Process.Args = []string{"/etc/passwd"} },
			want:   `process.args[0]: exec: "/etc/passwd": permission denied`,
		},
		{
			name: "rlimit above the hard limit",
			mutate: func(s *specs.Spec) {
				s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_CORE", Soft: 0, Hard: 0}, {Type: "RLIMIT_NOFILE", Soft: 1024, Hard: hard.Max + 10000}}
			},
			want: fmt.Sprintf("process.rlimits[1]: RLIMIT_NOFILE hard limit %d is above the current hard limit %d", hard.Max+10000, hard.Max),
			skip: ifTrue(held, "CAP_SYS_RESOURCE is held here, so raising the hard limit would succeed"),
		},
		{
			name:   "missing cwd",
			mutate: func(s *specs.Spec) { s.Process.Cwd = "/no/such/dir" },
			want:   `process.cwd: chdir "/no/such/dir": no such file or directory`,
		},
		{
			name:   "apparmor without apparmor",
			mutate: func(s *specs.Spec) { s.Process.ApparmorProfile = "berth-test" },
			want:   `process.apparmorProfile: profile "berth-test" requested but AppArmor is not enabled`,
			skip:   ifTrue(appArmorEnabled(), "AppArmor is enabled here, so the refusal without it cannot be checked"),
		},
		{
			name:   "hostname without uts namespace",
			mutate: func(s *specs.Spec) { s.Hostname = "x" },
			want:   `hostname: needs a uts namespace`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skip != "" {
				t.Skip(tc.skip)
			}
			spec := busyboxSpec("echo ran")
			tc.mutate(spec)
			out, errOut, code := runChild(t, childConfig{Spec: spec, Init: true}, 0)
			if code != 3 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want PREPARE error containing %q", code, out, errOut, tc.want)
			}
		})
	}
}

// TestPrepareValidatesFirst checks malformed specs are refused before
// anything changes, so these run in the test process itself.
func TestPrepareValidatesFirst(t *testing.T) {
	ok := func() *specs.Spec { return busyboxSpec("true") }
	tests := []struct {
		name   string
		mutate func(*specs.Spec)
		want   string
	}{
		{"no args", func(s *specs.Spec) { s.Process.Args = nil }, "process.args: must name the program"},
		{"relative cwd", func(s *specs.Spec) { s.Process.Cwd = "tmp" }, `process.cwd: must be an absolute path inside the container, not "tmp"`},
		{"unknown rlimit", func(s *specs.Spec) { s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_FOO"}} }, `process.rlimits[0].type: unknown rlimit "RLIMIT_FOO"`},
		{"soft above hard", func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 5}}
		}, "process.rlimits[0]: RLIMIT_NOFILE soft limit 10 is above its hard limit 5"},
		{"bad scheduler", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: "SCHED_FAST"} }, `process.scheduler.policy: unknown policy "SCHED_FAST"`},
		{"bad ioprio", func(s *specs.Spec) {
			s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 8}
		}, "process.ioPriority.priority: 8 is outside [0, 7]"},
		{"bad personality", func(s *specs.Spec) {
			s.Linux.Personality = &specs.LinuxPersonality{Domain: "LINUX64"}
		}, `linux.personality.domain: unknown domain "LINUX64"`},
		{"bad umask", func(s *specs.Spec) { u := uint32(0o1777); s.Process.User.Umask = &u }, "process.user.umask: 01777 is not a permission mask"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ok()
			tc.mutate(s)
			_, err := Prepare(s, s.Process, Options{Init: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Prepare(nil, nil, Options{}); err == nil {
		t.Error("Prepare(nil, nil) succeeded")
	}
}

// ifTrue returns why when cond holds: a table case's skip reason.
func ifTrue(cond bool, why string) string {
	if cond {
		return why
	}
	return ""
}
