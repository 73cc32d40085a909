package seccomp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/testutil"
)

// TestDefaultCompiles: the resolved default profile, for the default
// capabilities and for all of them, passes Validate and libseccomp
// accepts its rules together (overlapping rules such as syslog's agree).
func TestDefaultCompiles(t *testing.T) {
	for name, caps := range map[string][]string{
		"docker defaults":    {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"},
		"sys_admin and more": {"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_BOOT", "CAP_SYSLOG", "CAP_SYS_MODULE", "CAP_SYS_TIME", "CAP_SYS_NICE", "CAP_SYS_PACCT", "CAP_SYS_RAWIO", "CAP_SYS_TTY_CONFIG", "CAP_BPF", "CAP_PERFMON"},
	} {
		t.Run(name, func(t *testing.T) {
			c := Default(caps)
			if err := Validate(c); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			f, err := Compile(c)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			f.Close()
		})
	}
}

// TestDefaultInChild loads Docker's profile as a container would get it and
// checks the conditional rules with real syscalls whose unfiltered answer
// differs from the filter's.
func TestDefaultInChild(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBusybox(t)
	steps := []string{"unshare", "mount", "kcmp", "clone3", "personality 0xffffffff", "personality 0x0400000"}
	tests := []struct {
		name string
		caps []string
		want []string
	}{
		// unshare(0) and kcmp of a process with itself succeed, the mount
		// target does not exist, clone3(NULL, 0) is EINVAL and
		// ADDR_NO_RANDOMIZE is a valid persona: anything else is the filter.
		{"no caps", nil, []string{"EPERM", "EPERM", "EPERM", "ENOSYS", "0", "EPERM"}},
		{"CAP_SYS_ADMIN and CAP_SYS_PTRACE", []string{"CAP_SYS_ADMIN", "CAP_SYS_PTRACE"}, []string{"0", "ENOENT", "0", "EINVAL", "0", "EPERM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runChild(t, Default(tt.caps), steps, nil)
			for i, s := range steps {
				if r.out[s] != tt.want[i] {
					t.Errorf("%s = %q, want %q", s, r.out[s], tt.want[i])
				}
			}
			if t.Failed() {
				t.Log(r)
			}
		})
	}
	// A program runs normally under the profile; namespaces stay closed.
	r := runChild(t, Default(nil), []string{"exec " + testutil.BusyboxPath + " unshare -m " + testutil.BusyboxPath + " true"}, nil)
	if r.status.ExitStatus() == 0 || !strings.Contains(r.stderr, "Operation not permitted") {
		t.Fatalf("busybox unshare -m under Default(nil): %v", r)
	}
	d := filepath.Join(t.TempDir(), "d")
	r = runChild(t, Default(nil), []string{"exec " + testutil.BusyboxPath + " mkdir " + d}, nil)
	if r.status.ExitStatus() != 0 {
		t.Fatalf("busybox mkdir under Default(nil): %v", r)
	}
	if _, err := os.Stat(d); err != nil {
		t.Fatal(err)
	}
}
