package seccomp

// A seccomp filter cannot be removed once loaded, so every test that loads
// one re-executes the test binary: TestMain sees childEnv, compiles and loads
// the profile passed in profileEnv, runs the steps in stepsEnv and prints one
// "step=result" line per step, where result is "0" or an errno name.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	childEnv   = "BERTH_SECCOMP_TEST_CHILD"
	profileEnv = "BERTH_SECCOMP_TEST_PROFILE"
	stepsEnv   = "BERTH_SECCOMP_TEST_STEPS"
	// rawEnv: load the compiled program with LoadProgram instead of
	// through libseccomp, as a runtime given BPFAnnotation does.
	rawEnv = "BERTH_SECCOMP_TEST_RAW"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// childResult is what a child printed and how it ended.
type childResult struct {
	out    map[string]string
	stdout string
	stderr string
	status syscall.WaitStatus
	pid    int
}

// runChild loads c in a fresh copy of the test binary and runs steps there;
// started, if set, gets the child's pid as soon as it runs.
func runChild(t *testing.T, c *specs.LinuxSeccomp, steps []string, started func(pid int)) childResult {
	t.Helper()
	return runChildMode(t, c, steps, started, false)
}

// runChildMode is runChild; raw loads the filter as a raw program.
func runChildMode(t *testing.T, c *specs.LinuxSeccomp, steps []string, started func(pid int), raw bool) childResult {
	t.Helper()
	prof, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	st, err := json.Marshal(steps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	// The race runtime otherwise sleeps a second at exit.
	cmd.Env = append(os.Environ(), childEnv+"=1", profileEnv+"="+string(prof), stepsEnv+"="+string(st), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	if raw {
		cmd.Env = append(cmd.Env, rawEnv+"=1")
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if started != nil {
		started(cmd.Process.Pid)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("child: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("child timed out; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	r := childResult{
		out:    map[string]string{},
		stdout: stdout.String(),
		stderr: stderr.String(),
		status: cmd.ProcessState.Sys().(syscall.WaitStatus),
		pid:    cmd.Process.Pid,
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			r.out[k] = v
		}
	}
	return r
}

func (r childResult) String() string {
	return fmt.Sprintf("status %v; stdout:\n%s\nstderr:\n%s", r.status, r.stdout, r.stderr)
}

func child() int {
	var c specs.LinuxSeccomp
	if err := json.Unmarshal([]byte(os.Getenv(profileEnv)), &c); err != nil {
		fmt.Fprintln(os.Stderr, "child: profile:", err)
		return 100
	}
	var steps []string
	if err := json.Unmarshal([]byte(os.Getenv(stepsEnv)), &steps); err != nil {
		fmt.Fprintln(os.Stderr, "child: steps:", err)
		return 100
	}
	pinThreads(4)

	f, err := Compile(&c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: compile:", err)
		return 101
	}
	var fd int
	if os.Getenv(rawEnv) != "" {
		var prog []byte
		if prog, err = f.Program(); err == nil {
			fd, err = -1, LoadProgram(prog, c.Flags)
		}
	} else {
		fd, err = f.Load()
	}
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: load:", err)
		return 102
	}
	fmt.Printf("listener=%d\n", fd)
	for _, s := range steps {
		if code, done := step(s, fd); done {
			return code
		}
	}
	return 0
}

func errnoName(err error) string {
	if err == nil {
		return "0"
	}
	var e unix.Errno
	if errors.As(err, &e) {
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
		return strconv.Itoa(int(e))
	}
	return err.Error()
}

func rawErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// step runs one "verb arg..." step; done means the child must exit with code.
func step(s string, listener int) (code int, done bool) {
	w := strings.Fields(s)
	report := func(err error) { fmt.Printf("%s=%s\n", s, errnoName(err)) }
	num := func(i int) uint64 {
		n, err := strconv.ParseUint(w[i], 0, 64)
		if err != nil {
			panic(err)
		}
		return n
	}
	switch w[0] {
	case "mkdirat": // mkdirat PATH MODE
		report(unix.Mkdirat(unix.AT_FDCWD, w[1], uint32(num(2))))
	case "open": // open PATH FLAGS MODE
		fd, err := unix.Openat(unix.AT_FDCWD, w[1], int(num(2))|unix.O_CLOEXEC, uint32(num(3)))
		if err == nil {
			unix.Close(fd)
		}
		report(err)
	case "unshare":
		report(unix.Unshare(0))
	case "mount":
		report(unix.Mount("none", "/nonexistent-berth-seccomp-test", "tmpfs", 0, ""))
	case "kcmp":
		pid := uintptr(os.Getpid())
		_, _, e := unix.Syscall6(unix.SYS_KCMP, pid, pid, 0 /* KCMP_FILE */, 0, 0, 0)
		report(rawErr(e))
	case "personality": // personality PERSONA
		_, _, e := unix.Syscall(unix.SYS_PERSONALITY, uintptr(num(1)), 0, 0)
		report(rawErr(e))
	case "clone3":
		// A NULL clone_args makes the kernel answer EFAULT; the filter
		// answers first if it refuses clone3.
		_, _, e := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
		report(rawErr(e))
	case "threads":
		threads()
	case "send": // send SOCKET: hand the listener to the agent at SOCKET
		st := &specs.ContainerProcessState{
			Pid:      os.Getpid(),
			Metadata: "berth-test-metadata",
			State:    specs.State{ID: "berth-seccomp-test", Status: specs.StateCreating, Pid: os.Getpid(), Bundle: "/nonexistent"},
		}
		report(SendListener(w[1], st, listener))
		unix.Close(listener)
	case "exec": // exec ARGV...: replace the child, keeping the filter
		err := unix.Exec(w[1], w[1:], os.Environ())
		fmt.Fprintln(os.Stderr, "child: exec:", err)
		return 103, true
	default:
		fmt.Fprintln(os.Stderr, "child: unknown step", s)
		return 104, true
	}
	return 0, false
}

// pinThreads parks goroutines on OS threads of their own before the filter
// is loaded, so that TSYNC has threads other than the caller's to reach.
func pinThreads(n int) {
	ready := make(chan struct{})
	for range n {
		go func() {
			runtime.LockOSThread()
			var fds [2]int
			if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
				panic(err)
			}
			ready <- struct{}{}
			var b [1]byte
			unix.Read(fds[0], b[:]) // blocks until the child exits
		}()
	}
	for range n {
		<-ready
	}
}

// threads prints how many threads the child has and how many of them are in
// seccomp filter mode or have no_new_privs.
func threads() {
	tasks, _ := filepath.Glob("/proc/self/task/*/status")
	filtered, nnp := 0, 0
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, ":")
			v = strings.TrimSpace(v)
			switch {
			case k == "Seccomp" && v == "2":
				filtered++
			case k == "NoNewPrivs" && v == "1":
				nnp++
			}
		}
	}
	fmt.Printf("threads=%d\nfiltered=%d\nnnp=%d\n", len(tasks), filtered, nnp)
}
