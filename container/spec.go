package container

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/seccomp"
	"github.com/berthproject/berth/seccomp/profile"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultCaps are Docker's default capabilities.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// allCaps is every capability the kernel knows, for --privileged and
// --cap-add ALL.
var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

var maskedPaths = []string{
	"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
}

var readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}

func capName(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// boundingSet is the capabilities berth itself may pass on: a runtime
// cannot grant a container what is not in it (this host's lacks
// CAP_SYS_RESOURCE, for one).
func boundingSet() map[string]bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	for _, l := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(l, "CapBnd:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return nil
		}
		out := map[string]bool{}
		for i, c := range capNumbers {
			if mask&(1<<uint(i)) != 0 {
				out[c] = true
			}
		}
		return out
	}
	return nil
}

// capNumbers names capabilities by number.
var capNumbers = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
	"CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// capabilities applies --cap-add and --cap-drop to Docker's defaults.
// Everything (--privileged, ALL) means everything this host can give.
func capabilities(h HostConfig) ([]string, error) {
	bnd := boundingSet()
	have := func(c string) bool { return bnd == nil || bnd[c] }
	if h.Privileged {
		var out []string
		for _, c := range allCaps {
			if have(c) {
				out = append(out, c)
			}
		}
		return out, nil
	}
	known := map[string]bool{}
	for _, c := range allCaps {
		known[c] = true
	}
	set := map[string]bool{}
	for _, c := range defaultCaps {
		// A default the host cannot give is left out rather than failing
		// every container here.
		if have(c) {
			set[c] = true
		}
	}
	drop := func() error {
		for _, c := range h.CapDrop {
			n := capName(c)
			if n == "CAP_ALL" {
				set = map[string]bool{}
				continue
			}
			if !known[n] {
				return invalid("--cap-drop %s: unknown capability", c)
			}
			delete(set, n)
		}
		return nil
	}
	if err := drop(); err != nil {
		return nil, err
	}
	addsAll := false
	for _, c := range h.CapAdd {
		n := capName(c)
		if n == "CAP_ALL" {
			addsAll = true
			for _, a := range allCaps {
				if have(a) {
					set[a] = true
				}
			}
			continue
		}
		if !known[n] {
			return nil, invalid("--cap-add %s: unknown capability", c)
		}
		if !have(n) {
			return nil, invalid("--cap-add %s: this host's capability bounding set does not have it, so no container here can", c)
		}
		set[n] = true
	}
	// As in Docker, --cap-add ALL --cap-drop X is everything but X (a drop
	// of ALL still yields to the adds named).
	if addsAll {
		for _, c := range h.CapDrop {
			if n := capName(c); n != "CAP_ALL" {
				delete(set, n)
			}
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out, nil
}

// inRoot opens a path inside the container's root file system, symlinks
// resolved inside it.
func inRoot(rootfs, p string) (string, error) {
	return securejoin.SecureJoin(rootfs, p)
}

// resolveUser turns the container's user (name or uid, with an optional
// group) into ids from the container's own /etc/passwd and /etc/group.
func resolveUser(rootfs, spec string, groupAdd []string) (*user.ExecUser, error) {
	defaults := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	open := func(p string) io.ReadCloser {
		full, err := inRoot(rootfs, p)
		if err != nil {
			return nil
		}
		f, err := os.Open(full)
		if err != nil {
			return nil
		}
		return f
	}
	passwd, group := open("/etc/passwd"), open("/etc/group")
	var pr, gr io.Reader
	if passwd != nil {
		defer passwd.Close()
		pr = passwd
	}
	if group != nil {
		defer group.Close()
		gr = group
	}
	eu, err := user.GetExecUser(spec, defaults, pr, gr)
	if err != nil {
		return nil, fmt.Errorf("user %q: %v (the image's /etc/passwd and /etc/group do not name it): %w", spec, err, errdefs.ErrInvalidArgument)
	}
	if len(groupAdd) > 0 {
		g2 := open("/etc/group")
		var gr2 io.Reader
		if g2 != nil {
			defer g2.Close()
			gr2 = g2
		}
		gids, err := user.GetAdditionalGroups(groupAdd, gr2)
		if err != nil {
			return nil, fmt.Errorf("--group-add: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		eu.Sgids = append(eu.Sgids, gids...)
	}
	return eu, nil
}

// ExecError is a command that cannot be run: 127 when it is not there,
// 126 when it is not something that can be executed, as a shell says.
type ExecError struct {
	Code int
	Msg  string
}

func (e *ExecError) Error() string { return e.Msg }

// checkExecutable finds argv0 in the container as execve would (through
// PATH when it has no slash) and says why it cannot run, before a runtime
// is bothered with it.
func checkExecutable(rootfs, argv0 string, env []string, cwd string) error {
	if argv0 == "" {
		return &ExecError{Code: 127, Msg: `exec: "": executable file not found in $PATH`}
	}
	candidates := []string{argv0}
	if !strings.Contains(argv0, "/") {
		pathVar := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, "PATH="); ok {
				pathVar = v
			}
		}
		candidates = nil
		for _, d := range strings.Split(pathVar, ":") {
			if d == "" {
				d = "."
			}
			candidates = append(candidates, path.Join(d, argv0))
		}
	}
	var notExec string
	for _, cand := range candidates {
		if !path.IsAbs(cand) {
			cand = path.Join(cwd, cand)
		}
		full, err := inRoot(rootfs, cand)
		if err != nil {
			continue
		}
		fi, err := os.Stat(full)
		if err != nil {
			continue
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			if notExec == "" {
				notExec = cand
			}
			continue
		}
		return nil
	}
	if notExec != "" {
		return &ExecError{Code: 126, Msg: fmt.Sprintf("exec %s: permission denied (not an executable file)", notExec)}
	}
	if strings.Contains(argv0, "/") {
		return &ExecError{Code: 127, Msg: fmt.Sprintf("exec %s: no such file or directory", argv0)}
	}
	return &ExecError{Code: 127, Msg: fmt.Sprintf("exec: %q: executable file not found in $PATH", argv0)}
}

// buildSpec makes the container's runtime config: Docker's defaults, the
// image's config and the flags.
func (e *Engine) buildSpec(c *Container, rootfs string) (*specs.Spec, error) {
	h := c.HostConfig
	caps, err := capabilities(h)
	if err != nil {
		return nil, err
	}
	eu, err := resolveUser(rootfs, c.Config.User, h.GroupAdd)
	if err != nil {
		return nil, err
	}
	env := append([]string(nil), c.Config.Env...)
	hasEnv := func(k string) bool {
		for _, kv := range env {
			if strings.HasPrefix(kv, k+"=") {
				return true
			}
		}
		return false
	}
	if !hasEnv("PATH") {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if !hasEnv("HOSTNAME") {
		env = append(env, "HOSTNAME="+c.Config.Hostname)
	}
	if c.Config.Tty && !hasEnv("TERM") {
		env = append(env, "TERM=xterm")
	}
	if !hasEnv("HOME") {
		env = append(env, "HOME="+eu.Home)
	}
	cwd := c.Config.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	args := append([]string{c.Path}, c.Args...)
	if err := checkExecutable(rootfs, c.Path, env, cwd); err != nil {
		return nil, err
	}
	if h.Init {
		args = append([]string{"/dev/init", "--"}, args...)
	}
	gids := make([]uint32, 0, len(eu.Sgids))
	for _, g := range eu.Sgids {
		gids = append(gids, uint32(g))
	}
	noNewPrivs := false
	seccompMode := "default"
	seccompFile := ""
	for _, s := range h.SecurityOpt {
		k, v, _ := strings.Cut(s, "=")
		switch {
		case k == "seccomp" && v == "unconfined":
			seccompMode = "unconfined"
		case k == "seccomp":
			seccompMode, seccompFile = "file", v
		case strings.HasPrefix(s, "no-new-privileges"):
			noNewPrivs = !strings.HasSuffix(s, "false")
		}
	}
	s := &specs.Spec{
		// 1.0.2: every runtime in use takes it (crun 1.8 refuses newer ones), and
		// nothing berth puts in a bundle is newer.
		Version: "1.0.2",
		Process: &specs.Process{
			Terminal: c.Config.Tty,
			User:     specs.User{UID: uint32(eu.Uid), GID: uint32(eu.Gid), AdditionalGids: gids},
			Args:     args,
			Env:      env,
			Cwd:      cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: noNewPrivs,
		},
		Root:     &specs.Root{Path: rootfs, Readonly: h.ReadonlyRootfs},
		Hostname: c.Config.Hostname,
		Mounts:   defaultMounts(),
		Linux: &specs.Linux{
			CgroupsPath: "/berth/" + c.ID,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			Resources: &specs.LinuxResources{Devices: defaultDeviceRules()},
		},
	}
	if h.NetworkMode != "host" {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	if !h.Privileged {
		s.Linux.MaskedPaths = maskedPaths
		s.Linux.ReadonlyPaths = readonlyPaths
	} else {
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		s.Linux.Devices = hostDevices()
		for i := range s.Mounts {
			if s.Mounts[i].Destination == "/sys" {
				s.Mounts[i].Options = []string{"nosuid", "noexec", "nodev", "rw"}
			}
		}
	}
	switch {
	case h.Privileged || seccompMode == "unconfined":
	case seccompMode == "file":
		b, err := os.ReadFile(seccompFile)
		if err != nil {
			return nil, invalid("--security-opt seccomp=%s: %v", seccompFile, err)
		}
		sc, err := profile.Resolve(b, caps)
		if err != nil {
			return nil, invalid("--security-opt seccomp=%s: %v", seccompFile, err)
		}
		s.Linux.Seccomp = sc
	default:
		s.Linux.Seccomp = profile.Default(caps)
	}
	if s.Linux.Seccomp != nil && seccomp.Cacheable(s.Linux.Seccomp) {
		// Compiling the profile is the dearest step of a start in crun and
		// berth-runtime; compiled once and kept, it travels precompiled
		// (runc ignores the annotation and compiles linux.seccomp, which
		// stays). Any failure here only leaves the compiling to the runtime.
		if prog, err := (seccomp.Cache{Dir: filepath.Join(e.root, "seccomp")}).Program(s.Linux.Seccomp); err == nil {
			if s.Annotations == nil {
				s.Annotations = map[string]string{}
			}
			s.Annotations[seccomp.BPFAnnotation] = base64.StdEncoding.EncodeToString(prog)
		}
	}
	for _, u := range h.Ulimits {
		s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_" + strings.ToUpper(u.Name), Soft: uint64(u.Soft), Hard: uint64(u.Hard)})
	}
	r := s.Linux.Resources
	if h.Memory > 0 {
		m := h.Memory
		r.Memory = &specs.LinuxMemory{Limit: &m, Swap: &m}
	}
	if h.NanoCpus > 0 || h.CpuShares > 0 {
		r.CPU = &specs.LinuxCPU{}
		if h.NanoCpus > 0 {
			period := uint64(100000)
			quota := h.NanoCpus * int64(period) / 1e9
			r.CPU.Period, r.CPU.Quota = &period, &quota
		}
		if h.CpuShares > 0 {
			sh := uint64(h.CpuShares)
			r.CPU.Shares = &sh
		}
	}
	if h.PidsLimit != 0 {
		limit := h.PidsLimit
		r.Pids = &specs.LinuxPids{Limit: &limit}
	}
	// The container's own /etc files.
	for _, f := range []struct{ name, dst string }{{"hostname", "/etc/hostname"}, {"hosts", "/etc/hosts"}, {"resolv.conf", "/etc/resolv.conf"}} {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: f.dst, Type: "bind", Source: filepath.Join(e.dir(c.ID), f.name), Options: []string{"rbind", "rprivate"}})
	}
	for _, m := range c.Mounts {
		switch m.Type {
		case "tmpfs":
			opts := []string{"nosuid", "nodev"}
			if m.Options != "" {
				opts = append(opts, strings.Split(m.Options, ",")...)
			}
			if !m.RW {
				opts = append(opts, "ro")
			}
			s.Mounts = append(s.Mounts, specs.Mount{Destination: m.Destination, Type: "tmpfs", Source: "tmpfs", Options: opts})
		default:
			opts := []string{"rbind", "rprivate"}
			if !m.RW {
				opts = append(opts, "ro")
				if m.RecursiveReadOnly {
					// runtime-spec's recursive attribute (mount_setattr).
					opts = append(opts, "rro")
				}
			}
			s.Mounts = append(s.Mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
		}
	}
	if h.Init {
		init := filepath.Join(e.binDir, "berth-init")
		if _, err := os.Stat(init); err != nil {
			return nil, fmt.Errorf("--init needs %s (make builds it): %w", init, errdefs.ErrNotFound)
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/dev/init", Type: "bind", Source: init, Options: []string{"bind", "ro"}})
	}
	return s, nil
}

func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
	}
}

// defaultDeviceRules is Docker's device cgroup allow list.
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	dev := func(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		d := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
		if major >= 0 {
			d.Major = &major
		}
		if minor >= 0 {
			d.Minor = &minor
		}
		return d
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		dev("c", -1, -1, "m"), dev("b", -1, -1, "m"),
		dev("c", 1, 3, "rwm"), dev("c", 1, 8, "rwm"), dev("c", 1, 7, "rwm"), dev("c", 5, 0, "rwm"),
		dev("c", 1, 5, "rwm"), dev("c", 1, 9, "rwm"), dev("c", 5, 1, "rwm"), dev("c", 136, -1, "rwm"),
		dev("c", 5, 2, "rwm"), dev("c", 10, 200, "rwm"),
	}
}

// hostDevices lists /dev's device nodes for a privileged container.
func hostDevices() []specs.LinuxDevice {
	var out []specs.LinuxDevice
	filepath.Walk("/dev", func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if fi.IsDir() && (p == "/dev/pts" || p == "/dev/shm" || p == "/dev/mqueue") {
			return filepath.SkipDir
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		typ := ""
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			typ = "c"
		case unix.S_IFBLK:
			typ = "b"
		default:
			return nil
		}
		switch p {
		case "/dev/console", "/dev/ptmx", "/dev/tty":
			return nil
		}
		mode := fi.Mode().Perm()
		uid, gid := st.Uid, st.Gid
		out = append(out, specs.LinuxDevice{Path: p, Type: typ, Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))), FileMode: &mode, UID: &uid, GID: &gid})
		return nil
	})
	return out
}

// writeEtc writes the files the container gets as /etc/hostname, hosts
// and resolv.conf, as Docker does for its networks.
func (e *Engine) writeEtc(c *Container) error {
	dir := e.dir(c.ID)
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
	if c.HostConfig.NetworkMode == "host" {
		if b, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts = string(b)
		}
	} else {
		hosts += "127.0.1.1\t" + c.Config.Hostname + "\n"
	}
	resolv := "nameserver 127.0.0.53\n"
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		resolv = string(b)
	}
	files := map[string]string{"hostname": c.Config.Hostname + "\n", "hosts": hosts, "resolv.conf": resolv}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil && name != "hostname" {
			continue // kept across restarts: the container may have changed it
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func writeBundle(dir string, s *specs.Spec) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600)
}
