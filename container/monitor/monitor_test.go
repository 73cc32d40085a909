package monitor

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/container/logs"
	"golang.org/x/sys/unix"
)

// The monitor makes its process a child subreaper and waits for the
// container's init, so these tests run it in a child process: the test
// binary again, with helperEnv set. Its runtime is fakeRuntime, a shell
// script that plays runc: `create` starts "$d/init.sh" in the background
// (held until `start` touches "$d/started") with the stdio it was given and
// exits, so that init is reparented to the monitor as it is under a real
// runtime. For a terminal, create hands over to the test binary again
// (helperEnv=pty), which makes a pty and sends its master to the console
// socket. No root is needed.
const (
	helperEnv    = "BERTH_MONITOR_TEST_HELPER"
	helperConfig = "BERTH_MONITOR_TEST_CONFIG"
	helperBin    = "BERTH_MONITOR_TEST_BIN"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "run":
		os.Exit(helperRun())
	case "pty":
		os.Exit(helperPty(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helperRun is the monitor process: berth-monitor's main.
func helperRun() int {
	b, err := os.ReadFile(os.Getenv(helperConfig))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 100
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 100
	}
	syscall.CloseOnExec(3)
	return Run(cfg, os.NewFile(3, "sync"))
}

// helperPty is the terminal half of the fake runtime's create: console
// socket, pid file, fake runtime directory.
func helperPty(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "pty helper: want CONSOLE-SOCKET PID-FILE DIR")
		return 1
	}
	console, pidFile, dir := args[0], args[1], args[2]
	master, slave, err := openPty()
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	cmd := exec.Command("/bin/sh", "-c", initLoop, "init", dir)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	pid := []byte(strconv.Itoa(cmd.Process.Pid))
	os.WriteFile(pidFile, pid, 0o644)
	os.WriteFile(filepath.Join(dir, "init.pid"), pid, 0o644)
	conn, err := net.Dial("unix", console)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	if _, _, err := conn.(*net.UnixConn).WriteMsgUnix([]byte("pty"), unix.UnixRights(int(master.Fd())), nil); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	// Exit without waiting: init goes to the monitor, its subreaper.
	return 0
}

func openPty() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, err
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, s, nil
}

// initLoop is the container's init until `start`: then it becomes init.sh.
const initLoop = `while [ ! -e "$1/started" ]; do sleep 0.01; done; exec /bin/sh "$1/init.sh"`

const fakeRuntime = `#!/bin/sh
d='%s'
echo "$*" >> "$d/calls"
log=
while :; do
	case "$1" in
	--root|--log-format) shift 2 ;;
	--log) log=$2; shift 2 ;;
	*) break ;;
	esac
done
cmd=$1
shift
case "$cmd" in
create)
	pidfile=
	console=
	while [ $# -gt 1 ]; do
		case "$1" in
		--pid-file) pidfile=$2; shift 2 ;;
		--console-socket) console=$2; shift 2 ;;
		*) shift ;;
		esac
	done
	if [ -f "$d/create-fail" ]; then
		printf 'time="2026-01-01T00:00:00Z" level=error msg="%%s"\n' "$(cat "$d/create-fail")" >> "$log"
		exit 1
	fi
	if [ -n "$console" ]; then
		BERTH_MONITOR_TEST_HELPER=pty exec "$BERTH_MONITOR_TEST_BIN" "$console" "$pidfile" "$d"
	fi
	exec 9<&0
	/bin/sh -c '%s' init "$d" <&9 9<&- &
	echo $! > "$pidfile"
	echo $! > "$d/init.pid"
	;;
start)
	if [ -f "$d/start-fail" ]; then
		echo "Error: $(cat "$d/start-fail")" >&2
		exit 1
	fi
	touch "$d/started"
	# A runtime whose start returns after a short container is done.
	if [ -f "$d/start-sleep" ]; then sleep "$(cat "$d/start-sleep")"; fi
	;;
delete)
	kill -9 "$(cat "$d/init.pid")" 2>/dev/null
	touch "$d/deleted"
	;;
*)
	echo "Error: fake runtime: no command $cmd" >&2
	exit 1
	;;
esac
`

type harness struct {
	t      *testing.T
	dir    string // the fake runtime's
	cfg    Config
	cmd    *exec.Cmd
	syncCh chan Sync // closed at the sync pipe's end
	exited chan struct{}
	code   int
}

// newHarness prepares a monitor for one container whose init runs
// initScript; adjust h.cfg before h.start.
func newHarness(t *testing.T, initScript string) *harness {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh for the fake runtime:", err)
	}
	if _, err := unix.PidfdOpen(os.Getpid(), 0); err != nil {
		t.Skip("no pidfd_open (Linux 5.3+), which the monitor waits with:", err)
	}
	dir := t.TempDir()
	rt := filepath.Join(dir, "fake-runtime")
	if err := os.WriteFile(rt, []byte(fmt.Sprintf(fakeRuntime, dir, initLoop)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "init.sh"), []byte(initScript), 0o644); err != nil {
		t.Fatal(err)
	}
	// A run directory deeper than a socket address may be long, as a
	// --runroot can make it.
	runDir := deepDir(t)
	h := &harness{t: t, dir: dir, syncCh: make(chan Sync, 8), exited: make(chan struct{})}
	h.cfg = Config{
		ID: "ctr1", Runtime: rt, RuntimeRoot: filepath.Join(dir, "root"), Bundle: filepath.Join(dir, "bundle"),
		RunDir: runDir, LogPath: filepath.Join(runDir, "ctr1-json.log"),
		ExitCommand: []string{"/bin/sh", "-c", `touch "$0"`, filepath.Join(dir, "cleaned-up")},
	}
	return h
}

func (h *harness) start() {
	t := h.t
	t.Helper()
	b, err := json.Marshal(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(h.dir, "monitor.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(h.dir, "tmp")
	os.Mkdir(tmp, 0o700)
	h.cmd = exec.Command(exe)
	h.cmd.Env = append(os.Environ(), helperEnv+"=run", helperConfig+"="+cfgPath, helperBin+"="+exe, "TMPDIR="+tmp,
		// Under -race, a process sleeps a second at exit unless told not to.
		"GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	h.cmd.ExtraFiles = []*os.File{w}
	var stderr strings.Builder
	h.cmd.Stderr = &stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go func() {
		defer r.Close()
		defer close(h.syncCh)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var s Sync
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				t.Errorf("sync pipe: %q: %v", sc.Text(), err)
				continue
			}
			h.syncCh <- s
		}
	}()
	go func() {
		h.cmd.Wait()
		h.code = h.cmd.ProcessState.ExitCode()
		if s := stderr.String(); s != "" {
			t.Logf("monitor stderr: %s", s)
		}
		close(h.exited)
	}()
	t.Cleanup(func() {
		// Nothing may outlive a test: a monitor still running (a test that
		// failed) is killed, and the init it watched. A monitor that ended
		// saw its init end first; its pid may be another's by now.
		select {
		case <-h.exited:
		default:
			h.cmd.Process.Kill()
			<-h.exited
			if b, err := os.ReadFile(filepath.Join(h.dir, "init.pid")); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
					unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
	})
}

// next returns the next sync event, or false at the pipe's end.
func (h *harness) next() (Sync, bool) {
	h.t.Helper()
	select {
	case s, ok := <-h.syncCh:
		return s, ok
	case <-time.After(20 * time.Second):
		h.t.Fatal("no word from the monitor on its sync pipe in 20 s")
		return Sync{}, false
	}
}

func (h *harness) wantSync(event string) Sync {
	h.t.Helper()
	s, ok := h.next()
	if !ok {
		h.t.Fatalf("sync pipe ended, want %q", event)
	}
	if s.Event != event {
		h.t.Fatalf("sync %+v, want %q", s, event)
	}
	return s
}

func (h *harness) wantSyncEnd() {
	h.t.Helper()
	if s, ok := h.next(); ok {
		h.t.Fatalf("sync %+v, want the pipe closed", s)
	}
}

// wait waits for the monitor process to end and returns its exit code.
func (h *harness) wait() int {
	h.t.Helper()
	select {
	case <-h.exited:
		return h.code
	case <-time.After(20 * time.Second):
		h.t.Fatal("the monitor did not exit in 20 s")
		return -1
	}
}

func (h *harness) exists(name string) bool {
	_, err := os.Stat(filepath.Join(h.dir, name))
	return err == nil
}

func (h *harness) calls() []string {
	b, _ := os.ReadFile(filepath.Join(h.dir, "calls"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (h *harness) initPid() int {
	b, err := os.ReadFile(filepath.Join(h.dir, "init.pid"))
	if err != nil {
		h.t.Fatalf("the fake runtime started no init: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func (h *harness) exit() *Exit {
	h.t.Helper()
	e, err := ReadExit(h.cfg.RunDir)
	if err != nil {
		h.t.Fatalf("ReadExit: %v", err)
	}
	if time.Since(e.FinishedAt) > time.Minute || e.FinishedAt.After(time.Now()) || e.FinishedAt.Location() != time.UTC {
		h.t.Errorf("FinishedAt %v: not just now, in UTC", e.FinishedAt)
	}
	return e
}

func (h *harness) dial() *Client {
	h.t.Helper()
	c, err := Dial(h.cfg.RunDir)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

type received struct {
	code   int
	err    error
	pids   []int
	yours  bool // CleanupIsYours
	stdout *lockedBuffer
	stderr *lockedBuffer
}

// pidsSeen collects what Receive reports started, for a test to look at
// while Receive goes on.
type pidsSeen struct {
	mu   sync.Mutex
	pids []int
}

func (p *pidsSeen) add(pid int) {
	p.mu.Lock()
	p.pids = append(p.pids, pid)
	p.mu.Unlock()
}

func (p *pidsSeen) get() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.pids...)
}

func receive(c *Client) (chan received, *lockedBuffer) {
	ch, out, _ := receivePids(c)
	return ch, out
}

func receivePids(c *Client) (chan received, *lockedBuffer, *pidsSeen) {
	ch := make(chan received, 1)
	r := received{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}}
	seen := &pidsSeen{}
	go func() {
		r.code, r.err = c.Receive(r.stdout, r.stderr, seen.add)
		r.pids = seen.get()
		r.yours = c.CleanupIsYours()
		ch <- r
	}()
	return ch, r.stdout, seen
}

// eventually waits for cond, failing the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitReceived(t *testing.T, ch chan received) received {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("Receive did not return in 20 s")
		return received{}
	}
}

func readLog(t *testing.T, path string) (stdout, stderr string) {
	t.Helper()
	err := logs.Read(path, 1, logs.ReadOptions{Tail: -1}, func(e logs.Entry) error {
		switch e.Stream {
		case "stdout":
			stdout += e.Log
		case "stderr":
			stderr += e.Log
		default:
			t.Errorf("log entry of stream %q", e.Stream)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return stdout, stderr
}

func TestRunDetached(t *testing.T) {
	h := newHarness(t, "echo out; echo err >&2; exit 3\n")
	h.start()
	created := h.wantSync("created")
	if created.Pid <= 0 || created.Pid != h.initPid() {
		t.Fatalf("created with pid %d, the runtime's init is %d", created.Pid, h.initPid())
	}
	if started := h.wantSync("started"); started.Pid != created.Pid {
		t.Fatalf("started with pid %d, created %d", started.Pid, created.Pid)
	}
	h.wantSyncEnd()
	if code := h.wait(); code != 0 {
		t.Fatalf("monitor exit code %d", code)
	}
	if e := h.exit(); e.Code != 3 || e.Signal != 0 {
		t.Fatalf("exit.json %+v, want code 3, no signal", *e)
	}
	if out, errOut := readLog(t, h.cfg.LogPath); out != "out\n" || errOut != "err\n" {
		t.Fatalf("log: stdout %q stderr %q", out, errOut)
	}
	if !h.exists("cleaned-up") {
		t.Error("the exit command did not run")
	}
	calls := h.calls()
	wantCreate := fmt.Sprintf("create --bundle %s --pid-file %s ctr1", h.cfg.Bundle, filepath.Join(h.cfg.RunDir, "init.pid"))
	if len(calls) != 2 || !strings.HasPrefix(calls[0], "--root "+h.cfg.RuntimeRoot+" --log ") || !strings.HasSuffix(calls[0], wantCreate) ||
		calls[1] != "--root "+h.cfg.RuntimeRoot+" start ctr1" {
		t.Fatalf("runtime calls %q, want create (%s) and start", calls, wantCreate)
	}
	if _, err := os.Lstat(filepath.Join(h.cfg.RunDir, "attach.sock")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("attach.sock left behind: %v", err)
	}
}

func TestRunWithoutLog(t *testing.T) {
	h := newHarness(t, "echo not logged; exit 0\n")
	h.cfg.LogPath = ""
	h.cfg.ExitCommand = nil
	h.start()
	h.wantSync("created")
	h.wantSync("started")
	h.wait()
	if e := h.exit(); e.Code != 0 {
		t.Fatalf("exit.json %+v", *e)
	}
	ents, _ := os.ReadDir(h.cfg.RunDir)
	for _, e := range ents {
		if strings.Contains(e.Name(), "log") {
			t.Errorf("a log without a LogPath: %s", e.Name())
		}
	}
}

func TestRunAttached(t *testing.T) {
	h := newHarness(t, "echo hello from init; echo oops >&2; exit 42\n")
	h.cfg.WaitStart = true
	h.start()
	created := h.wantSync("created")
	// Attached: the CLI is told once the container is created, and the
	// monitor starts it only when the client asks.
	h.wantSyncEnd()
	time.Sleep(50 * time.Millisecond)
	if h.exists("started") {
		t.Fatal("the monitor started the container before the client asked")
	}
	c := h.dial()
	ch, _ := receive(c)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	r := waitReceived(t, ch)
	if r.err != nil || r.code != 42 {
		t.Fatalf("Receive = %d, %v; want 42", r.code, r.err)
	}
	// (The started answer may be lost for a container this short: see
	// TestRunStartedAnswerOfAShortContainer.)
	if len(r.pids) > 1 || (len(r.pids) == 1 && r.pids[0] != created.Pid) {
		t.Errorf("started with %v, want [%d]", r.pids, created.Pid)
	}
	if r.yours {
		t.Error("the cleanup was handed to a client that did not ask")
	}
	if r.stdout.String() != "hello from init\n" || r.stderr.String() != "oops\n" {
		t.Errorf("stdout %q stderr %q", r.stdout.String(), r.stderr.String())
	}
	// The exit frame comes once the container is cleaned up.
	if !h.exists("cleaned-up") {
		t.Error("exit frame before the exit command ran")
	}
	if e := h.exit(); e.Code != 42 {
		t.Errorf("exit.json %+v", *e)
	}
	if out, _ := readLog(t, h.cfg.LogPath); out != "hello from init\n" {
		t.Errorf("log stdout %q", out)
	}
	h.wait()
}

func TestRunTwoClients(t *testing.T) {
	h := newHarness(t, "exec cat\n")
	h.cfg.WaitStart, h.cfg.Stdin, h.cfg.StdinOnce = true, true, true
	h.start()
	created := h.wantSync("created")
	c1, c2 := h.dial(), h.dial()
	ch1, _ := receive(c1)
	ch2, _, seen := receivePids(c2)
	// Start twice: the container starts once, and each Start is answered,
	// to the client that asked.
	c2.Start()
	c2.Start()
	eventually(t, "two started answers", func() bool { return len(seen.get()) == 2 })
	if got := seen.get(); got[0] != created.Pid || got[1] != created.Pid {
		t.Errorf("started %v, want the init's pid %d twice", got, created.Pid)
	}
	// Output goes to every client.
	c2.SendStdin(strings.NewReader("for both\n"))
	for i, ch := range []chan received{ch1, ch2} {
		r := waitReceived(t, ch)
		if r.err != nil || r.code != 0 || r.stdout.String() != "for both\n" {
			t.Errorf("client %d: code %d, %v, stdout %q", i+1, r.code, r.err, r.stdout.String())
		}
		if want := 2 * i; len(r.pids) != want {
			t.Errorf("client %d: started %v, want %d answers", i+1, r.pids, want)
		}
	}
	n := 0
	for _, c := range h.calls() {
		if strings.Contains(c, " start ") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("runtime start ran %d times: %q", n, h.calls())
	}
	h.wait()
}

func TestRunStdinOnce(t *testing.T) {
	h := newHarness(t, "cat; echo stdin ended\n")
	h.cfg.WaitStart, h.cfg.Stdin, h.cfg.StdinOnce = true, true, true
	h.start()
	h.wantSync("created")
	c := h.dial()
	ch, _ := receive(c)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.SendStdin(strings.NewReader("line 1\nline 2\n")); err != nil {
		t.Fatal(err)
	}
	r := waitReceived(t, ch)
	if r.err != nil || r.code != 0 {
		t.Fatalf("Receive = %d, %v", r.code, r.err)
	}
	if want := "line 1\nline 2\nstdin ended\n"; r.stdout.String() != want {
		t.Fatalf("stdout %q, want %q", r.stdout.String(), want)
	}
	h.wait()
}

func TestRunStdinStaysOpenAndSignal(t *testing.T) {
	// Without StdinOnce a client's EOF leaves the container's stdin open
	// (another client may attach); a signal frame reaches the init.
	h := newHarness(t, "exec cat\n")
	h.cfg.WaitStart, h.cfg.Stdin = true, true
	h.start()
	created := h.wantSync("created")
	c := h.dial()
	ch, stdout := receive(c)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.SendStdin(strings.NewReader("echoed\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for stdout.String() != "echoed\n" {
		if time.Now().After(deadline) {
			t.Fatalf("stdout %q, want the input echoed", stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	select {
	case r := <-ch:
		t.Fatalf("the container ended at the client's EOF: %d, %v", r.code, r.err)
	default:
	}
	if unix.Kill(created.Pid, 0) != nil {
		t.Fatal("init is gone after the client's EOF")
	}
	if err := c.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := waitReceived(t, ch)
	if r.err != nil || r.code != 143 {
		t.Fatalf("Receive = %d, %v; want 143 (128+SIGTERM)", r.code, r.err)
	}
	if len(r.pids) != 1 || r.pids[0] != created.Pid {
		t.Errorf("started with %v, want [%d]", r.pids, created.Pid)
	}
	if e := h.exit(); e.Code != 143 || e.Signal != 15 {
		t.Errorf("exit.json %+v, want code 143 signal 15", *e)
	}
	h.wait()
}

func TestRunCreateFails(t *testing.T) {
	h := newHarness(t, "exit 0\n")
	if err := os.WriteFile(filepath.Join(h.dir, "create-fail"), []byte("bundle: config.json: invalid character"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.start()
	s := h.wantSync("error")
	if want := "fake-runtime create ctr1: bundle: config.json: invalid character"; s.Error != want {
		t.Errorf("sync error %q, want %q (the runtime's logged message)", s.Error, want)
	}
	h.wantSyncEnd()
	if code := h.wait(); code != 1 {
		t.Errorf("monitor exit code %d, want 1", code)
	}
	if _, err := ReadExit(h.cfg.RunDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("exit.json of a container never created: %v", err)
	}
	if h.exists("cleaned-up") {
		t.Error("the exit command ran for a container never created")
	}
}

func TestRunStartFails(t *testing.T) {
	h := newHarness(t, "exit 0\n")
	if err := os.WriteFile(filepath.Join(h.dir, "start-fail"), []byte("cannot start: no such executable"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.start()
	created := h.wantSync("created")
	s := h.wantSync("error")
	if want := "fake-runtime start ctr1: cannot start: no such executable"; s.Error != want {
		t.Errorf("sync error %q, want %q", s.Error, want)
	}
	h.wait()
	// The created container is taken down, not left for nobody to start.
	if !h.exists("deleted") {
		t.Fatalf("no runtime delete after a failed start: %q", h.calls())
	}
	if last := h.calls()[len(h.calls())-1]; last != "--root "+h.cfg.RuntimeRoot+" delete --force ctr1" {
		t.Errorf("last runtime call %q, want delete --force", last)
	}
	time.Sleep(50 * time.Millisecond)
	if unix.Kill(created.Pid, 0) == nil {
		// A zombie until our reaper notices is fine; a running init is not.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", created.Pid)); err == nil && !strings.Contains(string(b), ") Z ") {
			t.Errorf("init %d still runs after a failed start", created.Pid)
		}
	}
}

func TestRunAttachedStartFails(t *testing.T) {
	h := newHarness(t, "exit 0\n")
	h.cfg.WaitStart = true
	if err := os.WriteFile(filepath.Join(h.dir, "start-fail"), []byte("exec format error"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.wantSync("created")
	c := h.dial()
	ch, _ := receive(c)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	r := waitReceived(t, ch)
	var se *StartError
	if !errors.As(r.err, &se) || se.Msg != "fake-runtime start ctr1: exec format error" || r.code != -1 {
		t.Fatalf("Receive = %d, %v; want a StartError with the runtime's message", r.code, r.err)
	}
	// The client may give up on the created container: kill it.
	ch, _ = receive(c)
	if err := c.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r = waitReceived(t, ch)
	if r.err != nil || r.code != 137 {
		t.Fatalf("after SIGKILL: Receive = %d, %v; want 137", r.code, r.err)
	}
	if e := h.exit(); e.Code != 137 || e.Signal != 9 {
		t.Errorf("exit.json %+v", *e)
	}
	h.wait()
}

func TestRunTerminal(t *testing.T) {
	if _, err := exec.LookPath("stty"); err != nil {
		t.Skip("no stty:", err)
	}
	if m, s, err := openPty(); err != nil {
		t.Skip("no pty:", err)
	} else {
		m.Close()
		s.Close()
	}
	h := newHarness(t, "read line; stty size; echo \"got $line\"; exit 5\n")
	h.cfg.WaitStart, h.cfg.Terminal, h.cfg.Stdin = true, true, true
	h.start()
	created := h.wantSync("created")
	c := h.dial()
	ch, _ := receive(c)
	if err := c.Resize(40, 100); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.SendStdin(strings.NewReader("hi\n")); err != nil {
		t.Fatal(err)
	}
	r := waitReceived(t, ch)
	if r.err != nil || r.code != 5 {
		t.Fatalf("Receive = %d, %v; want 5", r.code, r.err)
	}
	if len(r.pids) > 1 || (len(r.pids) == 1 && r.pids[0] != created.Pid) {
		t.Errorf("started %v, want [%d]", r.pids, created.Pid)
	}
	// One stream through the pty: the echo of the input, the size the
	// client set, the output; a terminal makes the newlines CRLF.
	out := r.stdout.String()
	for _, want := range []string{"hi\r\n", "40 100\r\n", "got hi\r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output %q: no %q", out, want)
		}
	}
	if r.stderr.String() != "" {
		t.Errorf("stderr %q from a terminal container", r.stderr.String())
	}
	logOut, logErr := readLog(t, h.cfg.LogPath)
	if !strings.Contains(logOut, "got hi") || logErr != "" {
		t.Errorf("log: stdout %q stderr %q", logOut, logErr)
	}
	h.wait()
	// The run directory is too deep for the console socket: it was made in
	// a private temporary directory, which is gone.
	if ents, _ := os.ReadDir(filepath.Join(h.dir, "tmp")); len(ents) != 0 {
		t.Errorf("left in TMPDIR: %v", ents)
	}
	if !strings.Contains(h.calls()[0], " --console-socket "+filepath.Join(h.dir, "tmp", "berth-console-")) {
		t.Errorf("create %q: want a console socket in TMPDIR", h.calls()[0])
	}
}

func TestRunExitCodeIsNoSignal(t *testing.T) {
	h := newHarness(t, "exit 130\n")
	h.start()
	h.wantSync("created")
	h.wantSync("started")
	h.wait()
	if e := h.exit(); e.Code != 130 || e.Signal != 0 {
		t.Fatalf("exit.json %+v, want code 130 and no signal: the process exited, nothing killed it", *e)
	}
}

func TestRunStartedAnswerOfAShortContainer(t *testing.T) {
	h := newHarness(t, "exit 0\n")
	h.cfg.WaitStart = true
	if err := os.WriteFile(filepath.Join(h.dir, "start-sleep"), []byte("0.5"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.start()
	created := h.wantSync("created")
	c := h.dial()
	ch, _ := receive(c)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	r := waitReceived(t, ch)
	if r.err != nil || r.code != 0 {
		t.Fatalf("Receive = %d, %v", r.code, r.err)
	}
	if len(r.pids) != 1 || r.pids[0] != created.Pid {
		t.Fatalf("started called with %v before the exit, want [%d]", r.pids, created.Pid)
	}
}

func TestRunClientTakesCleanup(t *testing.T) {
	h := newHarness(t, "echo done; exit 4\n")
	h.cfg.WaitStart = true
	h.start()
	h.wantSync("created")
	taker, watcher := h.dial(), h.dial()
	if err := taker.TakeCleanup(); err != nil {
		t.Fatal(err)
	}
	wch, _ := receive(watcher)
	tch, _ := receive(taker)
	if err := taker.Start(); err != nil {
		t.Fatal(err)
	}
	r := waitReceived(t, tch)
	if r.err != nil || r.code != 4 || !r.yours {
		t.Fatalf("taker: Receive = %d, %v, yours %v; want 4, the cleanup handed over", r.code, r.err, r.yours)
	}
	if r.stdout.String() != "done\n" {
		t.Errorf("taker stdout %q", r.stdout.String())
	}
	// exit.json is there for the client's cleanup to read, and the exit
	// command does not run: the cleanup is the client's.
	if e := h.exit(); e.Code != 4 {
		t.Errorf("exit.json %+v", *e)
	}
	// Other clients hear of the exit only once the cleanup is done.
	time.Sleep(100 * time.Millisecond)
	select {
	case r := <-wch:
		t.Fatalf("a watcher got the exit (%d, %v) before the cleanup was done", r.code, r.err)
	default:
	}
	if err := taker.CleanedUp(); err != nil {
		t.Fatal(err)
	}
	taker.Close()
	w := waitReceived(t, wch)
	if w.err != nil || w.code != 4 || w.yours {
		t.Fatalf("watcher: Receive = %d, %v, yours %v; want 4, not its cleanup", w.code, w.err, w.yours)
	}
	if code := h.wait(); code != 0 {
		t.Errorf("monitor exit code %d", code)
	}
	if h.exists("cleaned-up") {
		t.Error("the exit command ran though the client did the cleanup")
	}
}

func TestRunCleanupTakerGoesAway(t *testing.T) {
	// A client that took the cleanup and went without doing it (killed):
	// the exit command runs as if it had never asked.
	h := newHarness(t, "exit 6\n")
	h.cfg.WaitStart = true
	h.start()
	h.wantSync("created")
	taker, watcher := h.dial(), h.dial()
	taker.TakeCleanup()
	wch, _ := receive(watcher)
	tch, _ := receive(taker)
	taker.Start()
	if r := waitReceived(t, tch); r.code != 6 || !r.yours {
		t.Fatalf("taker: Receive = %d, %v, yours %v", r.code, r.err, r.yours)
	}
	taker.Close()
	w := waitReceived(t, wch)
	if w.err != nil || w.code != 6 || w.yours {
		t.Fatalf("watcher: Receive = %d, %v, yours %v", w.code, w.err, w.yours)
	}
	if !h.exists("cleaned-up") {
		t.Error("watcher got the exit before the exit command ran")
	}
	h.wait()
}
