package bundle

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/berthproject/berth/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Validate checks a decoded spec for everything a runtime must refuse before
// it creates anything on Linux, and returns the first problem, naming the
// field in runtime-spec JSON terms. dir is the bundle, against which
// root.path is resolved.
//
// It checks what the spec or the kernel makes certain to fail, and a few
// things that would silently do the wrong thing (a non-namespaced sysctl
// would change the host). It does not reject what only the container can
// judge: capabilities the kernel lacks (the spec says to warn), mount types
// or filesystem options, namespace paths (checked when joined).
func Validate(s *specs.Spec, dir string) error {
	if s == nil {
		return errors.New("empty config: expected a JSON object")
	}
	checks := []func(*specs.Spec) error{
		checkVersion,
		checkProcess,
		checkMounts,
		checkHooks,
		checkAnnotations,
		checkLinux,
	}
	for _, c := range checks {
		if err := c(s); err != nil {
			return err
		}
	}
	// The filesystem last: a config that is wrong in itself should say so
	// even when copied away from its rootfs.
	return checkRoot(s, dir)
}

var semverRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)` +
	`(-(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*)?` +
	`(\+[0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*)?$`)

func checkVersion(s *specs.Spec) error {
	v := s.Version
	if v == "" {
		return fmt.Errorf("ociVersion: required (e.g. %q)", specs.Version)
	}
	major, _, _ := strings.Cut(v, ".")
	if n, err := strconv.Atoi(major); err == nil && n != specs.VersionMajor {
		if n < specs.VersionMajor {
			return fmt.Errorf("ociVersion %q is not supported (want 1.0.0 or later)", v)
		}
		return fmt.Errorf("ociVersion %q is not supported (want 1.x; this runtime implements %s)", v, specs.Version)
	}
	if !semverRE.MatchString(v) {
		return fmt.Errorf("ociVersion %q is not a semantic version (want e.g. %q)", v, specs.Version)
	}
	return nil
}

func checkRoot(s *specs.Spec, dir string) error {
	if s.Root == nil {
		return errors.New(`root: required (the container's root filesystem, e.g. {"path": "rootfs"})`)
	}
	if s.Root.Path == "" {
		return errors.New(`root.path: required (the rootfs directory, e.g. "rootfs")`)
	}
	p, err := RootfsPath(s, dir)
	if err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("root.path: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("root.path: rootfs %q is not a directory", joinRoot(s.Root.Path, dir))
	}
	return nil
}

// RootfsPath returns root.path resolved against the bundle dir: absolute,
// cleaned and with every symlink resolved, so that what the runtime mounts
// is the directory the path named when the container was created.
func RootfsPath(s *specs.Spec, dir string) (string, error) {
	if s == nil || s.Root == nil || s.Root.Path == "" {
		return "", errors.New("root.path: required")
	}
	p := joinRoot(s.Root.Path, dir)
	if strings.ContainsRune(p, 0) {
		return "", errors.New("root.path: contains a NUL byte")
	}
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("root.path: rootfs %q does not exist", p)
		}
		return "", fmt.Errorf("root.path: resolve %q: %w", p, err)
	}
	return r, nil
}

func joinRoot(root, dir string) string {
	if filepath.IsAbs(root) {
		return filepath.Clean(root)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return filepath.Join(dir, root)
}

func checkProcess(s *specs.Spec) error {
	p := s.Process
	if p == nil {
		return errors.New(`process: required to create a container (e.g. {"args": ["sh"], "cwd": "/"})`)
	}
	if len(p.Args) == 0 {
		return errors.New(`process.args: required: name the program to run (e.g. ["sh"])`)
	}
	if p.Args[0] == "" {
		return errors.New("process.args[0]: empty program name")
	}
	for i, a := range p.Args {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("process.args[%d]: contains a NUL byte", i)
		}
	}
	if p.Cwd == "" {
		return errors.New(`process.cwd: required (an absolute path such as "/")`)
	}
	if !filepath.IsAbs(p.Cwd) {
		return fmt.Errorf("process.cwd: %q must be an absolute path (e.g. %q)", p.Cwd, "/"+p.Cwd)
	}
	if err := checkEnv("process.env", p.Env); err != nil {
		return err
	}
	if err := checkUser(p.User); err != nil {
		return err
	}
	if err := checkCapabilities(p.Capabilities); err != nil {
		return err
	}
	if err := checkRlimits(p.Rlimits); err != nil {
		return err
	}
	if p.OOMScoreAdj != nil && (*p.OOMScoreAdj < -1000 || *p.OOMScoreAdj > 1000) {
		return fmt.Errorf("process.oomScoreAdj: %d is outside [-1000, 1000]", *p.OOMScoreAdj)
	}
	if err := checkScheduler(p.Scheduler); err != nil {
		return err
	}
	if err := checkIOPriority(p.IOPriority); err != nil {
		return err
	}
	if a := p.ExecCPUAffinity; a != nil {
		if err := checkCPUList("process.execCPUAffinity.initial", a.Initial); err != nil {
			return err
		}
		if err := checkCPUList("process.execCPUAffinity.final", a.Final); err != nil {
			return err
		}
	}
	return nil
}

func checkEnv(field string, env []string) error {
	for i, e := range env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			return fmt.Errorf("%s[%d]: %q is not of the form KEY=VALUE", field, i, e)
		}
		if strings.ContainsRune(e, 0) {
			return fmt.Errorf("%s[%d]: contains a NUL byte", field, i)
		}
	}
	return nil
}

// invalidID is (uid_t)-1, which setuid(2) and chown(2) read as "no change".
const invalidID = math.MaxUint32

func checkUser(u specs.User) error {
	if u.UID == invalidID {
		return fmt.Errorf("process.user.uid: %d is not a valid uid", u.UID)
	}
	if u.GID == invalidID {
		return fmt.Errorf("process.user.gid: %d is not a valid gid", u.GID)
	}
	for i, g := range u.AdditionalGids {
		if g == invalidID {
			return fmt.Errorf("process.user.additionalGids[%d]: %d is not a valid gid", i, g)
		}
	}
	if u.Umask != nil && *u.Umask > 0o777 {
		return fmt.Errorf("process.user.umask: %d is outside [0, 0777] (the value is decimal in JSON: 0022 is 18)", *u.Umask)
	}
	return nil
}

var capNameRE = regexp.MustCompile(`^CAP_[A-Z0-9_]+$`)

// checkCapabilities checks names only: the spec says capabilities the
// kernel lacks are warnings, not errors, so a config written for a newer
// kernel still runs here.
func checkCapabilities(c *specs.LinuxCapabilities) error {
	if c == nil {
		return nil
	}
	sets := []struct {
		name string
		caps []string
	}{
		{"bounding", c.Bounding},
		{"effective", c.Effective},
		{"inheritable", c.Inheritable},
		{"permitted", c.Permitted},
		{"ambient", c.Ambient},
	}
	for _, set := range sets {
		for i, name := range set.caps {
			if capNameRE.MatchString(name) {
				continue
			}
			hint := strings.ToUpper(name)
			if !strings.HasPrefix(hint, "CAP_") {
				hint = "CAP_" + hint
			}
			if !capNameRE.MatchString(hint) {
				hint = "CAP_NET_ADMIN"
			}
			return fmt.Errorf("process.capabilities.%s[%d]: %q is not a capability name (want e.g. %q)", set.name, i, name, hint)
		}
	}
	return nil
}

// rlimitTypes are the resources getrlimit(2) knows on Linux.
var rlimitTypes = []string{
	"RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE",
	"RLIMIT_LOCKS", "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
	"RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS", "RLIMIT_RTPRIO",
	"RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK",
}

func checkRlimits(rl []specs.POSIXRlimit) error {
	seen := map[string]bool{}
	for i, r := range rl {
		f := fmt.Sprintf("process.rlimits[%d]", i)
		if r.Type == "" {
			return fmt.Errorf("%s.type: required (e.g. \"RLIMIT_NOFILE\")", f)
		}
		if !slices.Contains(rlimitTypes, r.Type) {
			return fmt.Errorf("%s.type: unknown rlimit %q (see getrlimit(2), e.g. \"RLIMIT_NOFILE\")", f, r.Type)
		}
		if seen[r.Type] {
			return fmt.Errorf("%s.type: duplicate rlimit %q", f, r.Type)
		}
		seen[r.Type] = true
		if r.Soft > r.Hard {
			return fmt.Errorf("%s: soft limit %d is above hard limit %d", f, r.Soft, r.Hard)
		}
	}
	return nil
}

var schedPolicies = []specs.LinuxSchedulerPolicy{
	specs.SchedOther, specs.SchedFIFO, specs.SchedRR, specs.SchedBatch,
	specs.SchedISO, specs.SchedIdle, specs.SchedDeadline,
}

var schedFlags = []specs.LinuxSchedulerFlag{
	specs.SchedFlagResetOnFork, specs.SchedFlagReclaim, specs.SchedFlagDLOverrun,
	specs.SchedFlagKeepPolicy, specs.SchedFlagKeepParams,
	specs.SchedFlagUtilClampMin, specs.SchedFlagUtilClampMax,
}

// checkScheduler applies the rules sched_setattr(2) would enforce later, in
// the container, where the error is harder to read.
func checkScheduler(s *specs.Scheduler) error {
	if s == nil {
		return nil
	}
	const f = "process.scheduler"
	if s.Policy == "" {
		return fmt.Errorf("%s.policy: required (e.g. %q)", f, specs.SchedOther)
	}
	if !slices.Contains(schedPolicies, s.Policy) {
		return fmt.Errorf("%s.policy: unknown policy %q", f, s.Policy)
	}
	if s.Nice < -20 || s.Nice > 19 {
		return fmt.Errorf("%s.nice: %d is outside [-20, 19]", f, s.Nice)
	}
	realtime := s.Policy == specs.SchedFIFO || s.Policy == specs.SchedRR
	switch {
	case realtime && (s.Priority < 1 || s.Priority > 99):
		return fmt.Errorf("%s.priority: %s needs a priority in [1, 99], got %d", f, s.Policy, s.Priority)
	case !realtime && s.Priority != 0:
		return fmt.Errorf("%s.priority: only SCHED_FIFO and SCHED_RR take a priority, not %s", f, s.Policy)
	}
	if s.Policy != specs.SchedDeadline && (s.Runtime != 0 || s.Deadline != 0 || s.Period != 0) {
		return fmt.Errorf("%s: runtime, deadline and period apply only to SCHED_DEADLINE, not %s", f, s.Policy)
	}
	for i, fl := range s.Flags {
		if !slices.Contains(schedFlags, fl) {
			return fmt.Errorf("%s.flags[%d]: unknown flag %q", f, i, fl)
		}
	}
	return nil
}

func checkIOPriority(p *specs.LinuxIOPriority) error {
	if p == nil {
		return nil
	}
	switch p.Class {
	case specs.IOPRIO_CLASS_RT, specs.IOPRIO_CLASS_BE, specs.IOPRIO_CLASS_IDLE:
	case "":
		return errors.New("process.ioPriority.class: required (IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE)")
	default:
		return fmt.Errorf("process.ioPriority.class: unknown class %q (want IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE)", p.Class)
	}
	if p.Priority < 0 || p.Priority > 7 {
		return fmt.Errorf("process.ioPriority.priority: %d is outside [0, 7]", p.Priority)
	}
	return nil
}

// checkCPUList checks the cpuset list syntax ("0-3,7"); whether the CPUs
// exist is for sched_setaffinity to say.
func checkCPUList(field, list string) error {
	if list == "" {
		return nil
	}
	for part := range strings.SplitSeq(list, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.ParseUint(hi, 10, 16)
		}
		if err1 != nil || err2 != nil || b < a {
			return fmt.Errorf("%s: %q is not a CPU list (want e.g. \"0-3,7\")", field, list)
		}
	}
	return nil
}

func checkMounts(s *specs.Spec) error {
	for i, m := range s.Mounts {
		f := fmt.Sprintf("mounts[%d]", i)
		// A relative destination is deprecated but allowed on Linux
		// (config.md: "interpreted as relative to /"), as runc allows it.
		if m.Destination == "" {
			return fmt.Errorf("%s.destination: required (an absolute path in the container)", f)
		}
		if strings.ContainsRune(m.Destination, 0) || strings.ContainsRune(m.Source, 0) {
			return fmt.Errorf("%s: contains a NUL byte", f)
		}
		if (len(m.UIDMappings) == 0) != (len(m.GIDMappings) == 0) {
			if len(m.UIDMappings) == 0 {
				return fmt.Errorf("%s.uidMappings: required with gidMappings (set both or neither)", f)
			}
			return fmt.Errorf("%s.gidMappings: required with uidMappings (set both or neither)", f)
		}
		if err := checkMappings(f+".uidMappings", m.UIDMappings); err != nil {
			return err
		}
		if err := checkMappings(f+".gidMappings", m.GIDMappings); err != nil {
			return err
		}
	}
	return nil
}

func checkHooks(s *specs.Spec) error {
	h := s.Hooks
	if h == nil {
		return nil
	}
	kinds := []struct {
		name  string
		hooks []specs.Hook
	}{
		{"prestart", h.Prestart},
		{"createRuntime", h.CreateRuntime},
		{"createContainer", h.CreateContainer},
		{"startContainer", h.StartContainer},
		{"poststart", h.Poststart},
		{"poststop", h.Poststop},
	}
	for _, k := range kinds {
		for i, hk := range k.hooks {
			f := fmt.Sprintf("hooks.%s[%d]", k.name, i)
			if hk.Path == "" {
				return fmt.Errorf("%s.path: required (an absolute path to the hook program)", f)
			}
			if !filepath.IsAbs(hk.Path) {
				return fmt.Errorf("%s.path: %q must be an absolute path", f, hk.Path)
			}
			if hk.Timeout != nil && *hk.Timeout <= 0 {
				return fmt.Errorf("%s.timeout: must be greater than zero (got %d); omit it for no timeout", f, *hk.Timeout)
			}
			if err := checkEnv(f+".env", hk.Env); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkAnnotations(s *specs.Spec) error {
	if _, ok := s.Annotations[""]; ok {
		return errors.New("annotations: keys must not be empty")
	}
	return nil
}

// namespaceTypes are the types Linux can create, sorted for messages.
var namespaceTypes = []specs.LinuxNamespaceType{
	specs.CgroupNamespace, specs.IPCNamespace, specs.MountNamespace,
	specs.NetworkNamespace, specs.PIDNamespace, specs.TimeNamespace,
	specs.UserNamespace, specs.UTSNamespace,
}

// namespaces is linux.namespaces indexed by type.
type namespaces map[specs.LinuxNamespaceType]specs.LinuxNamespace

// listed reports whether the container gets a namespace of type t of its
// own, new or joined.
func (n namespaces) listed(t specs.LinuxNamespaceType) bool {
	_, ok := n[t]
	return ok
}

// created reports whether the runtime creates a new namespace of type t.
func (n namespaces) created(t specs.LinuxNamespaceType) bool {
	ns, ok := n[t]
	return ok && ns.Path == ""
}

func checkLinux(s *specs.Spec) error {
	l := s.Linux
	if l == nil {
		return errors.New(`linux: required on Linux (at least {"namespaces": [{"type": "mount"}]})`)
	}
	ns, err := checkNamespaces(l.Namespaces)
	if err != nil {
		return err
	}
	if s.Hostname != "" && !ns.listed(specs.UTSNamespace) {
		return errors.New(`hostname: needs a uts namespace (add {"type": "uts"} to linux.namespaces), or the host's name would change`)
	}
	if s.Domainname != "" && !ns.listed(specs.UTSNamespace) {
		return errors.New(`domainname: needs a uts namespace (add {"type": "uts"} to linux.namespaces), or the host's name would change`)
	}
	if err := checkUserNamespace(l, ns); err != nil {
		return err
	}
	if err := checkTimeOffsets(l, ns); err != nil {
		return err
	}
	if err := checkDevices(l.Devices); err != nil {
		return err
	}
	if err := checkSysctl(l.Sysctl, ns); err != nil {
		return err
	}
	if err := checkResources(l.Resources); err != nil {
		return err
	}
	if err := checkCgroupsPath(l.CgroupsPath); err != nil {
		return err
	}
	if err := seccomp.Validate(l.Seccomp); err != nil {
		return err
	}
	switch l.RootfsPropagation {
	case "", "shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable":
	default:
		return fmt.Errorf("linux.rootfsPropagation: unknown propagation %q (want e.g. \"rprivate\", \"rslave\" or \"rshared\")", l.RootfsPropagation)
	}
	for _, paths := range []struct {
		name string
		list []string
	}{{"maskedPaths", l.MaskedPaths}, {"readonlyPaths", l.ReadonlyPaths}} {
		for i, p := range paths.list {
			if !filepath.IsAbs(p) {
				return fmt.Errorf("linux.%s[%d]: %q must be an absolute path in the container", paths.name, i, p)
			}
		}
	}
	if p := l.Personality; p != nil {
		switch p.Domain {
		case specs.PerLinux, specs.PerLinux32:
		default:
			return fmt.Errorf("linux.personality.domain: unknown domain %q (want LINUX or LINUX32)", p.Domain)
		}
		if len(p.Flags) > 0 {
			return fmt.Errorf("linux.personality.flags[0]: unknown flag %q (the runtime spec defines none)", p.Flags[0])
		}
	}
	// Unsupported features are refused rather than ignored: the spec
	// requires an error for unsupported values, and a container that
	// silently lacks its cache partition or NUMA policy is worse.
	if l.IntelRdt != nil {
		return errors.New("linux.intelRdt: Intel RDT is not supported by berth-runtime; remove it")
	}
	if l.MemoryPolicy != nil {
		return errors.New("linux.memoryPolicy: NUMA memory policies are not supported by berth-runtime; remove it")
	}
	if len(l.NetDevices) > 0 {
		return errors.New("linux.netDevices: moving network devices is not supported by berth-runtime; remove it")
	}
	return nil
}

func checkNamespaces(list []specs.LinuxNamespace) (namespaces, error) {
	ns := namespaces{}
	for i, n := range list {
		f := fmt.Sprintf("linux.namespaces[%d]", i)
		if n.Type == "" {
			return nil, fmt.Errorf("%s.type: required (%s)", f, namespaceList())
		}
		if !slices.Contains(namespaceTypes, n.Type) {
			return nil, fmt.Errorf("%s.type: unknown namespace type %q (want %s)", f, n.Type, namespaceList())
		}
		if _, dup := ns[n.Type]; dup {
			return nil, fmt.Errorf("%s.type: duplicate namespace %q", f, n.Type)
		}
		if n.Path != "" && !filepath.IsAbs(n.Path) {
			return nil, fmt.Errorf("%s.path: %q must be an absolute path (e.g. /proc/<pid>/ns/%s)", f, n.Path, nsFile(n.Type))
		}
		ns[n.Type] = n
	}
	return ns, nil
}

func namespaceList() string {
	names := make([]string, len(namespaceTypes))
	for i, t := range namespaceTypes {
		names[i] = string(t)
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// nsFile is the /proc/<pid>/ns entry for a namespace type.
func nsFile(t specs.LinuxNamespaceType) string {
	switch t {
	case specs.NetworkNamespace:
		return "net"
	case specs.MountNamespace:
		return "mnt"
	}
	return string(t)
}

func checkUserNamespace(l *specs.Linux, ns namespaces) error {
	if ns.created(specs.UserNamespace) {
		if len(l.UIDMappings) == 0 {
			return errors.New("linux.uidMappings: required with a user namespace (e.g. [{\"containerID\": 0, \"hostID\": 100000, \"size\": 65536}])")
		}
		if len(l.GIDMappings) == 0 {
			return errors.New("linux.gidMappings: required with a user namespace (e.g. [{\"containerID\": 0, \"hostID\": 100000, \"size\": 65536}])")
		}
	}
	if !ns.listed(specs.UserNamespace) {
		if len(l.UIDMappings) > 0 {
			return errors.New(`linux.uidMappings: set without a user namespace (add {"type": "user"} to linux.namespaces)`)
		}
		if len(l.GIDMappings) > 0 {
			return errors.New(`linux.gidMappings: set without a user namespace (add {"type": "user"} to linux.namespaces)`)
		}
	}
	if err := checkMappings("linux.uidMappings", l.UIDMappings); err != nil {
		return err
	}
	return checkMappings("linux.gidMappings", l.GIDMappings)
}

func checkMappings(field string, m []specs.LinuxIDMapping) error {
	for i, e := range m {
		if e.Size == 0 {
			return fmt.Errorf("%s[%d].size: must be at least 1", field, i)
		}
		if uint64(e.ContainerID)+uint64(e.Size) > 1<<32 || uint64(e.HostID)+uint64(e.Size) > 1<<32 {
			return fmt.Errorf("%s[%d]: range overflows 32-bit ids (containerID %d, hostID %d, size %d)", field, i, e.ContainerID, e.HostID, e.Size)
		}
	}
	return nil
}

func checkTimeOffsets(l *specs.Linux, ns namespaces) error {
	if len(l.TimeOffsets) == 0 {
		return nil
	}
	if !ns.listed(specs.TimeNamespace) {
		return errors.New(`linux.timeOffsets: needs a new time namespace (add {"type": "time"} to linux.namespaces)`)
	}
	if !ns.created(specs.TimeNamespace) {
		return errors.New("linux.timeOffsets: cannot be set when joining an existing time namespace (its offsets are already fixed)")
	}
	for _, clock := range slices.Sorted(maps.Keys(l.TimeOffsets)) {
		if clock != "monotonic" && clock != "boottime" {
			return fmt.Errorf("linux.timeOffsets: unknown clock %q (want monotonic or boottime)", clock)
		}
		if l.TimeOffsets[clock].Nanosecs >= 1e9 {
			return fmt.Errorf("linux.timeOffsets.%s.nanosecs: %d is not below one second", clock, l.TimeOffsets[clock].Nanosecs)
		}
	}
	return nil
}

func checkDevices(devs []specs.LinuxDevice) error {
	seen := map[string]int{}
	for i, d := range devs {
		f := fmt.Sprintf("linux.devices[%d]", i)
		switch d.Type {
		case "c", "b", "u", "p":
		case "":
			return fmt.Errorf("%s.type: required (c, b, u or p)", f)
		default:
			return fmt.Errorf("%s.type: unknown device type %q (want c, b, u or p)", f, d.Type)
		}
		if d.Path == "" {
			return fmt.Errorf("%s.path: required (e.g. \"/dev/fuse\")", f)
		}
		if !filepath.IsAbs(d.Path) {
			return fmt.Errorf("%s.path: %q must be an absolute path in the container", f, d.Path)
		}
		if d.Major < 0 || d.Minor < 0 {
			return fmt.Errorf("%s: negative device number %d:%d", f, d.Major, d.Minor)
		}
		p := filepath.Clean(d.Path)
		if j, dup := seen[p]; dup {
			return fmt.Errorf("%s.path: %q is also linux.devices[%d]", f, d.Path, j)
		}
		seen[p] = i
	}
	return nil
}

// ipcSysctls are the sysctls an IPC namespace owns (besides fs.mqueue.*).
var ipcSysctls = []string{
	"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
	"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
}

// checkSysctl refuses sysctls that no namespace of the container owns:
// writing them from inside the container would change the host.
func checkSysctl(sysctl map[string]string, ns namespaces) error {
	for _, k := range slices.Sorted(maps.Keys(sysctl)) {
		if k == "" {
			return errors.New("linux.sysctl: keys must not be empty")
		}
		// sysctl(8) accepts both spellings.
		name := strings.ReplaceAll(k, "/", ".")
		if strings.Contains(name, "..") || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
			return fmt.Errorf("linux.sysctl: %q is not a sysctl name", k)
		}
		var need specs.LinuxNamespaceType
		switch {
		case slices.Contains(ipcSysctls, name) || strings.HasPrefix(name, "fs.mqueue."):
			need = specs.IPCNamespace
		case strings.HasPrefix(name, "net."):
			need = specs.NetworkNamespace
		case name == "kernel.hostname" || name == "kernel.domainname":
			need = specs.UTSNamespace
		default:
			return fmt.Errorf("linux.sysctl: %q is not namespaced: setting it would change the host (set it on the host instead)", k)
		}
		if !ns.listed(need) {
			return fmt.Errorf("linux.sysctl: %q needs a %s namespace (add {\"type\": %q} to linux.namespaces)", k, need, need)
		}
	}
	return nil
}

// checkResources checks only the device allow-list: the cgroup code owns
// the rest and reports it when it applies the limits.
func checkResources(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	for i, d := range r.Devices {
		f := fmt.Sprintf("linux.resources.devices[%d]", i)
		switch d.Type {
		case "", "a", "b", "c":
		default:
			return fmt.Errorf("%s.type: unknown type %q (want a, b or c)", f, d.Type)
		}
		if strings.Trim(d.Access, "rwm") != "" {
			return fmt.Errorf("%s.access: %q is not a combination of r, w and m", f, d.Access)
		}
	}
	return nil
}

func checkCgroupsPath(p string) error {
	if strings.ContainsRune(p, 0) {
		return errors.New("linux.cgroupsPath: contains a NUL byte")
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return fmt.Errorf("linux.cgroupsPath: %q must not contain \"..\" (it is resolved under the cgroup root)", p)
	}
	return nil
}
