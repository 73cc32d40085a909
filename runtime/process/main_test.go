package process

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The integration tests re-exec the test binary: in the child, TestMain
// applies a spec with Prepare and Exec, since both change the process for
// good. The child execs busybox (or the test binary again, as a reporter of
// what only a syscall can read back) and the parent checks what it prints.
const (
	envChild  = "BERTH_PROCESS_TEST_CHILD"  // path of a childConfig JSON file
	envReport = "BERTH_PROCESS_TEST_REPORT" // print thread attributes and exit
)

// childConfig is what the parent asks the child to do.
type childConfig struct {
	Spec *specs.Spec
	Init bool
	// RecordSeccomp installs a LoadSeccomp callback that prints the
	// credentials it runs with instead of loading a filter.
	RecordSeccomp bool
	// LeakFD and KeepFD, when non-zero, are /dev/null opened without
	// O_CLOEXEC at those numbers; KeepFD is passed to Exec as kept.
	LeakFD, KeepFD int
	// EscapeRoot simulates CVE-2024-21626: the child holds a directory fd
	// from outside EscapeRoot, chroots into it (with /proc mounted in a
	// private mount namespace), and process.cwd names /proc/self/fd/N.
	EscapeRoot string
}

func TestMain(m *testing.M) {
	if os.Getenv(envReport) != "" {
		report()
		os.Exit(0)
	}
	if path := os.Getenv(envChild); path != "" {
		childMain(path)
		os.Exit(99)
	}
	os.Exit(m.Run())
}

func childFail(stage string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", stage, err)
	if stage == "PREPARE" {
		os.Exit(3)
	}
	os.Exit(4)
}

func childMain(path string) {
	runtime.LockOSThread()
	b, err := os.ReadFile(path)
	if err != nil {
		childFail("SETUP", err)
	}
	var cfg childConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		childFail("SETUP", err)
	}
	var keep []int
	for _, fd := range []int{cfg.LeakFD, cfg.KeepFD} {
		if fd == 0 {
			continue
		}
		nfd, err := unix.Open("/dev/null", unix.O_RDONLY, 0) // no O_CLOEXEC on purpose
		if err == nil {
			err = unix.Dup2(nfd, fd)
		}
		if err != nil {
			childFail("SETUP", err)
		}
		unix.Close(nfd)
	}
	if cfg.KeepFD != 0 {
		keep = append(keep, cfg.KeepFD)
	}
	if cfg.EscapeRoot != "" {
		if err := escapeSetup(cfg); err != nil {
			childFail("SETUP", err)
		}
	}
	var opts Options
	opts.Init = cfg.Init
	if cfg.RecordSeccomp {
		opts.LoadSeccomp = func() error {
			st, _ := os.ReadFile("/proc/thread-self/status")
			var capEff, nnp string
			for _, l := range strings.Split(string(st), "\n") {
				if v, ok := strings.CutPrefix(l, "CapEff:\t"); ok {
					capEff = v
				}
				if v, ok := strings.CutPrefix(l, "NoNewPrivs:\t"); ok {
					nnp = v
				}
			}
			fmt.Fprintf(os.Stderr, "SECCOMP euid=%d capeff=%s nnp=%s\n", unix.Geteuid(), capEff, nnp)
			return nil
		}
	}
	pr, err := Prepare(cfg.Spec, cfg.Spec.Process, opts)
	if err != nil {
		childFail("PREPARE", err)
	}
	childFail("EXEC", pr.Exec(keep))
}

// escapeSetup opens a directory outside cfg.EscapeRoot at the fd number
// process.cwd names and chroots into EscapeRoot, as a runtime that leaked a
// host directory fd into its init would leave things.
func escapeSetup(cfg childConfig) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	if err := unix.Mount("proc", filepath.Join(cfg.EscapeRoot, "proc"), "proc", 0, ""); err != nil {
		return err
	}
	var n int
	if _, err := fmt.Sscanf(cfg.Spec.Process.Cwd, "/proc/self/fd/%d", &n); err != nil {
		return err
	}
	fd, err := unix.Open(filepath.Dir(cfg.EscapeRoot), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	if err := unix.Dup2(fd, n); err != nil {
		return err
	}
	unix.Close(fd)
	if err := unix.Chdir(cfg.EscapeRoot); err != nil {
		return err
	}
	return unix.Chroot(".")
}

// report prints the attributes only a syscall reads back, one key=value a
// line, for the parent to check.
func report() {
	attr, err := unix.SchedGetAttr(0, 0)
	if err == nil {
		fmt.Printf("sched.policy=%d\nsched.nice=%d\nsched.priority=%d\nsched.flags=%d\n", attr.Policy, attr.Nice, attr.Priority, attr.Flags)
	}
	prio, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, 0, 0)
	if e == 0 {
		fmt.Printf("ioprio.class=%d\nioprio.level=%d\n", prio>>ioprioClassShift, prio&0xff)
	}
	pers, _, _ := unix.Syscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
	fmt.Printf("personality=%#x\n", pers)
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		fmt.Printf("machine=%s\n", unix.ByteSliceToString(uts.Machine[:]))
	}
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) == nil {
		var cpus []string
		for c := 0; c < len(set)*64; c++ {
			if set.IsSet(c) {
				cpus = append(cpus, fmt.Sprint(c))
			}
		}
		fmt.Printf("affinity=%s\n", strings.Join(cpus, ","))
	}
}

// runChild runs cfg in a child made with the given clone flags and returns
// what it printed and its exit code.
func runChild(t *testing.T, cfg childConfig, cloneflags uintptr) (stdout, stderr string, code int) {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "child.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-test.run=^$")
	cmd.Env = []string{envChild + "=" + path}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags, Pdeathsig: syscall.SIGKILL}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if cmd.ProcessState == nil || (err != nil && cmd.ProcessState.ExitCode() < 0) {
		t.Fatalf("child: %v\nstderr: %s", err, errb.String())
	}
	code = cmd.ProcessState.ExitCode()
	return out.String(), errb.String(), code
}
