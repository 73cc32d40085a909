package seccomp

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berthproject/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

func uptr(v uint) *uint { return &v }

func TestValidate(t *testing.T) {
	ok := func() *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getcwd"}, Action: specs.ActErrno},
				{Names: []string{"chmod"}, Action: specs.ActErrno, ErrnoRet: uptr(1)},
				{Names: []string{"mkdirat"}, Action: specs.ActTrace, Args: []specs.LinuxSeccompArg{{Index: 2, Value: 7, Op: specs.OpEqualTo}}},
			},
		}
	}
	tests := []struct {
		name string
		mod  func(c *specs.LinuxSeccomp)
		want string // "" means valid
	}{
		{"valid", func(c *specs.LinuxSeccomp) {}, ""},
		{"every action", func(c *specs.LinuxSeccomp) {
			for a := range actions {
				if a != specs.ActNotify {
					c.Syscalls = append(c.Syscalls, specs.LinuxSyscall{Names: []string{"x"}, Action: a})
				}
			}
		}, ""},
		{"every operator", func(c *specs.LinuxSeccomp) {
			for o := range operators {
				c.Syscalls[0].Args = append(c.Syscalls[0].Args, specs.LinuxSeccompArg{Index: 5, Op: o})
			}
		}, ""},
		{"every architecture", func(c *specs.LinuxSeccomp) {
			for a := range arches {
				c.Architectures = append(c.Architectures, a)
			}
		}, ""},
		{"every flag", func(c *specs.LinuxSeccomp) {
			for f := range flags {
				c.Flags = append(c.Flags, f)
			}
		}, ""},
		{"notify with listener", func(c *specs.LinuxSeccomp) {
			c.ListenerPath, c.ListenerMetadata = "/run/agent.sock", "m"
			c.Syscalls[0].Action = specs.ActNotify
		}, ""},
		{"default errno", func(c *specs.LinuxSeccomp) { c.DefaultAction, c.DefaultErrnoRet = specs.ActErrno, uptr(38) }, ""},

		{"missing default action", func(c *specs.LinuxSeccomp) { c.DefaultAction = "" }, `linux.seccomp.defaultAction: required`},
		{"unknown default action", func(c *specs.LinuxSeccomp) { c.DefaultAction = "X" }, `linux.seccomp.defaultAction: unknown action "X"`},
		{"notify default action", func(c *specs.LinuxSeccomp) { c.DefaultAction, c.ListenerPath = specs.ActNotify, "/s" }, `linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action`},
		{"default errno on allow", func(c *specs.LinuxSeccomp) { c.DefaultErrnoRet = uptr(1) }, `linux.seccomp.defaultErrnoRet: set but action SCMP_ACT_ALLOW does not return an errno`},
		{"default errno too big", func(c *specs.LinuxSeccomp) { c.DefaultAction, c.DefaultErrnoRet = specs.ActErrno, uptr(70000) }, `linux.seccomp.defaultErrnoRet: 70000 does not fit`},
		{"unknown arch", func(c *specs.LinuxSeccomp) { c.Architectures = []specs.Arch{specs.ArchX86, "SCMP_ARCH_Z"} }, `linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_Z"`},
		{"unknown flag", func(c *specs.LinuxSeccomp) { c.Flags = []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_BOGUS"} }, `linux.seccomp.flags[0]: unknown flag "SECCOMP_FILTER_FLAG_BOGUS"`},
		{"metadata without path", func(c *specs.LinuxSeccomp) { c.ListenerMetadata = "m" }, `linux.seccomp.listenerMetadata: must not be set without listenerPath`},
		{"notify without path", func(c *specs.LinuxSeccomp) { c.Syscalls[1].Action, c.Syscalls[1].ErrnoRet = specs.ActNotify, nil }, `linux.seccomp.listenerPath: required because syscalls[1] uses SCMP_ACT_NOTIFY`},
		{"notify on write", func(c *specs.LinuxSeccomp) {
			c.ListenerPath = "/s"
			c.Syscalls[0] = specs.LinuxSyscall{Names: []string{"read", "write"}, Action: specs.ActNotify}
		}, `linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used on write`},
		{"notify on sendmsg", func(c *specs.LinuxSeccomp) {
			c.ListenerPath = "/s"
			c.Syscalls[2] = specs.LinuxSyscall{Names: []string{"sendmsg"}, Action: specs.ActNotify}
		}, `linux.seccomp.syscalls[2].names[0]: SCMP_ACT_NOTIFY cannot be used on sendmsg`},
		{"no names", func(c *specs.LinuxSeccomp) { c.Syscalls[2].Names = nil }, `linux.seccomp.syscalls[2].names: must name at least one syscall`},
		{"empty name", func(c *specs.LinuxSeccomp) { c.Syscalls[0].Names = []string{"getcwd", ""} }, `linux.seccomp.syscalls[0].names[1]: empty syscall name`},
		{"missing action", func(c *specs.LinuxSeccomp) { c.Syscalls[1].Action = "" }, `linux.seccomp.syscalls[1].action: required`},
		{"unknown action", func(c *specs.LinuxSeccomp) { c.Syscalls[1].Action = "SCMP_ACT_FOO" }, `linux.seccomp.syscalls[1].action: unknown action "SCMP_ACT_FOO"`},
		{"errno on kill", func(c *specs.LinuxSeccomp) { c.Syscalls[1].Action = specs.ActKill }, `linux.seccomp.syscalls[1].errnoRet: set but action SCMP_ACT_KILL does not return an errno`},
		{"errno too big", func(c *specs.LinuxSeccomp) { c.Syscalls[1].ErrnoRet = uptr(1 << 16) }, `linux.seccomp.syscalls[1].errnoRet: 65536 does not fit`},
		{"unknown operator", func(c *specs.LinuxSeccomp) {
			c.Syscalls[2].Args = append(c.Syscalls[2].Args, specs.LinuxSeccompArg{Op: "SCMP_CMP_FOO"})
		}, `linux.seccomp.syscalls[2].args[1].op: unknown operator "SCMP_CMP_FOO"`},
		{"missing operator", func(c *specs.LinuxSeccomp) { c.Syscalls[2].Args[0].Op = "" }, `linux.seccomp.syscalls[2].args[0].op: required`},
		{"index out of range", func(c *specs.LinuxSeccomp) { c.Syscalls[2].Args[0].Index = 6 }, `linux.seccomp.syscalls[2].args[0].index: 6 out of range`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok()
			tt.mod(c)
			err := Validate(c)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want prefix %q", err, tt.want)
			}
			// Compile must refuse what Validate refuses, with the same words.
			if _, cerr := Compile(c); cerr == nil || cerr.Error() != err.Error() {
				t.Fatalf("Compile = %v, want %v", cerr, err)
			}
		})
	}
	if err := Validate(nil); err != nil {
		t.Fatalf("Validate(nil) = %v", err)
	}
}

func pfc(t *testing.T, f *Filter) string {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "pfc")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := f.scmp.ExportPFC(out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCompile(t *testing.T) {
	c := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: uptr(uint(unix.EACCES)),
		Architectures:   []specs.Arch{specs.ArchX86_64, specs.ArchX86},
		Flags:           []specs.LinuxSeccompFlag{FlagTsync, specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
		Syscalls: []specs.LinuxSyscall{
			// Unknown names are skipped, the known one still gets its rule.
			{Names: []string{"berth_no_such_syscall", "getpid"}, Action: specs.ActAllow},
			// Same action as the default: dropped rather than refused.
			{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EACCES))},
			{Names: []string{"getuid"}, Action: specs.ActErrno},
		},
	}
	f, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Notify() {
		t.Error("Notify() = true without SCMP_ACT_NOTIFY")
	}
	for name, get := range map[string]func() (bool, error){
		"log": f.scmp.GetLogBit, "ssb": f.scmp.GetSSB,
	} {
		if v, err := get(); err != nil || !v {
			t.Errorf("%s attribute = %v, %v; want true", name, v, err)
		}
	}
	if nnp, err := f.scmp.GetNoNewPrivsBit(); err != nil || nnp {
		t.Errorf("no_new_privs attribute = %v, %v; want false", nnp, err)
	}
	for _, a := range []libseccomp.ScmpArch{libseccomp.ArchAMD64, libseccomp.ArchX86} {
		if ok, err := f.scmp.IsArchPresent(a); err != nil || !ok {
			t.Errorf("arch %v present = %v, %v", a, ok, err)
		}
	}
	if def, _ := f.scmp.GetDefaultAction(); def != libseccomp.ActErrno.SetReturnCode(int16(unix.EACCES)) {
		t.Errorf("default action = %v (ret %d)", def, def.GetReturnCode())
	}
	p := pfc(t, f)
	for _, want := range []string{"getpid", "getuid"} {
		if !strings.Contains(p, want) {
			t.Errorf("filter has no rule for %s:\n%s", want, p)
		}
	}
	if strings.Contains(p, "getppid") {
		t.Errorf("rule equal to the default action kept:\n%s", p)
	}

	f.Close()
	f.Close() // twice is fine
	if _, err := f.Load(); err == nil {
		t.Fatal("Load after Close succeeded")
	}
}

// TestCompileUnsupported: what this libseccomp cannot do fails at Compile
// with the field and the reason, not at Load inside the container.
func TestCompileUnsupported(t *testing.T) {
	maj, min, _ := libseccomp.GetLibraryVersion()
	if maj > 2 || min >= 6 {
		t.Skipf("libseccomp %d.%d supports everything tested here", maj, min)
	}
	tests := []struct {
		c    specs.LinuxSeccomp
		want []string
	}{
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}},
			[]string{"linux.seccomp.flags[0]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "2.6.0"}},
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchLOONGARCH64}},
			[]string{"linux.seccomp.architectures[1]: SCMP_ARCH_LOONGARCH64", "not supported"}},
	}
	for _, tt := range tests {
		_, err := Compile(&tt.c)
		if err == nil {
			t.Fatalf("Compile(%+v) succeeded", tt.c)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Compile error %q lacks %q", err, w)
			}
		}
	}
}

func TestConditionsSameIndex(t *testing.T) {
	args := []specs.LinuxSeccompArg{{Index: 2, Value: 1, Op: specs.OpEqualTo}, {Index: 0, Value: 3, Op: specs.OpEqualTo}}
	if _, sep, err := conditions(args); err != nil || sep {
		t.Fatalf("different indexes: separate = %v, %v", sep, err)
	}
	args = append(args, specs.LinuxSeccompArg{Index: 2, Value: 2, Op: specs.OpEqualTo})
	conds, sep, err := conditions(args)
	if err != nil || !sep || len(conds) != 3 {
		t.Fatalf("same index: %d conditions, separate = %v, %v", len(conds), sep, err)
	}
}

func allow(rules ...specs.LinuxSyscall) *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules}
}

func TestLoadErrnoBusybox(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	dir := t.TempDir()
	denied, allowed := filepath.Join(dir, "denied"), filepath.Join(dir, "allowed")
	c := allow(specs.LinuxSyscall{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno})
	r := runChild(t, c, []string{"exec " + testutil.BusyboxPath + " mkdir " + denied}, nil)
	if r.status.ExitStatus() == 0 || !strings.Contains(r.stderr, "Operation not permitted") {
		t.Fatalf("busybox mkdir under the filter: %v", r)
	}
	if _, err := os.Stat(denied); !os.IsNotExist(err) {
		t.Fatalf("%s exists (%v) though mkdir was refused", denied, err)
	}
	// The same filter lets rmdir through: only the named syscalls are hit.
	c = allow(specs.LinuxSyscall{Names: []string{"rmdir"}, Action: specs.ActErrno})
	if r := runChild(t, c, []string{"exec " + testutil.BusyboxPath + " mkdir " + allowed}, nil); r.status.ExitStatus() != 0 {
		t.Fatalf("busybox mkdir with only rmdir refused: %v", r)
	}
	if fi, err := os.Stat(allowed); err != nil || !fi.IsDir() {
		t.Fatalf("%s not created: %v", allowed, err)
	}
}

func TestLoadDefaultErrnoAllowList(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	dir := t.TempDir()
	// Docker's allow list with mkdir taken out and a distinctive default
	// errno: busybox still runs, and mkdir gets the default action.
	c := Default(nil)
	c.DefaultErrnoRet = uptr(uint(unix.EROFS))
	for i := range c.Syscalls {
		c.Syscalls[i].Names = removeNames(c.Syscalls[i].Names, "mkdir", "mkdirat")
	}
	r := runChild(t, c, []string{"exec " + testutil.BusyboxPath + " echo alive"}, nil)
	if r.status.ExitStatus() != 0 || !strings.Contains(r.stdout, "alive") {
		t.Fatalf("busybox echo under the allow list: %v", r)
	}
	r = runChild(t, c, []string{"exec " + testutil.BusyboxPath + " mkdir " + filepath.Join(dir, "d")}, nil)
	if r.status.ExitStatus() == 0 || !strings.Contains(r.stderr, "Read-only file system") {
		t.Fatalf("busybox mkdir outside the allow list: want EROFS from defaultErrnoRet: %v", r)
	}
}

func removeNames(names []string, drop ...string) []string {
	out := names[:0:0]
	for _, n := range names {
		keep := true
		for _, d := range drop {
			keep = keep && n != d
		}
		if keep {
			out = append(out, n)
		}
	}
	return out
}

// TestLoadOperators checks every operator against mkdirat's mode argument
// (index 2), which the kernel passes through untouched by the umask.
func TestLoadOperators(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		op          specs.LinuxSeccompOperator
		value, two  uint64
		refused     []uint32
		notRefused  []uint32
		description string
	}{
		{specs.OpEqualTo, 0o711, 0, []uint32{0o711}, []uint32{0o710, 0o712}, "EQ"},
		{specs.OpNotEqual, 0o711, 0, []uint32{0o710, 0o712}, []uint32{0o711}, "NE"},
		{specs.OpLessThan, 0o711, 0, []uint32{0o710}, []uint32{0o711, 0o712}, "LT"},
		{specs.OpLessEqual, 0o711, 0, []uint32{0o710, 0o711}, []uint32{0o712}, "LE"},
		{specs.OpGreaterThan, 0o711, 0, []uint32{0o712}, []uint32{0o710, 0o711}, "GT"},
		{specs.OpGreaterEqual, 0o711, 0, []uint32{0o711, 0o712}, []uint32{0o710}, "GE"},
		// (mode & 0o070) == 0o070: refuse group rwx.
		{specs.OpMaskedEqual, 0o070, 0o070, []uint32{0o770, 0o775}, []uint32{0o750, 0o705}, "MASKED_EQ"},
	}
	for _, tt := range tests {
		t.Run(tt.description, func(t *testing.T) {
			dir := t.TempDir()
			c := allow(specs.LinuxSyscall{
				Names: []string{"mkdirat"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EXDEV)),
				Args: []specs.LinuxSeccompArg{{Index: 2, Value: tt.value, ValueTwo: tt.two, Op: tt.op}},
			})
			var steps []string
			want := map[string]string{}
			for i, m := range append(append([]uint32{}, tt.refused...), tt.notRefused...) {
				s := "mkdirat " + filepath.Join(dir, string(rune('a'+i))) + " " + octal(uint64(m))
				steps = append(steps, s)
				want[s] = "0"
				if i < len(tt.refused) {
					want[s] = "EXDEV"
				}
			}
			r := runChild(t, c, steps, nil)
			for s, w := range want {
				if r.out[s] != w {
					t.Errorf("%s %s: %s = %q, want %q", tt.op, octal(tt.value), s, r.out[s], w)
				}
			}
			if t.Failed() {
				t.Log(r)
			}
		})
	}
}

func octal(v uint64) string { return "0" + strconv.FormatUint(v, 8) }

// TestLoadArgCombination: args on different indexes must all match (one
// rule); args on the same index are alternatives (one rule each, as runc).
func TestLoadArgCombination(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	creat := uint64(unix.O_CREAT | unix.O_WRONLY)
	c := allow(
		// openat: O_CREAT set AND mode 0600.
		specs.LinuxSyscall{Names: []string{"openat"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EXDEV)), Args: []specs.LinuxSeccompArg{
			{Index: 2, Value: unix.O_CREAT, ValueTwo: unix.O_CREAT, Op: specs.OpMaskedEqual},
			{Index: 3, Value: 0o600, Op: specs.OpEqualTo},
		}},
		// mkdirat: mode 0700 OR mode 0711.
		specs.LinuxSyscall{Names: []string{"mkdirat"}, Action: specs.ActErrno, ErrnoRet: uptr(uint(unix.EXDEV)), Args: []specs.LinuxSeccompArg{
			{Index: 2, Value: 0o700, Op: specs.OpEqualTo},
			{Index: 2, Value: 0o711, Op: specs.OpEqualTo},
		}},
	)
	want := map[string]string{
		"open " + p("f1") + " " + itoa(creat) + " 0600":         "EXDEV",
		"open " + p("f2") + " " + itoa(creat) + " 0644":         "0",
		"open " + p("f2") + " " + itoa(unix.O_RDONLY) + " 0600": "0", // exists now, no O_CREAT
		"mkdirat " + p("d1") + " 0700":                          "EXDEV",
		"mkdirat " + p("d2") + " 0711":                          "EXDEV",
		"mkdirat " + p("d3") + " 0755":                          "0",
	}
	steps := []string{
		"open " + p("f1") + " " + itoa(creat) + " 0600",
		"open " + p("f2") + " " + itoa(creat) + " 0644",
		"open " + p("f2") + " " + itoa(unix.O_RDONLY) + " 0600",
		"mkdirat " + p("d1") + " 0700",
		"mkdirat " + p("d2") + " 0711",
		"mkdirat " + p("d3") + " 0755",
	}
	r := runChild(t, c, steps, nil)
	for s, w := range want {
		if r.out[s] != w {
			t.Errorf("%s = %q, want %q", s, r.out[s], w)
		}
	}
	if t.Failed() {
		t.Log(r)
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

func TestLoadKill(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	for _, a := range []specs.LinuxSeccompAction{specs.ActKill, specs.ActKillThread, specs.ActKillProcess} {
		t.Run(string(a), func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "d")
			c := allow(specs.LinuxSyscall{Names: []string{"mkdir", "mkdirat"}, Action: a})
			r := runChild(t, c, []string{"exec " + testutil.BusyboxPath + " mkdir " + d}, nil)
			if !r.status.Signaled() || r.status.Signal() != syscall.SIGSYS {
				t.Fatalf("busybox mkdir: want killed by SIGSYS: %v", r)
			}
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				t.Fatalf("%s exists: %v", d, err)
			}
		})
	}
	// KILL_PROCESS takes down every thread of a multi-threaded Go process.
	d := filepath.Join(t.TempDir(), "d")
	c := allow(specs.LinuxSyscall{Names: []string{"mkdirat"}, Action: specs.ActKillProcess})
	r := runChild(t, c, []string{"mkdirat " + d + " 0755"}, nil)
	if !r.status.Signaled() || r.status.Signal() != syscall.SIGSYS || r.out["mkdirat "+d+" 0755"] != "" {
		t.Fatalf("Go child: want killed by SIGSYS before reporting: %v", r)
	}
}

// TestLoadTrap: SCMP_ACT_TRAP delivers SIGSYS (si_code SYS_SECCOMP) instead
// of killing: the Go runtime's handler runs and reports it, and exits 2.
func TestLoadTrap(t *testing.T) {
	testutil.RequireRoot(t)
	d := filepath.Join(t.TempDir(), "d")
	c := allow(specs.LinuxSyscall{Names: []string{"mkdirat"}, Action: specs.ActTrap})
	r := runChild(t, c, []string{"mkdirat " + d + " 0755"}, nil)
	if r.status.Signaled() || r.status.ExitStatus() != 2 ||
		!strings.Contains(r.stderr, "SIGSYS: bad system call") || !strings.Contains(r.stderr, "sigcode=1") {
		t.Fatalf("want the runtime's SIGSYS handler to report a seccomp trap: %v", r)
	}
	if _, err := os.Stat(d); !os.IsNotExist(err) {
		t.Fatalf("%s exists: %v", d, err)
	}
}

func TestLoadTraceLog(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	traced, logged := filepath.Join(dir, "trace"), filepath.Join(dir, "log")
	c := allow(
		// With no tracer attached the kernel answers SECCOMP_RET_TRACE
		// with ENOSYS.
		specs.LinuxSyscall{Names: []string{"mkdirat"}, Action: specs.ActTrace, ErrnoRet: uptr(5), Args: []specs.LinuxSeccompArg{{Index: 2, Value: 0o750, Op: specs.OpEqualTo}}},
		specs.LinuxSyscall{Names: []string{"mkdirat"}, Action: specs.ActLog, Args: []specs.LinuxSeccompArg{{Index: 2, Value: 0o700, Op: specs.OpEqualTo}}},
	)
	c.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, FlagTsync, specs.LinuxSeccompFlagSpecAllow}
	steps := []string{"mkdirat " + traced + " 0750", "mkdirat " + logged + " 0700", "threads"}
	r := runChild(t, c, steps, nil)
	if r.out[steps[0]] != "ENOSYS" {
		t.Errorf("trace without tracer: got %q, want ENOSYS", r.out[steps[0]])
	}
	if r.out[steps[1]] != "0" {
		t.Errorf("log: got %q, want success", r.out[steps[1]])
	}
	if r.out["filtered"] == "0" || r.out["filtered"] != r.out["threads"] {
		t.Errorf("with flags LOG, TSYNC, SPEC_ALLOW: %s of %s threads filtered", r.out["filtered"], r.out["threads"])
	}
	for p, want := range map[string]bool{traced: false, logged: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", p, err == nil, want)
		}
	}
	if t.Failed() {
		t.Log(r)
	}
}

// TestLoadAllThreads: TSYNC puts every thread of the Go process under the
// filter, and Load leaves no_new_privs alone.
func TestLoadAllThreads(t *testing.T) {
	testutil.RequireRoot(t)
	c := allow(specs.LinuxSyscall{Names: []string{"acct"}, Action: specs.ActErrno})
	r := runChild(t, c, []string{"threads"}, nil)
	if r.out["threads"] == "" || r.out["threads"] != r.out["filtered"] {
		t.Fatalf("threads %q, in filter mode %q: %v", r.out["threads"], r.out["filtered"], r)
	}
	if n, _ := strconv.Atoi(r.out["threads"]); n < 5 {
		t.Fatalf("only %d threads: the test did not exercise TSYNC: %v", n, r)
	}
	if r.out["nnp"] != "0" {
		t.Fatalf("%s threads have no_new_privs after Load: %v", r.out["nnp"], r)
	}
	if r.out["listener"] != "-1" {
		t.Fatalf("listener fd %q without SCMP_ACT_NOTIFY", r.out["listener"])
	}
}
