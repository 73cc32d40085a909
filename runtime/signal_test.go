package runtime

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want unix.Signal
		err  bool
	}{
		{"", unix.SIGTERM, false},
		{"9", unix.SIGKILL, false},
		{"KILL", unix.SIGKILL, false},
		{"SIGKILL", unix.SIGKILL, false},
		{"term", unix.SIGTERM, false},
		{"sigusr1", unix.SIGUSR1, false},
		{"RTMIN", 34, false},
		{"RTMIN+2", 36, false},
		{"SIGRTMAX-1", 63, false},
		{"RTMAX", 64, false},
		{"0", 0, true},
		{"65", 0, true},
		{"-3", 0, true},
		{"NOPE", 0, true},
		{"RTMIN+40", 0, true},
		{"RTMAX+1", 0, true},
	} {
		got, err := ParseSignal(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestCheckID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"abc", true},
		{"a.b-c_d+e", true},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"../x", false},
		{"a b", false},
	} {
		if err := checkID(tc.id); (err == nil) != tc.ok {
			t.Errorf("checkID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
}

func TestProcStat(t *testing.T) {
	start, state, err := procStat(unix.Getpid())
	if err != nil || start == 0 || state == 0 {
		t.Fatalf("procStat(self) = %d, %c, %v", start, state, err)
	}
	if _, _, err := procStat(1 << 30); err == nil {
		t.Fatal("procStat of a pid that cannot exist succeeded")
	}
}
