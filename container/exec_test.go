package container

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestLimitedBuffer(t *testing.T) {
	var b limitedBuffer
	chunk := bytes.Repeat([]byte("x"), 1<<10)
	for range 100 {
		if n, err := b.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if len(b.String()) != 64<<10 {
		t.Errorf("kept %d bytes, want 64 KiB", len(b.String()))
	}
}

func TestFiles(t *testing.T) {
	in, out := os.Stdin, os.Stdout
	var buf bytes.Buffer
	tests := []struct {
		name        string
		io          IO
		interactive bool
		in, out, er *os.File
	}{
		{"files, interactive", IO{Stdin: in, Stdout: out, Stderr: out}, true, in, out, out},
		{"stdin only when interactive", IO{Stdin: in, Stdout: out, Stderr: out}, false, nil, out, out},
		{"buffers are not files", IO{Stdin: strings.NewReader(""), Stdout: &buf, Stderr: &buf}, true, nil, nil, nil},
		{"nothing", IO{}, true, nil, nil, nil},
	}
	for _, tt := range tests {
		i, o, e := files(tt.io, tt.interactive)
		if i != tt.in || o != tt.out || e != tt.er {
			t.Errorf("%s: files = %v %v %v", tt.name, i, o, e)
		}
	}
}

func TestWaitPidFile(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	start := func(script string) string {
		cmd := exec.Command(sh, "-c", script)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, strconv.Itoa(cmd.Process.Pid))
		os.WriteFile(p, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600)
		cmd.Process.Release() // waitPidFile reaps it
		return p
	}
	tests := []struct {
		name, script string
		want         int
	}{
		{"exit 0", "exit 0", 0},
		{"exit 3", "exit 3", 3},
		{"killed", "kill -KILL $$", 128 + int(syscall.SIGKILL)},
		{"terminated", "kill -TERM $$", 128 + int(syscall.SIGTERM)},
	}
	for _, tt := range tests {
		if got, err := waitPidFile(start(tt.script)); err != nil || got != tt.want {
			t.Errorf("%s: waitPidFile = %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}

	if _, err := waitPidFile(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "the runtime wrote no pid") {
		t.Errorf("no pid file: %v", err)
	}
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("pid"), 0o600)
	if _, err := waitPidFile(garbage); err == nil {
		t.Error("a pid file without a number: no error")
	}
	notChild := filepath.Join(dir, "init")
	os.WriteFile(notChild, []byte("1"), 0o600)
	if _, err := waitPidFile(notChild); err == nil || !strings.Contains(err.Error(), "exec: wait for 1") {
		t.Errorf("a pid that is not our child: %v", err)
	}
}
