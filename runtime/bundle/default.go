package bundle

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/berthproject/berth/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultCaps is runc's default capability set: enough for a shell, little
// else.
var defaultCaps = []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}

// Default returns the spec `berth-runtime spec` writes: runc's example
// config (a read-only "rootfs", sh on a terminal as root with three
// capabilities, the usual /proc, /dev, /sys mounts, six new namespaces) with
// hostname "berth" and, unlike runc, Docker's default seccomp profile
// resolved for the bounding set. Each call returns a new value.
func Default() *specs.Spec {
	caps := func() []string { return append([]string(nil), defaultCaps...) }
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal: true,
			User:     specs.User{UID: 0, GID: 0},
			Args:     []string{"sh"},
			Env: []string{
				"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"TERM=xterm",
			},
			Cwd: "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps(),
				Effective: caps(),
				Permitted: caps(),
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Hostname: "berth",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs",
				Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts",
				Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm",
				Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue",
				Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs",
				Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
				Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.CgroupNamespace},
			},
			Seccomp: seccomp.Default(caps()),
			// runc's list plus the two Docker has added since
			// (/proc/interrupts, /sys/devices/virtual/powercap), both of
			// which leak host information.
			MaskedPaths: []string{
				"/proc/acpi",
				"/proc/asound",
				"/proc/interrupts",
				"/proc/kcore",
				"/proc/keys",
				"/proc/latency_stats",
				"/proc/timer_list",
				"/proc/timer_stats",
				"/proc/sched_debug",
				"/proc/scsi",
				"/sys/firmware",
				"/sys/devices/virtual/powercap",
			},
			ReadonlyPaths: []string{
				"/proc/bus",
				"/proc/fs",
				"/proc/irq",
				"/proc/sys",
				"/proc/sysrq-trigger",
			},
		},
	}
}

// ToRootless edits s, as `runc spec --rootless` does, into a spec an
// unprivileged user can run: a new user namespace mapping the caller to
// root, the host network (a new one would have no connectivity without a
// helper), /sys bind-mounted because sysfs cannot be mounted without owning
// the network namespace, no uid=/gid= mount options (those ids are not
// mapped), and no cgroup resources (the caller cannot write the cgroup tree).
func ToRootless(s *specs.Spec) {
	if s == nil {
		return
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	l := s.Linux
	var ns []specs.LinuxNamespace
	for _, n := range l.Namespaces {
		if n.Type != specs.NetworkNamespace && n.Type != specs.UserNamespace {
			ns = append(ns, n)
		}
	}
	l.Namespaces = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace})
	l.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Geteuid()), Size: 1}}
	l.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Getegid()), Size: 1}}
	for i, m := range s.Mounts {
		if filepath.Clean("/"+m.Destination) == "/sys" {
			s.Mounts[i] = specs.Mount{
				Destination: m.Destination,
				Type:        "none",
				Source:      "/sys",
				Options:     []string{"rbind", "nosuid", "noexec", "nodev", "ro"},
			}
			continue
		}
		var opts []string
		for _, o := range m.Options {
			if !strings.HasPrefix(o, "uid=") && !strings.HasPrefix(o, "gid=") {
				opts = append(opts, o)
			}
		}
		s.Mounts[i].Options = opts
	}
	l.Resources = nil
}
