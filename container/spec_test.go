package container

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// writeFile writes root/rel (making its directories) with mode.
func writeFile(t *testing.T, root, rel, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // not masked by the umask
		t.Fatal(err)
	}
}

func symlink(t *testing.T, root, rel, target string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

const (
	testPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" +
		"app:x:1000:1000:App:/home/app:/bin/sh\n"
	testGroup = "root:x:0:\n" +
		"daemon:x:1:\n" +
		"wheel:x:10:app\n" +
		"audio:x:29:other,app\n" +
		"app:x:1000:\n"
)

// testRootfs is a small container root: users, and files to execute.
func testRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeFile(t, root, "etc/passwd", testPasswd, 0o644)
	writeFile(t, root, "etc/group", testGroup, 0o644)
	writeFile(t, root, "bin/sh", "#!shell", 0o755)
	writeFile(t, root, "bin/notexec", "data", 0o644)
	if err := os.MkdirAll(filepath.Join(root, "bin/adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "usr/bin/tool", "#!tool", 0o755)
	writeFile(t, root, "usr/local/bin/dual", "not this one", 0o644)
	writeFile(t, root, "usr/bin/dual", "#!this one", 0o755)
	writeFile(t, root, "opt/app/run", "#!run", 0o755)
	writeFile(t, root, "opt/app/data", "data", 0o600)
	symlink(t, root, "bin/link", "/bin/sh")
	symlink(t, root, "bin/dangling", "/nope")
	// Resolved inside the root, this is <root>/usr/bin/env, which is not
	// there, whatever the host has at /usr/bin/env.
	symlink(t, root, "bin/escape", "../../../../../../../../usr/bin/env")
	return root
}

func TestCapName(t *testing.T) {
	tests := map[string]string{
		"chown":       "CAP_CHOWN",
		"CHOWN":       "CAP_CHOWN",
		"CAP_CHOWN":   "CAP_CHOWN",
		"cap_net_raw": "CAP_NET_RAW",
		"Sys_Admin":   "CAP_SYS_ADMIN",
		" net_admin ": "CAP_NET_ADMIN",
		"all":         "CAP_ALL",
		"ALL":         "CAP_ALL",
	}
	for in, want := range tests {
		if got := capName(in); got != want {
			t.Errorf("capName(%q) = %q, want %q", in, got, want)
		}
	}
}

// capNumbers is indexed by the kernel's capability numbers, and allCaps
// names the same set.
func TestCapTables(t *testing.T) {
	kernel := map[string]int{
		"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH,
		"CAP_FOWNER": unix.CAP_FOWNER, "CAP_FSETID": unix.CAP_FSETID, "CAP_KILL": unix.CAP_KILL, "CAP_SETGID": unix.CAP_SETGID,
		"CAP_SETUID": unix.CAP_SETUID, "CAP_SETPCAP": unix.CAP_SETPCAP, "CAP_LINUX_IMMUTABLE": unix.CAP_LINUX_IMMUTABLE,
		"CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE, "CAP_NET_BROADCAST": unix.CAP_NET_BROADCAST, "CAP_NET_ADMIN": unix.CAP_NET_ADMIN,
		"CAP_NET_RAW": unix.CAP_NET_RAW, "CAP_IPC_LOCK": unix.CAP_IPC_LOCK, "CAP_IPC_OWNER": unix.CAP_IPC_OWNER,
		"CAP_SYS_MODULE": unix.CAP_SYS_MODULE, "CAP_SYS_RAWIO": unix.CAP_SYS_RAWIO, "CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT,
		"CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE, "CAP_SYS_PACCT": unix.CAP_SYS_PACCT, "CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN,
		"CAP_SYS_BOOT": unix.CAP_SYS_BOOT, "CAP_SYS_NICE": unix.CAP_SYS_NICE, "CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE,
		"CAP_SYS_TIME": unix.CAP_SYS_TIME, "CAP_SYS_TTY_CONFIG": unix.CAP_SYS_TTY_CONFIG, "CAP_MKNOD": unix.CAP_MKNOD,
		"CAP_LEASE": unix.CAP_LEASE, "CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE, "CAP_AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL,
		"CAP_SETFCAP": unix.CAP_SETFCAP, "CAP_MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE, "CAP_MAC_ADMIN": unix.CAP_MAC_ADMIN,
		"CAP_SYSLOG": unix.CAP_SYSLOG, "CAP_WAKE_ALARM": unix.CAP_WAKE_ALARM, "CAP_BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND,
		"CAP_AUDIT_READ": unix.CAP_AUDIT_READ, "CAP_PERFMON": unix.CAP_PERFMON, "CAP_BPF": unix.CAP_BPF,
		"CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
	}
	if len(capNumbers) != len(kernel) {
		t.Errorf("capNumbers has %d names, the kernel %d", len(capNumbers), len(kernel))
	}
	for i, c := range capNumbers {
		if n, ok := kernel[c]; !ok || n != i {
			t.Errorf("capNumbers[%d] = %s, which is capability %d", i, c, n)
		}
	}
	a, b := slices.Clone(allCaps), slices.Clone(capNumbers)
	sort.Strings(a)
	sort.Strings(b)
	if !slices.Equal(a, b) {
		t.Errorf("allCaps and capNumbers differ:\n%q\n%q", a, b)
	}
	for _, c := range defaultCaps {
		if _, ok := kernel[c]; !ok {
			t.Errorf("default capability %s is not a capability", c)
		}
	}
	if len(defaultCaps) != 14 {
		t.Errorf("Docker has 14 default capabilities, berth %d", len(defaultCaps))
	}
}

// boundingSet reads what prctl(PR_CAPBSET_READ) says, one by one.
func TestBoundingSet(t *testing.T) {
	bnd := boundingSet()
	if bnd == nil {
		t.Fatal("no bounding set read from /proc/self/status")
	}
	for i, c := range capNumbers {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(i), 0, 0, 0)
		if err != nil {
			continue // a capability this kernel does not know
		}
		if bnd[c] != (in == 1) {
			t.Errorf("%s: boundingSet says %v, prctl %d", c, bnd[c], in)
		}
	}
}

func TestCapabilities(t *testing.T) {
	bnd := boundingSet()
	have := func(c string) bool { return bnd == nil || bnd[c] }
	sorted := func(cs ...string) []string {
		out := slices.Clone(cs)
		sort.Strings(out)
		return out
	}
	without := func(list []string, drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(list), func(c string) bool { return slices.Contains(drop, c) })
	}
	var hostAll []string // allCaps this host can give, in allCaps' order
	var missing string   // a capability the host cannot give, if any
	for _, c := range allCaps {
		if have(c) {
			hostAll = append(hostAll, c)
		} else if missing == "" {
			missing = c
		}
	}
	defaults := sorted(defaultCaps...)

	tests := []struct {
		name string
		h    HostConfig
		want []string
		err  string
		need string // skip unless the host can give it
	}{
		{name: "docker defaults", want: defaults},
		{name: "drop", h: HostConfig{CapDrop: []string{"NET_RAW", "cap_mknod"}}, want: without(defaults, "CAP_NET_RAW", "CAP_MKNOD")},
		{name: "drop one not held", h: HostConfig{CapDrop: []string{"SYS_ADMIN"}}, want: defaults},
		{name: "add", h: HostConfig{CapAdd: []string{"net_admin"}}, want: sorted(append(slices.Clone(defaultCaps), "CAP_NET_ADMIN")...), need: "CAP_NET_ADMIN"},
		{name: "add with CAP_ prefix", h: HostConfig{CapAdd: []string{"CAP_SYS_PTRACE"}}, want: sorted(append(slices.Clone(defaultCaps), "CAP_SYS_PTRACE")...), need: "CAP_SYS_PTRACE"},
		{name: "add one held", h: HostConfig{CapAdd: []string{"CHOWN"}}, want: defaults},
		{name: "add and drop", h: HostConfig{CapAdd: []string{"SYS_ADMIN"}, CapDrop: []string{"CHOWN"}}, want: sorted(append(without(defaultCaps, "CAP_CHOWN"), "CAP_SYS_ADMIN")...), need: "CAP_SYS_ADMIN"},
		{name: "add wins over drop of the same", h: HostConfig{CapAdd: []string{"KILL"}, CapDrop: []string{"KILL"}}, want: defaults},
		{name: "drop all", h: HostConfig{CapDrop: []string{"ALL"}}, want: []string{}},
		{name: "drop all, add one", h: HostConfig{CapDrop: []string{"all"}, CapAdd: []string{"NET_BIND_SERVICE"}}, want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "add all", h: HostConfig{CapAdd: []string{"ALL"}}, want: sorted(hostAll...)},
		{name: "privileged", h: HostConfig{Privileged: true}, want: hostAll},
		{name: "privileged ignores drop and unknown names", h: HostConfig{Privileged: true, CapDrop: []string{"CHOWN", "BOGUS"}}, want: hostAll},
		{name: "unknown add", h: HostConfig{CapAdd: []string{"NET_FOO"}}, err: "--cap-add NET_FOO: unknown capability"},
		{name: "unknown drop", h: HostConfig{CapDrop: []string{"cap_bogus"}}, err: "--cap-drop cap_bogus: unknown capability"},
		{name: "unknown add after drop all", h: HostConfig{CapDrop: []string{"ALL"}, CapAdd: []string{"BOGUS"}}, err: "--cap-add BOGUS: unknown capability"},
	}
	if missing != "" {
		tests = append(tests, struct {
			name string
			h    HostConfig
			want []string
			err  string
			need string
		}{name: "add one the host lacks", h: HostConfig{CapAdd: []string{missing}}, err: "--cap-add " + missing + ": this host's capability bounding set does not have it"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.need != "" && !have(tt.need) {
				t.Skipf("this host's bounding set lacks %s", tt.need)
			}
			got, err := capabilities(tt.h)
			checkErr(t, err, tt.err, errdefs.ErrInvalidArgument)
			if err != nil {
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("capabilities(%+v)\n got %q\nwant %q", tt.h, got, tt.want)
			}
		})
	}
}

func TestCapabilitiesAddAllDrop(t *testing.T) {
	got, err := capabilities(HostConfig{CapAdd: []string{"ALL"}, CapDrop: []string{"NET_RAW", "SYS_ADMIN"}})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(got, "CAP_NET_RAW") || slices.Contains(got, "CAP_SYS_ADMIN") {
		t.Errorf("--cap-add ALL --cap-drop NET_RAW,SYS_ADMIN kept them: %q", got)
	}
}

func TestResolveUser(t *testing.T) {
	root := testRootfs(t)
	empty := t.TempDir()
	// /etc/passwd an absolute symlink: followed inside the root.
	linked := t.TempDir()
	writeFile(t, linked, "real/passwd", "svc:x:4321:4321::/srv:/bin/sh\n", 0o644)
	symlink(t, linked, "etc/passwd", "/real/passwd")

	tests := []struct {
		name, rootfs, spec string
		groupAdd           []string
		uid, gid           int
		home               string
		sgids              []int
		err                string
	}{
		{name: "default is root", rootfs: root, spec: "", uid: 0, gid: 0, home: "/root", sgids: []int{}},
		{name: "root by name", rootfs: root, spec: "root", uid: 0, gid: 0, home: "/root", sgids: []int{}},
		{name: "name", rootfs: root, spec: "app", uid: 1000, gid: 1000, home: "/home/app", sgids: []int{10, 29}},
		{name: "uid in passwd", rootfs: root, spec: "1000", uid: 1000, gid: 1000, home: "/home/app", sgids: []int{10, 29}},
		{name: "name:group", rootfs: root, spec: "app:wheel", uid: 1000, gid: 10, home: "/home/app", sgids: []int{}},
		{name: "name:gid", rootfs: root, spec: "daemon:5000", uid: 1, gid: 5000, home: "/usr/sbin", sgids: []int{}},
		{name: "uid not in passwd", rootfs: root, spec: "2000", uid: 2000, gid: 0, home: "/", sgids: []int{}},
		{name: "uid:gid not in files", rootfs: root, spec: "2000:3000", uid: 2000, gid: 3000, home: "/", sgids: []int{}},
		{name: "group-add names and ids", rootfs: root, spec: "daemon", groupAdd: []string{"audio", "4242", "wheel"}, uid: 1, gid: 1, home: "/usr/sbin", sgids: []int{10, 29, 4242}},
		{name: "group-add adds to membership", rootfs: root, spec: "app", groupAdd: []string{"root"}, uid: 1000, gid: 1000, home: "/home/app", sgids: []int{0, 10, 29}},
		{name: "no passwd: root", rootfs: empty, spec: "", uid: 0, gid: 0, home: "/", sgids: []int{}},
		{name: "no passwd: uid", rootfs: empty, spec: "1000:1000", uid: 1000, gid: 1000, home: "/", sgids: []int{}},
		{name: "no group file: numeric group-add", rootfs: empty, spec: "5", groupAdd: []string{"7"}, uid: 5, gid: 0, home: "/", sgids: []int{7}},
		{name: "passwd symlinked inside the root", rootfs: linked, spec: "svc", uid: 4321, gid: 4321, home: "/srv", sgids: []int{}},

		{name: "unknown name", rootfs: root, spec: "nobody", err: `user "nobody"`},
		{name: "unknown group", rootfs: root, spec: "app:nogroup", err: `user "app:nogroup"`},
		{name: "no passwd: name", rootfs: empty, spec: "app", err: `user "app"`},
		{name: "unknown group-add", rootfs: root, spec: "app", groupAdd: []string{"nosuch"}, err: "--group-add"},
		{name: "no group file: named group-add", rootfs: empty, spec: "", groupAdd: []string{"wheel"}, err: "--group-add"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eu, err := resolveUser(tt.rootfs, tt.spec, tt.groupAdd)
			checkErr(t, err, tt.err, errdefs.ErrInvalidArgument)
			if err != nil {
				return
			}
			sgids := slices.Clone(eu.Sgids)
			sort.Ints(sgids)
			if eu.Uid != tt.uid || eu.Gid != tt.gid || eu.Home != tt.home || !slices.Equal(sgids, tt.sgids) {
				t.Errorf("resolveUser(%q, %q) = uid %d gid %d home %q sgids %v; want %d %d %q %v",
					tt.spec, tt.groupAdd, eu.Uid, eu.Gid, eu.Home, sgids, tt.uid, tt.gid, tt.home, tt.sgids)
			}
		})
	}
}

func TestCheckExecutable(t *testing.T) {
	root := testRootfs(t)
	tests := []struct {
		name, argv0 string
		env         []string
		cwd         string
		code        int // 0: runs
		msg         string
	}{
		{name: "absolute", argv0: "/bin/sh", cwd: "/"},
		{name: "default PATH /bin", argv0: "sh", cwd: "/"},
		{name: "default PATH /usr/bin", argv0: "tool", cwd: "/"},
		{name: "PATH goes past a non-executable", argv0: "dual", cwd: "/"},
		{name: "PATH from env", argv0: "run", env: []string{"HOME=/", "PATH=/opt/app"}, cwd: "/"},
		{name: "last PATH wins", argv0: "run", env: []string{"PATH=/nowhere", "PATH=/opt/app:/bin"}, cwd: "/"},
		{name: "empty PATH entry is cwd", argv0: "run", env: []string{"PATH=/bin:"}, cwd: "/opt/app"},
		{name: "relative with ./", argv0: "./run", cwd: "/opt/app"},
		{name: "relative with dir", argv0: "app/run", cwd: "/opt"},
		{name: "symlink inside root", argv0: "/bin/link", cwd: "/"},

		{name: "not executable", argv0: "/bin/notexec", cwd: "/", code: 126, msg: "exec /bin/notexec: permission denied (not an executable file)"},
		{name: "not executable via PATH", argv0: "notexec", cwd: "/", code: 126, msg: "exec /bin/notexec: permission denied"},
		{name: "directory", argv0: "/bin/adir", cwd: "/", code: 126, msg: "exec /bin/adir: permission denied"},
		{name: "directory via PATH", argv0: "adir", cwd: "/", code: 126, msg: "exec /bin/adir: permission denied"},
		{name: "relative not executable", argv0: "./data", cwd: "/opt/app", code: 126, msg: "exec /opt/app/data: permission denied"},
		{name: "missing absolute", argv0: "/bin/nope", cwd: "/", code: 127, msg: "exec /bin/nope: no such file or directory"},
		{name: "missing in PATH", argv0: "nope", cwd: "/", code: 127, msg: `exec: "nope": executable file not found in $PATH`},
		{name: "not in the PATH given", argv0: "sh", env: []string{"PATH=/opt/app"}, cwd: "/", code: 127, msg: `exec: "sh": executable file not found in $PATH`},
		{name: "PATH without cwd", argv0: "run", env: []string{"PATH=/bin"}, cwd: "/opt/app", code: 127, msg: "executable file not found in $PATH"},
		{name: "relative from wrong cwd", argv0: "./run", cwd: "/", code: 127, msg: "exec ./run: no such file or directory"},
		{name: "dangling symlink", argv0: "/bin/dangling", cwd: "/", code: 127, msg: "no such file or directory"},
		{name: "symlink out of the root stays in", argv0: "/bin/escape", cwd: "/", code: 127, msg: "exec /bin/escape: no such file or directory"},
		{name: "dot-dot stays in the root", argv0: "/../../../../bin/true", cwd: "/", code: 127, msg: "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkExecutable(root, tt.argv0, tt.env, tt.cwd)
			if tt.code == 0 {
				if err != nil {
					t.Fatalf("checkExecutable(%q) = %v, want nil", tt.argv0, err)
				}
				return
			}
			var ee *ExecError
			if !errors.As(err, &ee) {
				t.Fatalf("checkExecutable(%q) = %v (%T), want an *ExecError", tt.argv0, err, err)
			}
			if ee.Code != tt.code || !strings.Contains(ee.Error(), tt.msg) || ee.Error() != ee.Msg {
				t.Errorf("checkExecutable(%q) = %d %q, want %d with %q", tt.argv0, ee.Code, ee.Error(), tt.code, tt.msg)
			}
		})
	}
}

func TestCheckExecutableEmptyCommand(t *testing.T) {
	err := checkExecutable(testRootfs(t), "", nil, "/")
	var ee *ExecError
	if !errors.As(err, &ee) || ee.Code != 127 {
		t.Errorf(`checkExecutable("") = %v, want a 127 ExecError`, err)
	}
}

// specContainer is a container as Create records it, for buildSpec.
func specContainer() *Container {
	return &Container{
		ID:   strings.Repeat("ab", 32),
		Path: "/bin/sh", Args: []string{"-c", "exit 0"},
		Config: Config{Hostname: "box", Env: []string{"LANG=C.UTF-8"}},
		HostConfig: HostConfig{
			NetworkMode: "none", Runtime: "berth-runtime",
			LogConfig: LogConfig{Type: "json-file", Config: map[string]string{}},
		},
	}
}

func mountDests(ms []specs.Mount) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Destination)
	}
	return out
}

func findMount(t *testing.T, s *specs.Spec, dst string) specs.Mount {
	t.Helper()
	var found []specs.Mount
	for _, m := range s.Mounts {
		if m.Destination == dst {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d mounts at %s in %q", len(found), dst, mountDests(s.Mounts))
	}
	return found[0]
}

// buildSpec needs only the engine's root (for the /etc files) and binDir
// (for --init): no root privileges, no images.
func TestBuildSpecDefaults(t *testing.T) {
	rootfs := testRootfs(t)
	e := &Engine{root: t.TempDir(), binDir: t.TempDir()}
	c := specContainer()
	s, err := e.buildSpec(c, rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != "1.0.2" || s.Hostname != "box" {
		t.Errorf("version %q hostname %q", s.Version, s.Hostname)
	}
	p := s.Process
	if !slices.Equal(p.Args, []string{"/bin/sh", "-c", "exit 0"}) || p.Cwd != "/" || p.Terminal {
		t.Errorf("process args %q cwd %q terminal %v", p.Args, p.Cwd, p.Terminal)
	}
	wantEnv := []string{"LANG=C.UTF-8", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=box", "HOME=/root"}
	if !slices.Equal(p.Env, wantEnv) {
		t.Errorf("env %q, want %q", p.Env, wantEnv)
	}
	if p.User.UID != 0 || p.User.GID != 0 || len(p.User.AdditionalGids) != 0 {
		t.Errorf("user %+v", p.User)
	}
	caps := slices.Clone(defaultCaps)
	sort.Strings(caps)
	pc := p.Capabilities
	if !slices.Equal(pc.Bounding, caps) || !slices.Equal(pc.Effective, caps) || !slices.Equal(pc.Permitted, caps) || pc.Inheritable != nil || pc.Ambient != nil {
		t.Errorf("capabilities %+v, want bounding, effective and permitted %q", pc, caps)
	}
	if p.NoNewPrivileges {
		t.Error("no-new-privileges is set without --security-opt no-new-privileges (Docker leaves it off)")
	}
	if p.Rlimits != nil {
		t.Errorf("rlimits %+v", p.Rlimits)
	}
	if s.Root.Path != rootfs || s.Root.Readonly {
		t.Errorf("root %+v", s.Root)
	}

	wantMounts := []string{"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}
	if got := mountDests(s.Mounts); !slices.Equal(got, wantMounts) {
		t.Errorf("mounts %q, want %q", got, wantMounts)
	}
	for _, m := range []struct {
		dst, typ string
		opts     []string
	}{
		{"/proc", "proc", []string{"nosuid", "noexec", "nodev"}},
		{"/dev", "tmpfs", []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{"/sys", "sysfs", []string{"nosuid", "noexec", "nodev", "ro"}},
		{"/sys/fs/cgroup", "cgroup", []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		{"/dev/shm", "tmpfs", []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
	} {
		got := findMount(t, s, m.dst)
		if got.Type != m.typ || !slices.Equal(got.Options, m.opts) {
			t.Errorf("mount %s: %+v, want type %s options %q", m.dst, got, m.typ, m.opts)
		}
	}
	for name, dst := range map[string]string{"hostname": "/etc/hostname", "hosts": "/etc/hosts", "resolv.conf": "/etc/resolv.conf"} {
		got := findMount(t, s, dst)
		if got.Type != "bind" || got.Source != filepath.Join(e.root, "containers", c.ID, name) || !slices.Equal(got.Options, []string{"rbind", "rprivate"}) {
			t.Errorf("mount %s: %+v", dst, got)
		}
	}

	l := s.Linux
	if l.CgroupsPath != "/berth/"+c.ID {
		t.Errorf("cgroups path %q", l.CgroupsPath)
	}
	var ns []specs.LinuxNamespaceType
	for _, n := range l.Namespaces {
		if n.Path != "" {
			t.Errorf("namespace %s joins %s", n.Type, n.Path)
		}
		ns = append(ns, n.Type)
	}
	if want := []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.NetworkNamespace}; !slices.Equal(ns, want) {
		t.Errorf("namespaces %q, want %q", ns, want)
	}
	if !slices.Equal(l.MaskedPaths, maskedPaths) || !slices.Equal(l.ReadonlyPaths, readonlyPaths) || !slices.Contains(l.MaskedPaths, "/proc/kcore") || !slices.Contains(l.ReadonlyPaths, "/proc/sys") {
		t.Errorf("masked %q readonly %q", l.MaskedPaths, l.ReadonlyPaths)
	}
	r := l.Resources
	if !reflect.DeepEqual(r.Devices, defaultDeviceRules()) {
		t.Errorf("device rules %+v", r.Devices)
	}
	if d := r.Devices[0]; d.Allow || d.Access != "rwm" || d.Type != "" || d.Major != nil {
		t.Errorf("the first device rule %+v does not deny everything", d)
	}
	if r.Memory != nil || r.CPU != nil || r.Pids != nil {
		t.Errorf("resource limits without flags: %+v", r)
	}
	if l.Devices != nil {
		t.Errorf("devices %+v for an unprivileged container", l.Devices)
	}
	if l.Seccomp == nil || l.Seccomp.DefaultAction != specs.ActErrno || len(l.Seccomp.Syscalls) == 0 {
		t.Errorf("seccomp is not the default profile: %+v", l.Seccomp)
	}
}

func TestBuildSpec(t *testing.T) {
	rootfs := testRootfs(t)
	dir := t.TempDir()
	profile := filepath.Join(dir, "profile.json")
	writeFile(t, dir, "profile.json", `{"defaultAction":"SCMP_ACT_LOG","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}`, 0o644)
	writeFile(t, dir, "bad.json", `{"syscalls":[]}`, 0o644)
	initDir := t.TempDir()
	writeFile(t, initDir, "berth-init", "#!init", 0o755)
	hostAll := func() []string {
		caps, err := capabilities(HostConfig{Privileged: true})
		if err != nil {
			t.Fatal(err)
		}
		return caps
	}()

	tests := []struct {
		name   string
		edit   func(c *Container)
		binDir string
		err    string
		kind   error
		check  func(t *testing.T, s *specs.Spec)
	}{
		{name: "read-only rootfs", edit: func(c *Container) { c.HostConfig.ReadonlyRootfs = true }, check: func(t *testing.T, s *specs.Spec) {
			if !s.Root.Readonly {
				t.Error("root is writable")
			}
		}},
		{name: "memory, cpus, shares, pids", edit: func(c *Container) {
			c.HostConfig.Memory, c.HostConfig.NanoCpus, c.HostConfig.CpuShares, c.HostConfig.PidsLimit = 512<<20, 1_500_000_000, 512, 100
		}, check: func(t *testing.T, s *specs.Spec) {
			r := s.Linux.Resources
			if r.Memory == nil || *r.Memory.Limit != 512<<20 || *r.Memory.Swap != 512<<20 {
				t.Errorf("memory %+v", r.Memory)
			}
			if r.CPU == nil || *r.CPU.Period != 100000 || *r.CPU.Quota != 150000 || *r.CPU.Shares != 512 {
				t.Errorf("cpu %+v", r.CPU)
			}
			if r.Pids == nil || r.Pids.Limit == nil || *r.Pids.Limit != 100 {
				t.Errorf("pids %+v", r.Pids)
			}
		}},
		{name: "cpu shares only", edit: func(c *Container) { c.HostConfig.CpuShares = 2048 }, check: func(t *testing.T, s *specs.Spec) {
			cpu := s.Linux.Resources.CPU
			if cpu == nil || cpu.Quota != nil || cpu.Period != nil || *cpu.Shares != 2048 {
				t.Errorf("cpu %+v", cpu)
			}
		}},
		{name: "quarter cpu", edit: func(c *Container) { c.HostConfig.NanoCpus = 250_000_000 }, check: func(t *testing.T, s *specs.Spec) {
			cpu := s.Linux.Resources.CPU
			if cpu == nil || *cpu.Quota != 25000 || cpu.Shares != nil {
				t.Errorf("cpu %+v", cpu)
			}
		}},
		{name: "unlimited pids", edit: func(c *Container) { c.HostConfig.PidsLimit = -1 }, check: func(t *testing.T, s *specs.Spec) {
			if p := s.Linux.Resources.Pids; p == nil || *p.Limit != -1 {
				t.Errorf("pids %+v", p)
			}
		}},
		{name: "ulimits", edit: func(c *Container) {
			c.HostConfig.Ulimits = []Ulimit{{"nofile", 1024, 2048}, {"core", -1, -1}}
		}, check: func(t *testing.T, s *specs.Spec) {
			want := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 2048}, {Type: "RLIMIT_CORE", Soft: math.MaxUint64, Hard: math.MaxUint64}}
			if !reflect.DeepEqual(s.Process.Rlimits, want) {
				t.Errorf("rlimits %+v, want %+v", s.Process.Rlimits, want)
			}
		}},
		{name: "no-new-privileges", edit: func(c *Container) { c.HostConfig.SecurityOpt = []string{"no-new-privileges"} }, check: func(t *testing.T, s *specs.Spec) {
			if !s.Process.NoNewPrivileges {
				t.Error("no-new-privileges not set")
			}
		}},
		{name: "no-new-privileges:true", edit: func(c *Container) { c.HostConfig.SecurityOpt = []string{"no-new-privileges:true"} }, check: func(t *testing.T, s *specs.Spec) {
			if !s.Process.NoNewPrivileges {
				t.Error("no-new-privileges not set")
			}
		}},
		{name: "no-new-privileges=false", edit: func(c *Container) { c.HostConfig.SecurityOpt = []string{"no-new-privileges=false"} }, check: func(t *testing.T, s *specs.Spec) {
			if s.Process.NoNewPrivileges {
				t.Error("no-new-privileges set")
			}
		}},
		{name: "seccomp unconfined", edit: func(c *Container) { c.HostConfig.SecurityOpt = []string{"seccomp=unconfined"} }, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp != nil {
				t.Errorf("seccomp %+v", s.Linux.Seccomp.DefaultAction)
			}
		}},
		{name: "seccomp file", edit: func(c *Container) { c.HostConfig.SecurityOpt = []string{"seccomp=" + profile} }, check: func(t *testing.T, s *specs.Spec) {
			sc := s.Linux.Seccomp
			if sc == nil || sc.DefaultAction != specs.ActLog || len(sc.Syscalls) != 1 || !slices.Equal(sc.Syscalls[0].Names, []string{"mkdir"}) {
				t.Errorf("seccomp %+v", sc)
			}
		}},
		{name: "seccomp file missing", edit: func(c *Container) { c.HostConfig.SecurityOpt = []string{"seccomp=" + filepath.Join(dir, "nope.json")} }, err: "--security-opt seccomp=", kind: errdefs.ErrInvalidArgument},
		{name: "seccomp file not a profile", edit: func(c *Container) { c.HostConfig.SecurityOpt = []string{"seccomp=" + filepath.Join(dir, "bad.json")} }, err: "no defaultAction", kind: errdefs.ErrInvalidArgument},
		{name: "cap-drop ALL", edit: func(c *Container) { c.HostConfig.CapDrop = []string{"ALL"} }, check: func(t *testing.T, s *specs.Spec) {
			if pc := s.Process.Capabilities; len(pc.Bounding) != 0 || len(pc.Effective) != 0 || len(pc.Permitted) != 0 {
				t.Errorf("capabilities %+v", pc)
			}
			if s.Linux.Seccomp == nil {
				t.Error("no seccomp profile")
			}
		}},
		{name: "privileged", edit: func(c *Container) { c.HostConfig.Privileged = true }, check: func(t *testing.T, s *specs.Spec) {
			if !slices.Equal(s.Process.Capabilities.Bounding, hostAll) {
				t.Errorf("capabilities %q, want %q", s.Process.Capabilities.Bounding, hostAll)
			}
			l := s.Linux
			if l.MaskedPaths != nil || l.ReadonlyPaths != nil || l.Seccomp != nil {
				t.Errorf("masked %q readonly %q seccomp %v", l.MaskedPaths, l.ReadonlyPaths, l.Seccomp != nil)
			}
			if !reflect.DeepEqual(l.Resources.Devices, []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}) {
				t.Errorf("device rules %+v", l.Resources.Devices)
			}
			if sys := findMount(t, s, "/sys"); !slices.Contains(sys.Options, "rw") || slices.Contains(sys.Options, "ro") {
				t.Errorf("/sys %+v", sys)
			}
			for _, d := range l.Devices {
				switch d.Path {
				case "/dev/console", "/dev/ptmx", "/dev/tty":
					t.Errorf("host device %s passed on", d.Path)
				}
			}
		}},
		{name: "host network", edit: func(c *Container) { c.HostConfig.NetworkMode = "host" }, check: func(t *testing.T, s *specs.Spec) {
			for _, n := range s.Linux.Namespaces {
				if n.Type == specs.NetworkNamespace {
					t.Error("a network namespace with --network host")
				}
			}
			if len(s.Linux.Namespaces) != 4 {
				t.Errorf("namespaces %+v", s.Linux.Namespaces)
			}
		}},
		{name: "tty", edit: func(c *Container) { c.Config.Tty = true }, check: func(t *testing.T, s *specs.Spec) {
			if !s.Process.Terminal || !slices.Contains(s.Process.Env, "TERM=xterm") {
				t.Errorf("terminal %v env %q", s.Process.Terminal, s.Process.Env)
			}
		}},
		{name: "the user's PATH, HOME and TERM", edit: func(c *Container) {
			c.Config.Tty = true
			c.Config.Env = []string{"PATH=/opt/app", "HOME=/data", "TERM=vt100"}
			c.Path = "run"
		}, check: func(t *testing.T, s *specs.Spec) {
			want := []string{"PATH=/opt/app", "HOME=/data", "TERM=vt100", "HOSTNAME=box"}
			if !slices.Equal(s.Process.Env, want) {
				t.Errorf("env %q, want %q", s.Process.Env, want)
			}
			if s.Process.Args[0] != "run" {
				t.Errorf("args %q: argv0 is given to the runtime as the user wrote it", s.Process.Args)
			}
		}},
		{name: "user, groups and home", edit: func(c *Container) {
			c.Config.User = "app"
			c.HostConfig.GroupAdd = []string{"4242"}
		}, check: func(t *testing.T, s *specs.Spec) {
			u := s.Process.User
			gids := slices.Clone(u.AdditionalGids)
			slices.Sort(gids)
			if u.UID != 1000 || u.GID != 1000 || !slices.Equal(gids, []uint32{10, 29, 4242}) {
				t.Errorf("user %+v", u)
			}
			if !slices.Contains(s.Process.Env, "HOME=/home/app") {
				t.Errorf("env %q", s.Process.Env)
			}
		}},
		{name: "working dir", edit: func(c *Container) { c.Config.WorkingDir = "/opt/app"; c.Path = "./run" }, check: func(t *testing.T, s *specs.Spec) {
			if s.Process.Cwd != "/opt/app" {
				t.Errorf("cwd %q", s.Process.Cwd)
			}
		}},
		{name: "mounts", edit: func(c *Container) {
			c.Mounts = []Mount{
				{Type: "bind", Source: "/srv/data", Destination: "/data", RW: true},
				{Type: "bind", Source: "/srv/conf", Destination: "/etc/app", Mode: "ro"},
				{Type: "bind", Source: "/srv/ctx", Destination: "/ctx", Mode: "ro", RecursiveReadOnly: true},
				{Type: "volume", Name: "cache", Source: "/var/lib/berth/volumes/cache/_data", Destination: "/cache", RW: true},
				{Type: "tmpfs", Destination: "/run", RW: true, Options: "size=64m,mode=1777"},
				{Type: "tmpfs", Destination: "/tmp", RW: true},
			}
		}, check: func(t *testing.T, s *specs.Spec) {
			want := []specs.Mount{
				{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "rprivate"}},
				{Destination: "/etc/app", Type: "bind", Source: "/srv/conf", Options: []string{"rbind", "rprivate", "ro"}},
				{Destination: "/ctx", Type: "bind", Source: "/srv/ctx", Options: []string{"rbind", "rprivate", "ro", "rro"}},
				{Destination: "/cache", Type: "bind", Source: "/var/lib/berth/volumes/cache/_data", Options: []string{"rbind", "rprivate"}},
				{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "size=64m", "mode=1777"}},
				{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev"}},
			}
			// The user's mounts come after the defaults and the /etc files, so they win.
			if got := s.Mounts[len(s.Mounts)-len(want):]; !reflect.DeepEqual(got, want) {
				t.Errorf("mounts\n got %+v\nwant %+v", got, want)
			}
			if len(s.Mounts) != 10+len(want) {
				t.Errorf("mounts %q", mountDests(s.Mounts))
			}
		}},
		{name: "init", binDir: initDir, edit: func(c *Container) { c.HostConfig.Init = true }, check: func(t *testing.T, s *specs.Spec) {
			if !slices.Equal(s.Process.Args, []string{"/dev/init", "--", "/bin/sh", "-c", "exit 0"}) {
				t.Errorf("args %q", s.Process.Args)
			}
			m := findMount(t, s, "/dev/init")
			if m.Source != filepath.Join(initDir, "berth-init") || m.Type != "bind" || !slices.Contains(m.Options, "ro") {
				t.Errorf("init mount %+v", m)
			}
		}},
		{name: "init missing", edit: func(c *Container) { c.HostConfig.Init = true }, err: "--init needs", kind: errdefs.ErrNotFound},
		{name: "unknown capability", edit: func(c *Container) { c.HostConfig.CapAdd = []string{"BOGUS"} }, err: "--cap-add BOGUS", kind: errdefs.ErrInvalidArgument},
		{name: "unknown user", edit: func(c *Container) { c.Config.User = "nobody" }, err: `user "nobody"`, kind: errdefs.ErrInvalidArgument},
		{name: "command not found", edit: func(c *Container) { c.Path = "nope" }, err: `exec: "nope": executable file not found in $PATH`},
		{name: "command not executable", edit: func(c *Container) { c.Path = "/bin/notexec" }, err: "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			binDir := tt.binDir
			if binDir == "" {
				binDir = t.TempDir()
			}
			e := &Engine{root: t.TempDir(), binDir: binDir}
			c := specContainer()
			tt.edit(c)
			s, err := e.buildSpec(c, rootfs)
			checkErr(t, err, tt.err, tt.kind)
			if err == nil {
				tt.check(t, s)
			}
		})
	}
}

func TestBuildSpecExecErrorCodes(t *testing.T) {
	rootfs := testRootfs(t)
	e := &Engine{root: t.TempDir(), binDir: t.TempDir()}
	for path, code := range map[string]int{"nope": 127, "/bin/nope": 127, "/bin/notexec": 126, "/bin/adir": 126} {
		c := specContainer()
		c.Path = path
		_, err := e.buildSpec(c, rootfs)
		var ee *ExecError
		if !errors.As(err, &ee) || ee.Code != code {
			t.Errorf("buildSpec with %s: %v, want an ExecError %d", path, err, code)
		}
	}
}

func TestBuildSpecReadonlyTmpfs(t *testing.T) {
	e := &Engine{root: t.TempDir(), binDir: t.TempDir()}
	c := specContainer()
	m, err := parseMount("type=tmpfs,target=/x,readonly")
	if err != nil {
		t.Fatal(err)
	}
	c.Mounts = []Mount{m}
	s, err := e.buildSpec(c, testRootfs(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := findMount(t, s, "/x"); !slices.Contains(got.Options, "ro") {
		t.Errorf("readonly tmpfs mounted with %q", got.Options)
	}
}

func TestBuildSpecUserHostname(t *testing.T) {
	e := &Engine{root: t.TempDir(), binDir: t.TempDir()}
	c := specContainer()
	c.Config.Env = []string{"HOSTNAME=mine"}
	s, err := e.buildSpec(c, testRootfs(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range s.Process.Env {
		if strings.HasPrefix(kv, "HOSTNAME=") {
			got = append(got, kv)
		}
	}
	if !slices.Equal(got, []string{"HOSTNAME=mine"}) {
		t.Errorf("HOSTNAME entries %q, want only the user's", got)
	}
}

func TestWriteBundle(t *testing.T) {
	e := &Engine{root: t.TempDir(), binDir: t.TempDir()}
	s, err := e.buildSpec(specContainer(), testRootfs(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "bundle", "nested")
	if err := writeBundle(dir, s); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back specs.Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	again, err := json.MarshalIndent(&back, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(b) || back.Process.Args[0] != "/bin/sh" || back.Root.Path != s.Root.Path || len(back.Mounts) != len(s.Mounts) {
		t.Errorf("config.json does not read back as the spec written:\n%s", b)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "config.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode %v", fi.Mode().Perm())
	}
}

func TestWriteEtc(t *testing.T) {
	e := &Engine{root: t.TempDir()}
	c := specContainer()
	dir := e.dir(c.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if err := e.writeEtc(c); err != nil {
		t.Fatal(err)
	}
	if got := read("hostname"); got != "box\n" {
		t.Errorf("hostname %q", got)
	}
	hosts := read("hosts")
	if !strings.HasPrefix(hosts, "127.0.0.1\tlocalhost\n") || !strings.HasSuffix(hosts, "127.0.1.1\tbox\n") {
		t.Errorf("hosts %q", hosts)
	}
	if host, err := os.ReadFile("/etc/resolv.conf"); err == nil && read("resolv.conf") != string(host) {
		t.Errorf("resolv.conf %q is not the host's", read("resolv.conf"))
	}

	// On a restart hostname is rewritten, hosts and resolv.conf kept: the
	// container may have changed them.
	os.WriteFile(filepath.Join(dir, "hosts"), []byte("10.0.0.1 db\n"), 0o644)
	c.Config.Hostname = "renamed"
	if err := e.writeEtc(c); err != nil {
		t.Fatal(err)
	}
	if read("hostname") != "renamed\n" || read("hosts") != "10.0.0.1 db\n" {
		t.Errorf("after a restart: hostname %q hosts %q", read("hostname"), read("hosts"))
	}

	// --network host: the host's hosts file.
	c2 := specContainer()
	c2.ID = strings.Repeat("cd", 32)
	c2.HostConfig.NetworkMode = "host"
	os.MkdirAll(e.dir(c2.ID), 0o700)
	if err := e.writeEtc(c2); err != nil {
		t.Fatal(err)
	}
	if host, err := os.ReadFile("/etc/hosts"); err == nil {
		got, _ := os.ReadFile(filepath.Join(e.dir(c2.ID), "hosts"))
		if string(got) != string(host) {
			t.Errorf("host network hosts %q, want the host's", got)
		}
	}
}

func TestHostDevices(t *testing.T) {
	fi, err := os.Lstat("/dev/null")
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Skip("no /dev/null character device here")
	}
	var null *specs.LinuxDevice
	devs := hostDevices()
	for i := range devs {
		if devs[i].Path == "/dev/null" {
			null = &devs[i]
		}
	}
	if null == nil || null.Type != "c" || null.Major != 1 || null.Minor != 3 || null.FileMode == nil || *null.FileMode != fi.Mode().Perm() {
		t.Errorf("/dev/null in hostDevices(): %+v (of %d devices)", null, len(devs))
	}
	for _, d := range devs {
		switch d.Path {
		case "/dev/console", "/dev/ptmx", "/dev/tty":
			t.Errorf("host device %s listed", d.Path)
		}
		if strings.HasPrefix(d.Path, "/dev/pts/") {
			t.Errorf("%s listed: /dev/pts is the container's own", d.Path)
		}
	}
}

// TestBuildSpecSeccompProgram: the profile also travels compiled, in crun's
// annotation, from a cache in the store; unconfined has neither.
func TestBuildSpecSeccompProgram(t *testing.T) {
	e := &Engine{root: t.TempDir(), binDir: t.TempDir()}
	c := specContainer()
	s, err := e.buildSpec(c, testRootfs(t))
	if err != nil {
		t.Fatal(err)
	}
	prog, err := base64.StdEncoding.DecodeString(s.Annotations[seccomp.BPFAnnotation])
	if err != nil || len(prog) == 0 || len(prog)%8 != 0 || s.Linux.Seccomp == nil {
		t.Fatalf("annotation %d bytes (%v), linux.seccomp %v: want the compiled default profile beside the profile", len(prog), err, s.Linux.Seccomp != nil)
	}
	kept, _ := filepath.Glob(filepath.Join(e.root, "seccomp", "*.bpf"))
	if len(kept) != 1 {
		t.Fatalf("cache holds %v, want one program", kept)
	}
	c.HostConfig.SecurityOpt = []string{"seccomp=unconfined"}
	s, err = e.buildSpec(c, testRootfs(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Annotations[seccomp.BPFAnnotation]; ok || s.Linux.Seccomp != nil {
		t.Fatal("seccomp=unconfined still has a filter")
	}
}
