package ocirt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakeScript is a runtime that records its arguments (NUL-separated) in
// $d/argv and does what the files in $d say: prints stdout and stderr,
// appends logmsg to the --log file, writes fd3 to its fd 3, sleeps, and
// exits with code.
const fakeScript = `#!/bin/sh
d='%s'
printf '%%s\0' "$@" > "$d/argv"
log=
prev=
for a in "$@"; do
	[ "$prev" = --log ] && log=$a
	prev=$a
done
[ -n "$log" ] && [ -e "$log" ] && echo exists > "$d/log-existed"
[ -f "$d/fd3" ] && cat "$d/fd3" >&3
[ -f "$d/stdout" ] && cat "$d/stdout"
[ -f "$d/stderr" ] && cat "$d/stderr" >&2
[ -n "$log" ] && [ -f "$d/logmsg" ] && cat "$d/logmsg" >> "$log"
[ -f "$d/sleep" ] && exec sleep "$(cat "$d/sleep")"
exit "$(cat "$d/code" 2>/dev/null || echo 0)"
`

type fake struct {
	t   *testing.T
	dir string
	rt  *Runtime
}

func newFake(t *testing.T) *fake {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to run a fake runtime:", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "fake-runc")
	if err := os.WriteFile(bin, []byte(fmt.Sprintf(fakeScript, dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	return &fake{t: t, dir: dir, rt: &Runtime{Name: "fake-runc", Path: bin, Root: filepath.Join(dir, "state")}}
}

// set makes the fake runtime's next run use content for what.
func (f *fake) set(what, content string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, what), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fake) argv() []string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, "argv"))
	if err != nil {
		f.t.Fatalf("the fake runtime did not run: %v", err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

func (f *fake) ran() bool {
	_, err := os.Stat(filepath.Join(f.dir, "argv"))
	return err == nil
}

func TestCommandLines(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		call func(*Runtime) error
		want []string
	}{
		{"start", func(r *Runtime) error { return r.Start(ctx, "c1") }, []string{"start", "c1"}},
		{"kill", func(r *Runtime) error { return r.Kill(ctx, "c1", 15, false) }, []string{"kill", "c1", "15"}},
		{"kill all", func(r *Runtime) error { return r.Kill(ctx, "c1", 9, true) }, []string{"kill", "--all", "c1", "9"}},
		{"delete", func(r *Runtime) error { return r.Delete(ctx, "c1", false) }, []string{"delete", "c1"}},
		{"delete force", func(r *Runtime) error { return r.Delete(ctx, "c1", true) }, []string{"delete", "--force", "c1"}},
		{"pause", func(r *Runtime) error { return r.Pause(ctx, "c1") }, []string{"pause", "c1"}},
		{"resume", func(r *Runtime) error { return r.Resume(ctx, "c1") }, []string{"resume", "c1"}},
		{"state", func(r *Runtime) error { _, err := r.State(ctx, "c1"); return err }, []string{"state", "c1"}},
		{"ps", func(r *Runtime) error { _, err := r.Ps(ctx, "c1"); return err }, []string{"ps", "--format", "json", "c1"}},
		{"stats", func(r *Runtime) error { _, err := r.Stats(ctx, "c1"); return err }, []string{"events", "--stats", "c1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			// Output every parser accepts.
			switch tt.want[0] {
			case "state":
				f.set("stdout", `{"id":"c1"}`)
			case "ps":
				f.set("stdout", `[]`)
			case "events":
				f.set("stdout", `{"type":"stats","data":{}}`)
			}
			if err := tt.call(f.rt); err != nil {
				t.Fatal(err)
			}
			want := append([]string{"--root", f.rt.Root}, tt.want...)
			if got := f.argv(); !reflect.DeepEqual(got, want) {
				t.Fatalf("argv %q\nwant %q", got, want)
			}
		})
	}
}

func TestCreateCommandLine(t *testing.T) {
	tests := []struct {
		name string
		opts func(t *testing.T) CreateOptions
		want []string // after --log-format text
	}{
		{"bare", func(*testing.T) CreateOptions { return CreateOptions{} }, []string{"create", "--bundle", "/b", "ctr"}},
		{"pid file", func(*testing.T) CreateOptions { return CreateOptions{PidFile: "/run/x/init.pid"} },
			[]string{"create", "--bundle", "/b", "--pid-file", "/run/x/init.pid", "ctr"}},
		{"console", func(*testing.T) CreateOptions {
			return CreateOptions{PidFile: "/p", ConsoleSocket: "/run/x/console.sock"}
		}, []string{"create", "--bundle", "/b", "--pid-file", "/p", "--console-socket", "/run/x/console.sock", "ctr"}},
		{"preserve fds", func(t *testing.T) CreateOptions {
			a, b := pipe(t)
			c, d := pipe(t)
			return CreateOptions{ExtraFiles: []*os.File{a, b, c, d}}
		}, []string{"create", "--bundle", "/b", "--preserve-fds", "4", "ctr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if err := f.rt.Create(context.Background(), "ctr", "/b", tt.opts(t)); err != nil {
				t.Fatal(err)
			}
			got := f.argv()
			// The runtime's errors go to a log file in its root (its stdio
			// is the container's), in the text format message reads.
			if len(got) < 6 || got[0] != "--root" || got[1] != f.rt.Root || got[2] != "--log" ||
				!strings.HasPrefix(got[3], filepath.Join(f.rt.Root, ".create-log-")) || got[4] != "--log-format" || got[5] != "text" {
				t.Fatalf("global flags %q", got)
			}
			if !reflect.DeepEqual(got[6:], tt.want) {
				t.Fatalf("argv %q\nwant %q", got[6:], tt.want)
			}
			if _, err := os.Stat(filepath.Join(f.dir, "log-existed")); err != nil {
				t.Error("the --log file did not exist while the runtime ran")
			}
			if _, err := os.Stat(got[3]); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the --log file %s is left after create: %v", got[3], err)
			}
		})
	}
}

func pipe(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func TestCreateMakesRoot(t *testing.T) {
	f := newFake(t)
	f.rt.Root = filepath.Join(f.dir, "a", "b", "root")
	if err := f.rt.Create(context.Background(), "c", "/b", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f.rt.Root)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("runtime root: %v %v, want a 0700 directory", fi, err)
	}
	ents, _ := os.ReadDir(f.rt.Root)
	if len(ents) != 0 {
		t.Fatalf("left in the runtime root: %v", ents)
	}
}

func TestCreateStdio(t *testing.T) {
	f := newFake(t)
	f.set("stdout", "container out\n")
	f.set("stderr", "container err\n")
	f.set("fd3", "extra\n")
	outR, outW := pipe(t)
	errR, errW := pipe(t)
	extraR, extraW := pipe(t)
	in, err := os.Open(filepath.Join(f.dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	err = f.rt.Create(context.Background(), "c", "/b", CreateOptions{Stdin: in, Stdout: outW, Stderr: errW, ExtraFiles: []*os.File{extraW}})
	if err != nil {
		t.Fatal(err)
	}
	outW.Close()
	errW.Close()
	extraW.Close()
	for _, c := range []struct {
		name string
		r    *os.File
		want string
	}{{"stdout", outR, "container out\n"}, {"stderr", errR, "container err\n"}, {"fd 3", extraR, "extra\n"}} {
		var b bytes.Buffer
		b.ReadFrom(c.r)
		if b.String() != c.want {
			t.Errorf("%s: %q, want %q", c.name, b.String(), c.want)
		}
	}
}

func TestCreateErrors(t *testing.T) {
	tests := []struct {
		name     string
		logmsg   string
		stderr   string
		want     string
		notExist bool
	}{
		{"logrus line in the log", `time="2026-01-02T03:04:05Z" level=error msg="runc create failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH"` + "\n",
			"", `runc create failed: unable to start container process: exec: "nosuch": executable file not found in $PATH`, false},
		{"last logged line wins", "time=\"t\" level=warning msg=\"cgroup v1 is deprecated\"\ntime=\"t\" level=error msg=\"container with id exists: c\"\n",
			"", "container with id exists: c", false},
		{"log preferred to stderr", "level=error msg=\"from the log\"\n", "Error: from stderr\n", "from the log", false},
		{"stderr when the log is empty", "", "Error: bundle /b: config.json: invalid character 'x'\n", "bundle /b: config.json: invalid character 'x'", false},
		{"nothing said", "", "", "exit status 1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.set("code", "1")
			if tt.logmsg != "" {
				f.set("logmsg", tt.logmsg)
			}
			if tt.stderr != "" {
				f.set("stderr", tt.stderr)
			}
			err := f.rt.Create(context.Background(), "c", "/b", CreateOptions{})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Create = %v (%T), want an *Error", err, err)
			}
			if e.Command != "create" || e.ID != "c" || e.Runtime != f.rt.Path {
				t.Errorf("Error %+v", e)
			}
			if want := "fake-runc create c: " + tt.want; err.Error() != want {
				t.Errorf("Error() = %q\nwant      %q", err.Error(), want)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("Unwrap: %v, want the exit status", errors.Unwrap(err))
			}
			if IsNotExist(err) != tt.notExist {
				t.Errorf("IsNotExist = %v, want %v", !tt.notExist, tt.notExist)
			}
		})
	}
}

func TestCreateStderrGoesToTheContainer(t *testing.T) {
	// With a Stderr for the container, what the runtime prints there is the
	// container's; the error comes from the log alone.
	f := newFake(t)
	f.set("code", "2")
	f.set("stderr", "noise\n")
	_, errW := pipe(t)
	err := f.rt.Create(context.Background(), "c", "/b", CreateOptions{Stderr: errW})
	if err == nil || err.Error() != "fake-runc create c: exit status 2" {
		t.Fatalf("Create = %v", err)
	}
}

func TestCreateRootNotWritable(t *testing.T) {
	f := newFake(t)
	file := filepath.Join(f.dir, "afile")
	os.WriteFile(file, nil, 0o600)
	f.rt.Root = filepath.Join(file, "root")
	if err := f.rt.Create(context.Background(), "c", "/b", CreateOptions{}); err == nil {
		t.Fatal("Create with a root under a file: no error")
	}
	if f.ran() {
		t.Fatal("the runtime ran without a root")
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name     string
		stderr   string
		code     string
		want     string
		notExist bool
	}{
		{"runc", `time="2026-01-02T03:04:05Z" level=error msg="container does not exist"` + "\n", "1", "container does not exist", true},
		{"runc unquoted", "level=error msg=failed\n", "1", "failed", false},
		{"runc, earlier lines", "level=warning msg=\"one\"\n\n  level=error msg=\"container \\\"c\\\" is not running\"  \n\n", "1", `container "c" is not running`, false},
		{"berth-runtime", "Error: container c: does not exist\n", "1", "container c: does not exist", true},
		{"crun", "Error: open `/run/crun/c/status`: No such file or directory\n", "1", "open `/run/crun/c/status`: No such file or directory", true},
		{"crun not exist", "container `c` does not exist\n", "1", "container `c` does not exist", true},
		{"plain last line", "first\nsecond line\n", "3", "second line", false},
		{"silent", "", "4", "exit status 4", false},
		{"only blank lines", "\n  \n\n", "1", "exit status 1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.set("code", tt.code)
			f.set("stderr", tt.stderr)
			err := f.rt.Kill(context.Background(), "c", 9, false)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Kill = %v (%T), want an *Error", err, err)
			}
			if e.Command != "kill" || e.ID != "c" {
				t.Errorf("Error %+v", e)
			}
			if want := "fake-runc kill c: " + tt.want; err.Error() != want {
				t.Errorf("Error() = %q\nwant      %q", err.Error(), want)
			}
			if got := IsNotExist(err); got != tt.notExist {
				t.Errorf("IsNotExist = %v, want %v", got, tt.notExist)
			}
			// Wrapped by a caller, it is still recognised.
			if got := IsNotExist(fmt.Errorf("remove c: %w", err)); got != tt.notExist {
				t.Errorf("IsNotExist of a wrapped error = %v, want %v", got, tt.notExist)
			}
		})
	}
}

func TestMessageWithFieldsAfterMsg(t *testing.T) {
	tests := []struct{ in, want string }{
		{`time="t" level=error msg="container not running" id=c`, "container not running"},
		{`time=2026-01-02T03:04:05Z level=ERROR msg="kill failed" signal=9`, "kill failed"},
	}
	for _, tt := range tests {
		if got := message([]byte(tt.in)); got != tt.want {
			t.Errorf("message(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMessage(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"\n\n", ""},
		{`level=error msg="a \"quoted\" word"`, `a "quoted" word`},
		{`level=error msg=bare`, "bare"},
		{"Error: something\n", "something"},
		{"  indented last  \n", "indented last"},
		{"msg=\"first\"\nplain last\n", "plain last"},
		{"plain first\nlevel=fatal msg=\"last\"\n", "last"},
	}
	for _, tt := range tests {
		if got := message([]byte(tt.in)); got != tt.want {
			t.Errorf("message(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestErrorNotExist(t *testing.T) {
	tests := []struct {
		msg  string
		want bool
	}{
		{"container does not exist", true},
		{"Container Does Not Exist", true},
		{"container c does not exist", true},
		{"open /run/x/state.json: no such file or directory", true},
		{"container is not running", false},
		{"permission denied", false},
		{"", false},
	}
	for _, tt := range tests {
		e := &Error{Runtime: "/usr/bin/runc", Command: "state", ID: "c", Message: tt.msg, Err: errors.New("exit status 1")}
		if got := e.NotExist(); got != tt.want {
			t.Errorf("NotExist(%q) = %v, want %v", tt.msg, got, tt.want)
		}
		if got := IsNotExist(e); got != tt.want {
			t.Errorf("IsNotExist(%q) = %v, want %v", tt.msg, got, tt.want)
		}
	}
	if IsNotExist(nil) || IsNotExist(errors.New("container does not exist")) {
		t.Error("IsNotExist is true of something that is no runtime *Error")
	}
}

func TestErrorString(t *testing.T) {
	inner := errors.New("exit status 1")
	tests := []struct {
		e    Error
		want string
	}{
		{Error{Runtime: "/usr/local/bin/runc", Command: "start", ID: "abc", Message: "cannot start a container that has stopped", Err: inner},
			"runc start abc: cannot start a container that has stopped"},
		{Error{Runtime: "crun", Command: "kill", ID: "abc", Err: inner}, "crun kill abc: exit status 1"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		if !errors.Is(&tt.e, inner) {
			t.Errorf("%q does not unwrap to its cause", tt.want)
		}
	}
}

func TestState(t *testing.T) {
	f := newFake(t)
	f.set("stdout", `{
  "ociVersion": "1.2.0",
  "id": "c1",
  "pid": 4242,
  "status": "running",
  "bundle": "/run/berth/c1/bundle",
  "rootfs": "/run/berth/c1/rootfs",
  "created": "2026-01-02T03:04:05.123456789Z",
  "owner": "",
  "annotations": {"a": "b"}
}`)
	st, err := f.rt.State(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	want := State{ID: "c1", Pid: 4242, Status: "running", Bundle: "/run/berth/c1/bundle", Created: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)}
	if st.ID != want.ID || st.Pid != want.Pid || st.Status != want.Status || st.Bundle != want.Bundle || !st.Created.Equal(want.Created) {
		t.Fatalf("State = %+v\nwant    %+v", *st, want)
	}
}

func TestStateErrors(t *testing.T) {
	tests := []struct {
		name, stdout, stderr, code string
		notExist                   bool
	}{
		{"not json", "container c1 is running\n", "", "0", false},
		{"empty", "", "", "0", false},
		{"wrong type", `{"pid":"many"}`, "", "0", false},
		{"not there", "", "level=error msg=\"container does not exist\"\n", "1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.set("stdout", tt.stdout)
			f.set("stderr", tt.stderr)
			f.set("code", tt.code)
			st, err := f.rt.State(context.Background(), "c1")
			if err == nil {
				t.Fatalf("State = %+v, want an error", st)
			}
			if st != nil {
				t.Errorf("State returned %+v with its error", st)
			}
			if !strings.HasPrefix(err.Error(), "fake-runc state c1: ") {
				t.Errorf("error %q: want the runtime, command and id first", err)
			}
			if IsNotExist(err) != tt.notExist {
				t.Errorf("IsNotExist(%v) = %v", err, !tt.notExist)
			}
		})
	}
}

func TestPs(t *testing.T) {
	tests := []struct {
		name, stdout string
		want         []int
		wantErr      bool
	}{
		{"pids", "[1234,1240,1301]\n", []int{1234, 1240, 1301}, false},
		{"none", "[]", []int{}, false},
		{"null", "null", nil, false},
		{"table", "UID PID PPID\nroot 1 0\n", nil, true},
		{"strings", `["1"]`, nil, true},
		{"empty", "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.set("stdout", tt.stdout)
			got, err := f.rt.Ps(context.Background(), "c1")
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Ps = %v, want an error", got)
				}
				if !strings.HasPrefix(err.Error(), "fake-runc ps c1: ") {
					t.Errorf("error %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Ps = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestPsError(t *testing.T) {
	f := newFake(t)
	f.set("code", "1")
	f.set("stderr", "level=error msg=\"container does not exist\"\n")
	f.set("stdout", "[1]")
	pids, err := f.rt.Ps(context.Background(), "c1")
	if !IsNotExist(err) || pids != nil {
		t.Fatalf("Ps = %v, %v; want a not-exist error and no pids", pids, err)
	}
}

func TestStats(t *testing.T) {
	// One line of runc's `events --stats` (cgroup v2), trimmed of fields the
	// engine does not read.
	f := newFake(t)
	f.set("stdout", `
{"type":"stats","id":"c1","data":{"cpu":{"usage":{"total":123456789,"percpu":[1,2],"kernel":5,"user":6},"throttling":{}},`+
		`"memory":{"usage":{"limit":536870912,"usage":10485760,"max":0,"failcnt":0},"swap":{"limit":0,"usage":0},"cache":4096,`+
		`"raw":{"anon":8192,"file":4096}},"pids":{"current":3,"limit":100},`+
		`"blkio":{"ioServiceBytesRecursive":[{"major":8,"minor":0,"op":"read","value":1000},{"major":8,"minor":0,"op":"write","value":2000}]},`+
		`"hugetlb":{},"intel_rdt":{},"network_interfaces":null}}

`)
	st, err := f.rt.Stats(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if st.CPU.Usage.Total != 123456789 {
		t.Errorf("cpu total %d", st.CPU.Usage.Total)
	}
	if st.Memory.Usage.Usage != 10485760 || st.Memory.Usage.Limit != 536870912 || st.Memory.Cache != 4096 {
		t.Errorf("memory %+v", st.Memory)
	}
	if !reflect.DeepEqual(st.Memory.Raw, map[string]uint64{"anon": 8192, "file": 4096}) {
		t.Errorf("memory raw %v", st.Memory.Raw)
	}
	if st.Pids.Current != 3 || st.Pids.Limit != 100 {
		t.Errorf("pids %+v", st.Pids)
	}
	io := st.Blkio.IoServiceBytesRecursive
	if len(io) != 2 || io[0].Op != "read" || io[0].Value != 1000 || io[1].Op != "write" || io[1].Value != 2000 {
		t.Errorf("blkio %+v", io)
	}
}

func TestStatsErrors(t *testing.T) {
	tests := []struct{ name, stdout string }{
		{"empty", ""},
		{"two events", `{"type":"stats","data":{}}` + "\n" + `{"type":"stats","data":{}}`},
		{"garbage", "cpu: 12%"},
		{"negative counter", `{"type":"stats","data":{"pids":{"current":-1}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.set("stdout", tt.stdout)
			st, err := f.rt.Stats(context.Background(), "c1")
			if err == nil {
				t.Fatalf("Stats = %+v, want an error", st)
			}
			if !strings.HasPrefix(err.Error(), "fake-runc events --stats c1: ") {
				t.Errorf("error %q", err)
			}
		})
	}
}

func TestContextCancel(t *testing.T) {
	f := newFake(t)
	f.set("sleep", "30")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := f.rt.Pause(ctx, "c1")
	if err == nil {
		t.Fatal("Pause of a runtime that hangs: no error")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Pause returned after %v: the context did not stop the runtime", d)
	}
}

func TestExecCmd(t *testing.T) {
	tests := []struct {
		name string
		proc specs.Process
		opts ExecOptions
		want []string // between the process file and the id
	}{
		{"plain", specs.Process{Args: []string{"ls", "-l"}, Cwd: "/"}, ExecOptions{}, nil},
		{"tty", specs.Process{Args: []string{"sh"}, Cwd: "/", Terminal: true}, ExecOptions{ConsoleSocket: "/run/c.sock"},
			[]string{"--tty", "--console-socket", "/run/c.sock"}},
		{"detached", specs.Process{Args: []string{"top"}, Cwd: "/tmp"}, ExecOptions{Detach: true, PidFile: "/run/exec.pid"},
			[]string{"--detach", "--pid-file", "/run/exec.pid"}},
		{"everything", specs.Process{Args: []string{"sh"}, Cwd: "/", Terminal: true, Env: []string{"A=b"}},
			ExecOptions{Detach: true, PidFile: "/p", ConsoleSocket: "/s"},
			[]string{"--tty", "--detach", "--pid-file", "/p", "--console-socket", "/s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.rt.Root = filepath.Join(f.dir, "not", "yet")
			cmd, cleanup, err := f.rt.ExecCmd(context.Background(), "c1", &tt.proc, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			args := cmd.Args[1:]
			if len(args) < 5 || args[0] != "--root" || args[1] != f.rt.Root || args[2] != "exec" || args[3] != "--process" {
				t.Fatalf("argv %q", args)
			}
			procFile := args[4]
			if filepath.Dir(procFile) != f.rt.Root || !strings.HasPrefix(filepath.Base(procFile), ".process-") {
				t.Errorf("process file %s: want a .process- file in the runtime root", procFile)
			}
			if got, want := args[5:], append(append([]string(nil), tt.want...), "c1"); !reflect.DeepEqual(got, want) {
				t.Fatalf("argv after --process %q\nwant %q", got, want)
			}
			if cmd.Path != f.rt.Path {
				t.Errorf("Path %s, want %s", cmd.Path, f.rt.Path)
			}
			b, err := os.ReadFile(procFile)
			if err != nil {
				t.Fatal(err)
			}
			var got specs.Process
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.proc) {
				t.Errorf("process file %+v, want %+v", got, tt.proc)
			}
			// It runs as given, and the runtime sees the same command line.
			if err := cmd.Run(); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.argv(), args) {
				t.Errorf("the runtime got %q, want %q", f.argv(), args)
			}
			cleanup()
			if _, err := os.Stat(procFile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cleanup left the process file: %v", err)
			}
		})
	}
}

func TestExecCmdStdio(t *testing.T) {
	f := newFake(t)
	f.set("stdout", "from exec\n")
	f.set("stderr", "exec err\n")
	f.set("code", "7")
	outR, outW := pipe(t)
	errR, errW := pipe(t)
	cmd, cleanup, err := f.rt.ExecCmd(context.Background(), "c1", &specs.Process{Args: []string{"x"}, Cwd: "/"}, ExecOptions{Stdout: outW, Stderr: errW})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if cmd.Stdin != nil {
		t.Errorf("Stdin %v, want nil (/dev/null): a nil *os.File would be a closed fd", cmd.Stdin)
	}
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("Run = %v, want exit status 7 (a foreground exec exits with its process)", err)
	}
	outW.Close()
	errW.Close()
	var o, e bytes.Buffer
	o.ReadFrom(outR)
	e.ReadFrom(errR)
	if o.String() != "from exec\n" || e.String() != "exec err\n" {
		t.Fatalf("stdout %q stderr %q", o.String(), e.String())
	}
}

func TestSetStdioLeavesNilAlone(t *testing.T) {
	cmd := exec.Command("true")
	setStdio(cmd, nil, nil, nil)
	if cmd.Stdin != nil || cmd.Stdout != nil || cmd.Stderr != nil {
		t.Fatalf("nil files became non-nil interfaces: %#v %#v %#v", cmd.Stdin, cmd.Stdout, cmd.Stderr)
	}
	f, _ := os.Open(os.DevNull)
	defer f.Close()
	setStdio(cmd, f, nil, f)
	if cmd.Stdin != f || cmd.Stdout != nil || cmd.Stderr != f {
		t.Fatalf("stdio %#v %#v %#v", cmd.Stdin, cmd.Stdout, cmd.Stderr)
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	mk := func(p string, mode os.FileMode) string {
		p = filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	besides := filepath.Join(dir, "bin")
	pathDir := filepath.Join(dir, "path")
	nextTo := mk("bin/berth-runtime", 0o755)
	mk("bin/notexec", 0o644)
	onPath := mk("path/crun", 0o755)
	mk("path/berth-runtime", 0o755)
	abs := mk("opt/a dir/my runc", 0o755)
	mk("opt/plain", 0o644)
	os.MkdirAll(filepath.Join(dir, "opt", "adir"), 0o755)
	os.MkdirAll(filepath.Join(besides, "dirname"), 0o755)
	t.Setenv("PATH", pathDir)
	state := filepath.Join(dir, "run", "runtime")

	tests := []struct {
		name, besides string
		wantName      string
		wantPath      string
		wantRoot      string
		notFound      bool
	}{
		{name: "", besides: besides, wantName: "berth-runtime", wantPath: nextTo, wantRoot: filepath.Join(state, "berth-runtime")},
		{name: "berth-runtime", besides: besides, wantName: "berth-runtime", wantPath: nextTo, wantRoot: filepath.Join(state, "berth-runtime")},
		{name: "berth-runtime", besides: "", wantName: "berth-runtime", wantPath: filepath.Join(pathDir, "berth-runtime"), wantRoot: filepath.Join(state, "berth-runtime")},
		{name: "crun", besides: besides, wantName: "crun", wantPath: onPath, wantRoot: filepath.Join(state, "crun")},
		// Not executable next to berth: PATH, then not found.
		{name: "notexec", besides: besides, notFound: true},
		{name: "dirname", besides: besides, notFound: true},
		{name: "runc", besides: besides, notFound: true},
		{name: abs, besides: besides, wantName: abs, wantPath: abs, wantRoot: filepath.Join(state, "my_runc")},
		{name: filepath.Join(dir, "opt", "plain"), notFound: true},
		{name: filepath.Join(dir, "opt", "adir"), notFound: true},
		{name: filepath.Join(dir, "opt", "missing"), notFound: true},
	}
	for _, tt := range tests {
		rt, err := Find(tt.name, tt.besides, state)
		if tt.notFound {
			if !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("Find(%q, %q) = %+v, %v; want ErrNotFound", tt.name, tt.besides, rt, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Find(%q, %q): %v", tt.name, tt.besides, err)
			continue
		}
		want := Runtime{Name: tt.wantName, Path: tt.wantPath, Root: tt.wantRoot}
		if *rt != want {
			t.Errorf("Find(%q, %q) = %+v\nwant %+v", tt.name, tt.besides, *rt, want)
		}
	}
}

func TestFindRelativePath(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rt"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	rt, err := Find("./rt", "", "/state")
	if err != nil {
		t.Fatal(err)
	}
	// An absolute path, so that it works from the monitor's "/" too.
	if rt.Path != filepath.Join(dir, "rt") || rt.Name != "./rt" || rt.Root != "/state/rt" {
		t.Fatalf("Find(./rt) = %+v", *rt)
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"runc", "runc"},
		{"my runtime", "my_runtime"},
		{"a/b c", "a_b_c"},
		{"crun-1.2", "crun-1.2"},
	}
	for _, tt := range tests {
		if got := sanitize(tt.in); got != tt.want {
			t.Errorf("sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHasState(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "running"), 0o700)
	os.Symlink("nowhere", filepath.Join(root, "dangling"))
	file := filepath.Join(root, "afile")
	os.WriteFile(file, nil, 0o600)
	tests := []struct {
		root, id string
		want     bool
	}{
		{root, "running", true},
		{root, "gone", false},
		// Anything there, even a dangling link, may be state: only a
		// definite "not there" says no.
		{root, "dangling", true},
		// Cannot tell (not a directory): assume state, so that a delete runs.
		{file, "x", true},
		{filepath.Join(root, "no-root-yet"), "x", false},
	}
	for _, tt := range tests {
		r := &Runtime{Name: "runc", Path: "/usr/bin/runc", Root: tt.root}
		if got := r.HasState(tt.id); got != tt.want {
			t.Errorf("HasState(%s in %s) = %v, want %v", tt.id, tt.root, got, tt.want)
		}
	}
}
