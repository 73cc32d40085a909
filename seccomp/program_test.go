package seccomp

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestCacheable(t *testing.T) {
	tests := []struct {
		name string
		c    *specs.LinuxSeccomp
		want bool
	}{
		{"nil", nil, false},
		{"Docker's default", Default(nil), true},
		{"allow list with errno", allow(specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActErrno}), true},
		{"log and spec_allow flags", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow, FlagTsync}}, true},
		{"notify", allow(specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActNotify}), false},
		{"wait killable recv", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}}, false},
	}
	for _, tt := range tests {
		if got := Cacheable(tt.c); got != tt.want {
			t.Errorf("%s: Cacheable = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestProgram(t *testing.T) {
	f, err := Compile(Default(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	prog, err := f.Program()
	if err != nil {
		t.Fatal(err)
	}
	if len(prog) == 0 || len(prog)%bpfInsnSize != 0 {
		t.Fatalf("program of %d bytes is not whole instructions", len(prog))
	}
	// The same configuration compiles to the same program: what makes a
	// cache keyed by the configuration sound.
	g, err := Compile(Default(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	again, _ := g.Program()
	if !bytes.Equal(prog, again) {
		t.Fatal("two compilations of one profile give different programs")
	}
	f.Close()
	if _, err := f.Program(); err == nil {
		t.Fatal("Program of a closed filter: no error")
	}
}

func TestLoadProgramRefuses(t *testing.T) {
	// Each is refused before the kernel is asked, so the test process
	// keeps no filter.
	tests := []struct {
		name  string
		prog  []byte
		flags []specs.LinuxSeccompFlag
		err   string
	}{
		{"empty", nil, nil, "not 1 to 4096"},
		{"partial instruction", make([]byte, 12), nil, "not 1 to 4096"},
		{"too long", make([]byte, 8*4097), nil, "not 1 to 4096"},
		{"flag it cannot pass", make([]byte, 8), []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}, "cannot be used with a precompiled program"},
	}
	for _, tt := range tests {
		err := LoadProgram(tt.prog, tt.flags)
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: LoadProgram = %v, want an error containing %q", tt.name, err, tt.err)
		}
	}
}

// TestLoadProgramAsCompiled: the raw program, loaded as a runtime given the
// annotation loads it, refuses and allows what libseccomp's load does, on
// every thread, without setting no_new_privs.
func TestLoadProgramAsCompiled(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	dir := t.TempDir()
	c := Default(nil)
	c.DefaultErrnoRet = uptr(uint(unix.EROFS))
	for i := range c.Syscalls {
		c.Syscalls[i].Names = removeNames(c.Syscalls[i].Names, "mkdir", "mkdirat")
	}
	for _, raw := range []bool{false, true} {
		r := runChildMode(t, c, []string{"exec " + testutil.BusyboxPath + " echo alive"}, nil, raw)
		if r.status.ExitStatus() != 0 || !strings.Contains(r.stdout, "alive") {
			t.Fatalf("raw=%v: busybox echo under the allow list: %v", raw, r)
		}
		r = runChildMode(t, c, []string{"exec " + testutil.BusyboxPath + " mkdir " + filepath.Join(dir, "d")}, nil, raw)
		if r.status.ExitStatus() == 0 || !strings.Contains(r.stderr, "Read-only file system") {
			t.Fatalf("raw=%v: busybox mkdir outside the allow list: want EROFS: %v", raw, r)
		}
	}
	a := allow(specs.LinuxSyscall{Names: []string{"acct"}, Action: specs.ActErrno})
	r := runChildMode(t, a, []string{"threads"}, nil, true)
	if r.out["threads"] == "" || r.out["threads"] != r.out["filtered"] {
		t.Fatalf("threads %q, in filter mode %q: %v", r.out["threads"], r.out["filtered"], r)
	}
	if n, _ := strconv.Atoi(r.out["threads"]); n < 5 {
		t.Fatalf("only %d threads: the test did not exercise TSYNC: %v", n, r)
	}
	if r.out["nnp"] != "0" {
		t.Fatalf("%s threads have no_new_privs after LoadProgram: %v", r.out["nnp"], r)
	}
}

func TestCache(t *testing.T) {
	dir := t.TempDir()
	k := Cache{Dir: filepath.Join(dir, "cache"), Max: 2}
	c := Default(nil)
	prog, err := k.Program(c)
	if err != nil {
		t.Fatal(err)
	}
	files := func() []string {
		m, _ := filepath.Glob(filepath.Join(k.Dir, "*"))
		return m
	}
	if fs := files(); len(fs) != 1 || !strings.HasSuffix(fs[0], ".bpf") {
		t.Fatalf("cache holds %v, want one program", fs)
	}
	kept, _ := os.ReadFile(files()[0])
	if !bytes.Equal(kept, prog) {
		t.Fatal("the kept program differs from the one returned")
	}

	// A hit is read, not compiled: a valid program put in the file's
	// place comes back as it is.
	stand := bytes.Repeat([]byte{6, 0, 0, 0, 0, 0, 0xff, 0x7f}, 3) // RET ALLOW x3
	if err := os.WriteFile(files()[0], stand, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := k.Program(c); err != nil || !bytes.Equal(got, stand) {
		t.Fatalf("cache hit = %x, %v; want the kept program", got, err)
	}

	// A file that is not a program is compiled anew and replaced.
	if err := os.WriteFile(files()[0], []byte("torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := k.Program(c); err != nil || !bytes.Equal(got, prog) {
		t.Fatalf("after a torn file: %d bytes, %v; want the compiled program", len(got), err)
	}
	if kept, _ := os.ReadFile(files()[0]); !bytes.Equal(kept, prog) {
		t.Fatal("the torn file was not replaced")
	}

	// Other configurations get programs of their own; beyond Max the
	// oldest go.
	for i, extra := range []string{"mkdir", "rmdir"} {
		time.Sleep(10 * time.Millisecond) // distinct modification times
		if _, err := k.Program(allow(specs.LinuxSyscall{Names: []string{extra}, Action: specs.ActErrno})); err != nil {
			t.Fatal(err)
		}
		if n := len(files()); n != min(i+2, 2) {
			t.Fatalf("after %d configurations the cache holds %d programs, want %d", i+2, n, min(i+2, 2))
		}
	}
	key, _ := cacheKey(c)
	if _, err := os.Stat(filepath.Join(k.Dir, key+".bpf")); err == nil {
		t.Fatal("the oldest program was kept beyond Max")
	}

	if _, err := k.Program(allow(specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActNotify})); err == nil {
		t.Fatal("a notify configuration was cached")
	}
}
