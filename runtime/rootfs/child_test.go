package rootfs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/testutil"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The integration tests re-execute the test binary as a container init: a
// child cloned into new mount/pid/uts/ipc(/cgroup) namespaces runs Prepare,
// Pivot, [BindConsole,] Finalize on a busybox rootfs, probes the result from
// inside and prints a JSON report for the parent to assert on.
const childEnv = "BERTH_ROOTFS_TEST_CHILD"

type childConfig struct {
	Spec       *specs.Spec
	Rootfs     string
	Bundle     string
	NoPivot    bool
	UserNS     bool
	NoCgroupNS bool // do not clone a cgroup namespace
	CloneUser  bool // clone a user namespace too (identity-mapped root)
	Console    bool // open a pty after Pivot and BindConsole its slave

	Stat  []string // lstat these paths
	Read  []string // read these files
	Write []string // try to create these files
	List  []string // list these directories
}

type statResult struct {
	Err          string
	Type         string // dir, file, char, block, fifo, symlink, other
	Perm         uint32
	UID, GID     uint32
	Major, Minor uint32
	Link         string
}

type readResult struct {
	Content string
	Err     string
}

type report struct {
	Error  string
	Mounts []*mountinfo.Info
	Stat   map[string]statResult
	Read   map[string]readResult
	Write  map[string]string // "" when the write worked
	List   map[string][]string
	Stdin  statResult // fd 0 after Finalize
}

func TestMain(m *testing.M) {
	if p := os.Getenv(childEnv); p != "" {
		// The container init runs on its main thread, locked, like the
		// runtime's.
		runtime.LockOSThread()
		os.Exit(childMain(p))
	}
	os.Exit(m.Run())
}

func childMain(cfgPath string) int {
	var cfg childConfig
	b, err := os.ReadFile(cfgPath)
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	rep := report{}
	if err == nil {
		err = childSteps(&cfg, &rep)
	}
	if err != nil {
		rep.Error = err.Error()
	}
	out, _ := json.Marshal(rep)
	os.Stdout.Write(out)
	return 0
}

func childSteps(cfg *childConfig, rep *report) error {
	c := &Config{Spec: cfg.Spec, Rootfs: cfg.Rootfs, Bundle: cfg.Bundle, NoPivot: cfg.NoPivot, UserNS: cfg.UserNS}
	if err := Prepare(c); err != nil {
		return err
	}
	if err := Pivot(c); err != nil {
		return err
	}
	if cfg.Console {
		if err := childConsole(); err != nil {
			return err
		}
	}
	if err := Finalize(c); err != nil {
		return err
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		rep.Mounts, _ = mountinfo.GetMountsFromReader(bytes.NewReader(b), nil)
	}
	rep.Stat = map[string]statResult{}
	for _, p := range cfg.Stat {
		rep.Stat[p] = lstat(p)
	}
	rep.Read = map[string]readResult{}
	for _, p := range cfg.Read {
		b, err := os.ReadFile(p)
		rep.Read[p] = readResult{Content: string(b), Err: errString(err)}
	}
	rep.Write = map[string]string{}
	for _, p := range cfg.Write {
		rep.Write[p] = errString(os.WriteFile(p, []byte("written from inside"), 0o644))
	}
	rep.List = map[string][]string{}
	for _, p := range cfg.List {
		ents, err := os.ReadDir(p)
		names := []string{}
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if err != nil {
			names = append(names, "ERROR: "+err.Error())
		}
		rep.List[p] = names
	}
	var st unix.Stat_t
	if err := unix.Fstat(0, &st); err == nil {
		rep.Stdin = statOf(&st)
	}
	return nil
}

func childConsole() error {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("open /dev/ptmx: %w", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("unlockpt: %w", err)
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, master.Fd(), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		return fmt.Errorf("TIOCGPTPEER: %w", errno)
	}
	slave := os.NewFile(sfd, "pty-slave")
	defer slave.Close()
	return BindConsole(slave)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func lstat(p string) statResult {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return statResult{Err: err.Error()}
	}
	r := statOf(&st)
	if r.Type == "symlink" {
		r.Link, _ = os.Readlink(p)
	}
	return r
}

func statOf(st *unix.Stat_t) statResult {
	r := statResult{Perm: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		r.Type = "dir"
	case unix.S_IFREG:
		r.Type = "file"
	case unix.S_IFCHR:
		r.Type = "char"
	case unix.S_IFBLK:
		r.Type = "block"
	case unix.S_IFIFO:
		r.Type = "fifo"
	case unix.S_IFLNK:
		r.Type = "symlink"
	default:
		r.Type = "other"
	}
	return r
}

// bundle makes a bundle directory holding a busybox rootfs.
func bundle(t *testing.T) (bundleDir, rootfs string) {
	t.Helper()
	testutil.RequireRoot(t)
	bundleDir = t.TempDir()
	rootfs = filepath.Join(bundleDir, "rootfs")
	testutil.BusyboxRootfs(t, rootfs)
	return bundleDir, rootfs
}

// baseSpec is the mount set runc's `spec` command writes, plus sysfs.
func baseSpec() *specs.Spec {
	return &specs.Spec{
		Root: &specs.Root{Path: "rootfs"},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: "pid"}, {Type: "mount"}, {Type: "ipc"}, {Type: "uts"}, {Type: "cgroup"}},
		},
	}
}

// runChild runs the three steps in a fresh child and returns its report.
// It also checks that the child left no mount at or under the rootfs in the
// test's (the host's) mount table.
func runChild(t *testing.T, cfg childConfig) report {
	t.Helper()
	if cfg.Bundle == "" {
		cfg.Bundle = filepath.Dir(cfg.Rootfs)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "child.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	// Under -race the race runtime sleeps a second at exit by default.
	cmd.Env = append(os.Environ(), childEnv+"="+cfgPath, "GORACE=atexit_sleep_ms=0")
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if !cfg.NoCgroupNS {
		flags |= unix.CLONE_NEWCGROUP
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags}
	if cfg.CloneUser {
		cmd.SysProcAttr.Cloneflags |= unix.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("child report: %v\nstdout: %s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	assertNoHostMounts(t, cfg.Rootfs)
	return rep
}

func assertNoHostMounts(t *testing.T, dir string) {
	t.Helper()
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		t.Errorf("mount leaked to the host: %s (%s)", in.Mountpoint, in.FSType)
	}
}

// mustSucceed fails the test when the child reported an error.
func mustSucceed(t *testing.T, rep report) {
	t.Helper()
	if rep.Error != "" {
		t.Fatalf("child failed: %s", rep.Error)
	}
}

// mountAt returns the topmost mount at mountpoint in the child's table.
func mountAt(rep report, mountpoint string) *mountinfo.Info {
	var found *mountinfo.Info
	for _, in := range rep.Mounts {
		if in.Mountpoint == mountpoint {
			found = in
		}
	}
	return found
}

func hasOpt(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

func requireMount(t *testing.T, rep report, mountpoint, fstype string, opts ...string) *mountinfo.Info {
	t.Helper()
	in := mountAt(rep, mountpoint)
	if in == nil {
		var all []string
		for _, m := range rep.Mounts {
			all = append(all, m.Mountpoint+"("+m.FSType+")")
		}
		t.Fatalf("no mount at %s; mounts: %v", mountpoint, all)
	}
	if in.FSType != fstype {
		t.Errorf("%s: fstype %s, want %s", mountpoint, in.FSType, fstype)
	}
	for _, o := range opts {
		if !hasOpt(in.Options, o) && !hasOpt(in.VFSOptions, o) {
			t.Errorf("%s: option %s missing (mount %q, super %q)", mountpoint, o, in.Options, in.VFSOptions)
		}
	}
	return in
}

func isErrno(s string, errno unix.Errno) bool {
	return strings.Contains(s, errno.Error())
}
