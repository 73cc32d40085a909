package container

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestProcessStart(t *testing.T) {
	self := processStart(os.Getpid())
	if self == 0 {
		t.Fatal("no start time for this process")
	}
	if again := processStart(os.Getpid()); again != self {
		t.Errorf("start time changed: %d, then %d", self, again)
	}
	if got := processStart(1 << 30); got != 0 { // above any pid_max
		t.Errorf("processStart of no process = %d", got)
	}
	if got := processStart(0); got != 0 {
		t.Errorf("processStart(0) = %d", got)
	}

	tests := []struct {
		name string
		st   State
		want bool
	}{
		{"this process", State{MonitorPid: os.Getpid(), MonitorStart: self}, true},
		{"pid reused", State{MonitorPid: os.Getpid(), MonitorStart: self + 1}, false},
		{"no start recorded", State{MonitorPid: os.Getpid()}, false},
		{"no monitor", State{MonitorStart: self}, false},
		{"gone", State{MonitorPid: 1 << 30, MonitorStart: self}, false},
	}
	for _, tt := range tests {
		if got := monitorAlive(tt.st); got != tt.want {
			t.Errorf("%s: monitorAlive(%+v) = %v, want %v", tt.name, tt.st, got, tt.want)
		}
	}
}

// A monitor that has exited but is not reaped yet (a zombie) is gone.
func TestProcessStartZombie(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Skip("cannot run true:", err)
	}
	defer cmd.Wait()
	pid := cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); f[0] == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child did not exit")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := processStart(pid); got != 0 {
		t.Errorf("processStart of a zombie = %d, want 0", got)
	}
}
