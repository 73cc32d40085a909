package process

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/opencontainers/selinux/go-selinux"
	"golang.org/x/sys/unix"
)

// appArmorEnabled reports whether the kernel enforces AppArmor profiles.
func appArmorEnabled() bool {
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err != nil {
		return false
	}
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.HasPrefix(string(b), "Y")
}

// applyAppArmor asks the kernel to confine the next execve of this thread
// in profile. A profile on a host without AppArmor is an error (runc fails
// on the same write, less clearly), except "unconfined", which is what the
// process is anyway.
func applyAppArmor(profile string) error {
	if profile == "" {
		return nil
	}
	if !appArmorEnabled() {
		if profile == "unconfined" {
			return nil
		}
		return fmt.Errorf("process.apparmorProfile: profile %q requested but AppArmor is not enabled on this host", profile)
	}
	// The newer per-LSM file first: with several LSMs stacked, the plain
	// attr/exec may belong to another one. thread-self because the label
	// is per thread and only the exec'ing thread's counts.
	path := "/proc/thread-self/attr/apparmor/exec"
	if _, err := os.Stat(path); err != nil {
		path = "/proc/thread-self/attr/exec"
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("process.apparmorProfile: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString("exec " + profile); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("process.apparmorProfile: profile %q is not loaded: %w", profile, err)
		}
		return fmt.Errorf("process.apparmorProfile: apply %q: %w", profile, err)
	}
	return nil
}

func applySELinux(label string) error {
	if label == "" {
		return nil
	}
	if !selinux.GetEnabled() {
		return fmt.Errorf("process.selinuxLabel: label %q requested but SELinux is not enabled on this host", label)
	}
	if err := selinux.SetExecLabel(label); err != nil {
		return fmt.Errorf("process.selinuxLabel: set %q: %w", label, err)
	}
	return nil
}
