package bundle

import (
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/berthproject/berth/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// Annotation keys berth-runtime reports in its features document.
const (
	AnnotationVersion   = "io.github.berthproject.berth.version"
	AnnotationGoVersion = "io.github.berthproject.berth.go.version"
)

// capNames are the capabilities in kernel order (capability.h); a name's
// index is its number.
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// mountOptions are the options of config.md's Linux table, all of which
// the runtime's mount code interprets itself; anything else is passed to
// the filesystem as data.
var mountOptions = []string{
	"async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
	"idmap", "iversion", "lazytime", "loud", "mand", "noatime", "nodev",
	"nodiratime", "noexec", "noiversion", "nolazytime", "nomand", "norelatime",
	"nostrictatime", "nosuid", "nosymfollow", "private", "ratime", "rbind",
	"rdev", "rdiratime", "relatime", "remount", "rexec", "ridmap", "rnoatime",
	"rnodev", "rnodiratime", "rnoexec", "rnorelatime", "rnostrictatime",
	"rnosuid", "rnosymfollow", "ro", "rprivate", "rrelatime", "rro", "rrw",
	"rshared", "rslave", "rstrictatime", "rsuid", "rsymfollow", "runbindable",
	"rw", "shared", "silent", "slave", "strictatime", "suid", "symfollow",
	"sync", "tmpcopyup", "unbindable",
}

// Features returns the runtime-spec features document that
// `berth-runtime features` prints; version is berth's own version.
//
// The capability list is what this kernel knows (/proc/sys/kernel/
// cap_last_cap), and the seccomp archs and supported flags are what this
// libseccomp and kernel can do; everything else is fixed by the code.
// "Enabled" for AppArmor and SELinux means compiled in, as the spec defines
// it: the runtime applies process.apparmorProfile and process.selinuxLabel
// and fails clearly when the host lacks the LSM.
func Features(version string) *features.Features {
	t, f := true, false
	var ns []string
	for _, n := range namespaceTypes {
		ns = append(ns, string(n))
	}
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions:  slices.Clone(mountOptions),
		Linux: &features.Linux{
			Namespaces:   ns,
			Capabilities: kernelCaps(),
			Cgroup: &features.Cgroup{
				V1: &t, V2: &t, Systemd: &f, SystemdUser: &f, Rdma: &f,
			},
			Seccomp:         seccomp.Features(),
			Apparmor:        &features.Apparmor{Enabled: &t},
			Selinux:         &features.Selinux{Enabled: &t},
			IntelRdt:        &features.IntelRdt{Enabled: &f},
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &t}},
			NetDevices:      &features.NetDevices{Enabled: &f},
		},
		Annotations: map[string]string{
			AnnotationVersion:   version,
			AnnotationGoVersion: runtime.Version(),
		},
		PotentiallyUnsafeConfigAnnotations: []string{},
	}
}

// kernelCaps names capabilities 0..cap_last_cap. A kernel newer than this
// table has capabilities berth cannot name; they are left out rather than
// invented. If cap_last_cap cannot be read the whole table is reported.
func kernelCaps() []string {
	last := len(capNames) - 1
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 {
			last = min(n, last)
		}
	}
	return slices.Clone(capNames[:last+1])
}
