package container

import (
	"path/filepath"
	"testing"

	"github.com/berthproject/berth/errdefs"
	"golang.org/x/sys/unix"
)

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want unix.Signal
		err  bool
	}{
		{in: "KILL", want: unix.SIGKILL},
		{in: "SIGKILL", want: unix.SIGKILL},
		{in: "kill", want: unix.SIGKILL},
		{in: "sigterm", want: unix.SIGTERM},
		{in: "HUP", want: unix.SIGHUP},
		{in: "USR1", want: unix.SIGUSR1},
		{in: "9", want: unix.SIGKILL},
		{in: "15", want: unix.SIGTERM},
		{in: "64", want: unix.Signal(64)},
		{in: "0", err: true},
		{in: "-9", err: true},
		{in: "65", err: true},
		{in: "", err: true},
		{in: "SIG", err: true},
		{in: "SIGNOPE", err: true},
		{in: "9x", err: true},
	}
	for _, tt := range tests {
		got, err := ParseSignal(tt.in)
		if tt.err {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("ParseSignal(%q) = %v, %v; want an invalid argument", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestLogFiles(t *testing.T) {
	tests := []struct {
		cfg  map[string]string
		want int
	}{
		{nil, 1},
		{map[string]string{"max-size": "10m"}, 1},
		{map[string]string{"max-file": "5"}, 5},
		{map[string]string{"max-file": "0"}, 1},
		{map[string]string{"max-file": "-2"}, 1},
		{map[string]string{"max-file": "many"}, 1},
	}
	for _, tt := range tests {
		c := &Container{HostConfig: HostConfig{LogConfig: LogConfig{Type: "json-file", Config: tt.cfg}}}
		if got := LogFiles(c); got != tt.want {
			t.Errorf("LogFiles with %v = %d, want %d", tt.cfg, got, tt.want)
		}
	}
}

// The paths doc.go's layout promises.
func TestLayout(t *testing.T) {
	e := &Engine{root: "/r", runRoot: "/run/b"}
	c := &Container{ID: "abc"}
	for got, want := range map[string]string{
		e.dir("abc"):        "/r/containers/abc",
		e.recordPath("abc"): "/r/containers/abc/container.json",
		e.namesDir():        "/r/containers/names",
		e.LogPath(c):        "/r/containers/abc/ctr-json.log",
		e.runDir("abc"):     "/run/b/containers/abc",
		e.rootfsDir("abc"):  filepath.Join("/run/b/containers/abc", "rootfs"),
	} {
		if got != want {
			t.Errorf("%s, want %s", got, want)
		}
	}
}
