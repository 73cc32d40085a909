package rootfs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestStandardMountsAndDev(t *testing.T) {
	_, rootfs := bundle(t)
	spec := baseSpec()
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		specs.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=700", "size=1m"}},
	)
	rep := runChild(t, childConfig{
		Spec: spec, Rootfs: rootfs, Console: true,
		Stat:  []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/ptmx", "/dev/fd", "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/core", "/dev/console", "/run", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory"},
		Write: []string{"/sys/fs/cgroup/newfile", "/run/x", "/sys/kernel/newfile"},
		List:  []string{"/"},
	})
	mustSucceed(t, rep)

	requireMount(t, rep, "/proc", "proc", "nosuid", "noexec", "nodev")
	requireMount(t, rep, "/sys", "sysfs", "ro", "nosuid")
	requireMount(t, rep, "/dev", "tmpfs", "nosuid", "mode=755")
	requireMount(t, rep, "/dev/pts", "devpts", "ptmxmode=666", "mode=620")
	requireMount(t, rep, "/dev/shm", "tmpfs", "nodev", "size=65536k")
	requireMount(t, rep, "/dev/mqueue", "mqueue", "nosuid")
	requireMount(t, rep, "/run", "tmpfs", "mode=700", "size=1024k")
	requireMount(t, rep, "/sys/fs/cgroup", "tmpfs", "ro")
	requireMount(t, rep, "/", hostFSType(t, rootfs))

	// cgroup v1 hierarchies (or one cgroup2 on a unified host), read-only,
	// each a real cgroup mount rooted at the child's cgroup namespace.
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		hs, err := hostHierarchies()
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) == 0 {
			t.Fatal("host has no cgroup hierarchies under /sys/fs/cgroup")
		}
		for _, h := range hs {
			in := requireMount(t, rep, "/sys/fs/cgroup/"+h.name, h.fstype, "ro")
			if in.Root != "/" {
				t.Errorf("%s: root %s, want / (own cgroup namespace)", h.name, in.Root)
			}
		}
		if s := rep.Stat["/sys/fs/cgroup/memory"]; s.Type != "dir" {
			t.Errorf("/sys/fs/cgroup/memory: %+v", s)
		}
	}
	if e := rep.Write["/sys/fs/cgroup/newfile"]; !isErrno(e, unix.EROFS) {
		t.Errorf("write in read-only cgroup tmpfs: %q, want EROFS", e)
	}
	if e := rep.Write["/sys/kernel/newfile"]; e == "" {
		t.Error("write in read-only /sys succeeded")
	}
	if e := rep.Write["/run/x"]; e != "" {
		t.Errorf("write in /run tmpfs: %s", e)
	}

	devs := map[string][2]uint32{"/dev/null": {1, 3}, "/dev/zero": {1, 5}, "/dev/full": {1, 7}, "/dev/random": {1, 8}, "/dev/urandom": {1, 9}, "/dev/tty": {5, 0}}
	for p, mm := range devs {
		s := rep.Stat[p]
		if s.Type != "char" || s.Major != mm[0] || s.Minor != mm[1] || s.Perm != 0o666 || s.UID != 0 || s.GID != 0 {
			t.Errorf("%s: %+v, want char %d:%d 0666 root:root", p, s, mm[0], mm[1])
		}
	}
	links := map[string]string{"/dev/ptmx": "pts/ptmx", "/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2", "/dev/core": "/proc/kcore"}
	for p, want := range links {
		if s := rep.Stat[p]; s.Type != "symlink" || s.Link != want {
			t.Errorf("%s: %+v, want symlink to %s", p, s, want)
		}
	}
	// The console is the pty slave bound over a file the runtime created.
	if s := rep.Stat["/dev/console"]; s.Type != "char" || s.Major < 136 || s.Major > 143 {
		t.Errorf("/dev/console: %+v, want a pty slave (char 136-143:n)", s)
	}
	requireMount(t, rep, "/dev/console", "devpts")
	// stdin was the host's /dev/null; Finalize swapped in the container's.
	if rep.Stdin.Type != "char" || rep.Stdin.Major != 1 || rep.Stdin.Minor != 3 {
		t.Errorf("stdin after Finalize: %+v", rep.Stdin)
	}
	if !slices.Contains(rep.List["/"], "bin") || slices.Contains(rep.List["/"], "work") {
		t.Errorf("/ inside is not the rootfs: %v", rep.List["/"])
	}
}

func TestBindMounts(t *testing.T) {
	bundleDir, rootfs := bundle(t)
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "hello"), []byte("from host"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostFile := filepath.Join(t.TempDir(), "file.conf")
	if err := os.WriteFile(hostFile, []byte("conf"), 0o644); err != nil {
		t.Fatal(err)
	}
	rwDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(bundleDir, "rel"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundleDir, "rel", "r"), []byte("relative"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(rootfs, "opt/data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "opt/data/f"), []byte("image data"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(rootfs, "opt/data/f"), 7, 8); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("data/f", filepath.Join(rootfs, "opt/link")); err != nil {
		t.Fatal(err)
	}
	spec := baseSpec()
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Destination: "/mnt/ro", Type: "bind", Source: hostDir, Options: []string{"rbind", "ro", "nosuid", "nodev"}},
		specs.Mount{Destination: "/etc/app/file.conf", Source: hostFile, Options: []string{"bind", "ro"}},
		specs.Mount{Destination: "/mnt/rw", Source: rwDir, Options: []string{"bind", "noexec", "noatime"}},
		specs.Mount{Destination: "/mnt/rel", Type: "bind", Source: "rel", Options: []string{"rbind"}},
		// A tree with a submount, bound twice from inside the rootfs: "ro"
		// covers only the top mount, "rro" every mount of the tree.
		specs.Mount{Destination: "/tree", Type: "tmpfs", Source: "tmpfs"},
		specs.Mount{Destination: "/tree/sub", Type: "tmpfs", Source: "tmpfs"},
		specs.Mount{Destination: "/top-ro", Source: filepath.Join(rootfs, "tree"), Options: []string{"rbind", "ro"}},
		specs.Mount{Destination: "/all-ro", Source: filepath.Join(rootfs, "tree"), Options: []string{"rbind", "rro", "rnosuid"}},
		// Propagation options apply to the new mount.
		specs.Mount{Destination: "/shared", Type: "tmpfs", Source: "tmpfs", Options: []string{"shared"}},
		specs.Mount{Destination: "/unbindable", Type: "tmpfs", Source: "tmpfs", Options: []string{"unbindable"}},
		specs.Mount{Destination: "/slave", Source: filepath.Join(rootfs, "shared"), Options: []string{"rbind", "slave"}},
		// tmpcopyup keeps the image's content visible on the new tmpfs.
		specs.Mount{Destination: "/opt", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup", "mode=755"}},
	)
	rep := runChild(t, childConfig{
		Spec: spec, Rootfs: rootfs,
		Read:  []string{"/mnt/ro/hello", "/etc/app/file.conf", "/mnt/rel/r", "/opt/data/f", "/opt/link"},
		Write: []string{"/mnt/ro/new", "/etc/app/file.conf", "/mnt/rw/new", "/top-ro/x", "/top-ro/sub/x", "/all-ro/x", "/all-ro/sub/x", "/opt/new"},
		Stat:  []string{"/opt/data/f"},
	})
	mustSucceed(t, rep)
	if r := rep.Read["/mnt/ro/hello"]; r.Content != "from host" {
		t.Errorf("/mnt/ro/hello: %+v", r)
	}
	if r := rep.Read["/etc/app/file.conf"]; r.Content != "conf" {
		t.Errorf("/etc/app/file.conf: %+v", r)
	}
	if r := rep.Read["/mnt/rel/r"]; r.Content != "relative" {
		t.Errorf("bundle-relative bind source: %+v", r)
	}
	requireMount(t, rep, "/mnt/ro", hostFSType(t, hostDir), "ro", "nosuid", "nodev")
	requireMount(t, rep, "/mnt/rw", hostFSType(t, rwDir), "rw", "noexec", "noatime")
	for _, p := range []string{"/mnt/ro/new", "/etc/app/file.conf", "/top-ro/x", "/all-ro/x", "/all-ro/sub/x"} {
		if e := rep.Write[p]; !isErrno(e, unix.EROFS) {
			t.Errorf("write %s: %q, want EROFS", p, e)
		}
	}
	for _, p := range []string{"/mnt/rw/new", "/top-ro/sub/x", "/opt/new"} {
		if e := rep.Write[p]; e != "" {
			t.Errorf("write %s: %s", p, e)
		}
	}
	if b, err := os.ReadFile(filepath.Join(rwDir, "new")); err != nil || string(b) != "written from inside" {
		t.Errorf("rw bind write not on the host: %q %v", b, err)
	}
	requireMount(t, rep, "/all-ro/sub", "tmpfs", "ro", "nosuid")
	requireMount(t, rep, "/top-ro/sub", "tmpfs", "rw")
	if in := mountAt(rep, "/shared"); in == nil || !strings.Contains(in.Optional, "shared:") {
		t.Errorf("/shared propagation: %+v", in)
	}
	if in := mountAt(rep, "/unbindable"); in == nil || !strings.Contains(in.Optional, "unbindable") {
		t.Errorf("/unbindable propagation: %+v", in)
	}
	if in := mountAt(rep, "/slave"); in == nil || !strings.Contains(in.Optional, "master:") {
		t.Errorf("/slave propagation: %+v", in)
	}
	requireMount(t, rep, "/opt", "tmpfs", "mode=755")
	if r := rep.Read["/opt/data/f"]; r.Content != "image data" {
		t.Errorf("tmpcopyup: /opt/data/f = %+v", r)
	}
	if r := rep.Read["/opt/link"]; r.Content != "image data" {
		t.Errorf("tmpcopyup: /opt/link = %+v", r)
	}
	if s := rep.Stat["/opt/data/f"]; s.Perm != 0o640 || s.UID != 7 || s.GID != 8 {
		t.Errorf("tmpcopyup kept no owner/mode: %+v", s)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "opt", "new")); !os.IsNotExist(err) {
		t.Errorf("write to tmpcopyup tmpfs reached the image: %v", err)
	}
}

func TestReadonlyAndMaskedPaths(t *testing.T) {
	_, rootfs := bundle(t)
	if err := os.WriteFile(filepath.Join(rootfs, "etc/hostname"), []byte("secret-host"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(rootfs, "root/.ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "root/.ssh/id"), []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A masked path reached through a symlink is masked where the symlink
	// points inside the root.
	if err := os.Symlink("/etc/hostname", filepath.Join(rootfs, "hostname-link")); err != nil {
		t.Fatal(err)
	}
	spec := baseSpec()
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
	spec.Linux.ReadonlyPaths = []string{"/etc", "/proc/sys", "/does/not/exist"}
	spec.Linux.MaskedPaths = []string{"/etc/hostname", "/root", "/proc/kcore", "/proc/acpi", "/nope"}
	rep := runChild(t, childConfig{
		Spec: spec, Rootfs: rootfs,
		Read:  []string{"/etc/hostname", "/etc/passwd", "/proc/kcore", "/hostname-link"},
		Write: []string{"/etc/new", "/tmp/ok", "/root/new", "/proc/sys/kernel/hostname", "/bin/new"},
		List:  []string{"/root"},
	})
	mustSucceed(t, rep)
	if e := rep.Write["/etc/new"]; !isErrno(e, unix.EROFS) {
		t.Errorf("write in readonly path /etc: %q", e)
	}
	if e := rep.Write["/proc/sys/kernel/hostname"]; e == "" {
		t.Error("write to read-only /proc/sys succeeded")
	}
	for _, p := range []string{"/tmp/ok", "/bin/new"} {
		if e := rep.Write[p]; e != "" {
			t.Errorf("write %s: %s", p, e)
		}
	}
	if r := rep.Read["/etc/passwd"]; !strings.HasPrefix(r.Content, "root:") {
		t.Errorf("/etc/passwd under readonly /etc: %+v", r)
	}
	for _, p := range []string{"/etc/hostname", "/hostname-link"} {
		if r := rep.Read[p]; r.Content != "" || r.Err != "" {
			t.Errorf("masked file %s: %+v, want empty", p, r)
		}
	}
	if r := rep.Read["/proc/kcore"]; r.Content != "" {
		t.Errorf("masked /proc/kcore readable: %d bytes", len(r.Content))
	}
	if names := rep.List["/root"]; len(names) != 0 {
		t.Errorf("masked /root lists %v", names)
	}
	if e := rep.Write["/root/new"]; !isErrno(e, unix.EROFS) {
		t.Errorf("write in masked dir: %q, want EROFS", e)
	}
	requireMount(t, rep, "/root", "tmpfs", "ro")
	requireMount(t, rep, "/etc", hostFSType(t, rootfs), "ro")
	in := requireMount(t, rep, "/etc/hostname", "tmpfs")
	if in.Root != "/null" {
		t.Errorf("/etc/hostname masked with %s from %s, want the container's /dev/null", in.Root, in.FSType)
	}
	if requireMount(t, rep, "/proc/acpi", "tmpfs", "ro") == nil {
		t.Error("/proc/acpi not masked")
	}
}

func TestDevices(t *testing.T) {
	_, rootfs := bundle(t)
	u, g := uint32(1000), uint32(1001)
	spec := baseSpec()
	spec.Linux.Devices = []specs.LinuxDevice{
		{Path: "/dev/mydev", Type: "c", Major: 1, Minor: 5, FileMode: fileMode(0o640), UID: &u, GID: &g},
		{Path: "/dev/loopX", Type: "b", Major: 7, Minor: 200, FileMode: fileMode(0o600)},
		{Path: "/dev/pipe", Type: "p", FileMode: fileMode(0o604)},
		{Path: "/dev/deep/dir/node", Type: "u", Major: 1, Minor: 7},
		// Overrides the default /dev/null.
		{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: fileMode(0o660), GID: &g},
	}
	rep := runChild(t, childConfig{
		Spec: spec, Rootfs: rootfs,
		Stat: []string{"/dev/mydev", "/dev/loopX", "/dev/pipe", "/dev/deep/dir/node", "/dev/null", "/dev/zero"},
	})
	mustSucceed(t, rep)
	want := map[string]statResult{
		"/dev/mydev":         {Type: "char", Perm: 0o640, UID: 1000, GID: 1001, Major: 1, Minor: 5},
		"/dev/loopX":         {Type: "block", Perm: 0o600, Major: 7, Minor: 200},
		"/dev/pipe":          {Type: "fifo", Perm: 0o604},
		"/dev/deep/dir/node": {Type: "char", Perm: 0o666, Major: 1, Minor: 7},
		"/dev/null":          {Type: "char", Perm: 0o660, GID: 1001, Major: 1, Minor: 3},
		"/dev/zero":          {Type: "char", Perm: 0o666, Major: 1, Minor: 5},
	}
	for p, w := range want {
		if got := rep.Stat[p]; got != w {
			t.Errorf("%s: %+v, want %+v", p, got, w)
		}
	}
}

func TestUserNSDevicesAreBound(t *testing.T) {
	_, rootfs := bundle(t)
	spec := baseSpec()
	rep := runChild(t, childConfig{Spec: spec, Rootfs: rootfs, UserNS: true, Stat: []string{"/dev/null", "/dev/tty"}})
	mustSucceed(t, rep)
	for _, p := range []string{"/dev/null", "/dev/tty"} {
		requireMount(t, rep, p, hostFSType(t, p))
		if s := rep.Stat[p]; s.Type != "char" {
			t.Errorf("%s: %+v", p, s)
		}
	}
}

func TestReadonlyRoot(t *testing.T) {
	_, rootfs := bundle(t)
	spec := baseSpec()
	spec.Root.Readonly = true
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
	rep := runChild(t, childConfig{Spec: spec, Rootfs: rootfs, Write: []string{"/newfile", "/etc/newfile", "/tmp/ok", "/dev/shm/ok"}})
	mustSucceed(t, rep)
	for _, p := range []string{"/newfile", "/etc/newfile"} {
		if e := rep.Write[p]; !isErrno(e, unix.EROFS) {
			t.Errorf("write %s on a read-only root: %q", p, e)
		}
	}
	for _, p := range []string{"/tmp/ok", "/dev/shm/ok"} {
		if e := rep.Write[p]; e != "" {
			t.Errorf("write %s: %s", p, e)
		}
	}
	requireMount(t, rep, "/", hostFSType(t, rootfs), "ro")
}

func TestReadonlyDev(t *testing.T) {
	_, rootfs := bundle(t)
	spec := baseSpec()
	spec.Mounts[1].Options = append(spec.Mounts[1].Options, "ro")
	rep := runChild(t, childConfig{Spec: spec, Rootfs: rootfs, Write: []string{"/dev/new"}, Stat: []string{"/dev/null"}})
	mustSucceed(t, rep)
	if e := rep.Write["/dev/new"]; !isErrno(e, unix.EROFS) {
		t.Errorf("write in read-only /dev: %q", e)
	}
	if s := rep.Stat["/dev/null"]; s.Type != "char" {
		t.Errorf("devices missing on a read-only /dev: %+v", s)
	}
	requireMount(t, rep, "/dev", "tmpfs", "ro")
}

func TestNoPivot(t *testing.T) {
	_, rootfs := bundle(t)
	spec := baseSpec()
	spec.Linux.MaskedPaths = []string{"/etc/hostname"}
	rep := runChild(t, childConfig{Spec: spec, Rootfs: rootfs, NoPivot: true, List: []string{"/"}, Read: []string{"/etc/passwd"}, Stat: []string{"/dev/null"}})
	mustSucceed(t, rep)
	if !slices.Contains(rep.List["/"], "bin") || slices.Contains(rep.List["/"], "work") {
		t.Errorf("/ is not the rootfs: %v", rep.List["/"])
	}
	if r := rep.Read["/etc/passwd"]; !strings.HasPrefix(r.Content, "root:") {
		t.Errorf("/etc/passwd: %+v", r)
	}
	requireMount(t, rep, "/proc", "proc")
	requireMount(t, rep, "/etc/hostname", "tmpfs")
	for _, in := range rep.Mounts {
		if in.FSType == "proc" && in.Mountpoint != "/proc" {
			t.Errorf("host procfs still visible at %s", in.Mountpoint)
		}
	}
}

// A destination that is (or crosses) a symlink to a host path is resolved
// inside the rootfs: the mount lands there and the host path is untouched.
func TestHostileDestinationSymlink(t *testing.T) {
	_, rootfs := bundle(t)
	hostDir := t.TempDir()
	hostFile := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(hostFile, []byte("host content"), 0o644); err != nil {
		t.Fatal(err)
	}
	srcFile := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(srcFile, []byte("bound"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostDir2 := t.TempDir()
	for link, target := range map[string]string{"evil": hostDir, "evilfile": hostFile, "up": "../../../../../../.."} {
		if err := os.Symlink(target, filepath.Join(rootfs, link)); err != nil {
			t.Fatal(err)
		}
	}
	spec := baseSpec()
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Destination: "/evil", Type: "tmpfs", Source: "tmpfs"},
		specs.Mount{Destination: "/evilfile", Source: srcFile, Options: []string{"bind"}},
		specs.Mount{Destination: "/up" + hostDir2, Type: "tmpfs", Source: "tmpfs"},
		specs.Mount{Destination: "/../../.." + hostDir2 + "/x", Type: "tmpfs", Source: "tmpfs"},
	)
	rep := runChild(t, childConfig{
		Spec: spec, Rootfs: rootfs,
		Write: []string{"/evil/marker", hostDir2 + "/marker"},
		Read:  []string{"/evilfile"},
	})
	mustSucceed(t, rep)
	if e := rep.Write["/evil/marker"]; e != "" {
		t.Fatalf("write through /evil: %s", e)
	}
	requireMount(t, rep, hostDir, "tmpfs")
	requireMount(t, rep, hostDir2, "tmpfs")
	requireMount(t, rep, hostDir2+"/x", "tmpfs")
	if r := rep.Read["/evilfile"]; r.Content != "bound" {
		t.Errorf("/evilfile: %+v", r)
	}
	if ents, err := os.ReadDir(hostDir); err != nil || len(ents) != 0 {
		t.Errorf("host dir touched: %v %v", ents, err)
	}
	if ents, err := os.ReadDir(hostDir2); err != nil || len(ents) != 0 {
		t.Errorf("host dir 2 touched: %v %v", ents, err)
	}
	if b, _ := os.ReadFile(hostFile); string(b) != "host content" {
		t.Errorf("host file changed: %q", b)
	}
	// The mount points were created inside the rootfs.
	if fi, err := os.Stat(filepath.Join(rootfs, hostDir)); err != nil || !fi.IsDir() {
		t.Errorf("mount point not created inside the rootfs: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(rootfs, hostFile)); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("file mount point not created inside the rootfs: %v", err)
	}
}

func TestIdmappedMount(t *testing.T) {
	_, rootfs := bundle(t)
	src := t.TempDir()
	for name, id := range map[string]int{"owned-by-0": 0, "owned-by-5": 5} {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, id, id); err != nil {
			t.Fatal(err)
		}
	}
	spec := baseSpec()
	spec.Mounts = append(spec.Mounts, specs.Mount{
		Destination: "/idmapped", Source: src, Type: "bind", Options: []string{"rbind", "idmap"},
		UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 1}},
		GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 1}},
	})
	rep := runChild(t, childConfig{Spec: spec, Rootfs: rootfs, Stat: []string{"/idmapped/owned-by-0", "/idmapped/owned-by-5"}})
	if strings.Contains(rep.Error, "refused by the kernel") {
		t.Skipf("idmapped mounts unavailable here: %s", rep.Error)
	}
	mustSucceed(t, rep)
	if in := requireMount(t, rep, "/idmapped", hostFSType(t, src)); !strings.Contains(in.Options, "idmapped") {
		t.Errorf("/idmapped options %q lack idmapped", in.Options)
	}
	if s := rep.Stat["/idmapped/owned-by-0"]; s.UID != 100000 || s.GID != 200000 {
		t.Errorf("owned-by-0 shows as %d:%d, want 100000:200000", s.UID, s.GID)
	}
	if s := rep.Stat["/idmapped/owned-by-5"]; s.UID != 65534 || s.GID != 65534 {
		t.Errorf("unmapped owner shows as %d:%d, want the overflow id 65534", s.UID, s.GID)
	}
}

func TestCgroupBindWithoutNamespace(t *testing.T) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Skipf("no /sys/fs/cgroup: %v", err)
	}
	_, rootfs := bundle(t)
	spec := baseSpec()
	spec.Linux.Namespaces = spec.Linux.Namespaces[:4] // no cgroup namespace
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro"}})
	rep := runChild(t, childConfig{Spec: spec, Rootfs: rootfs, NoCgroupNS: true})
	mustSucceed(t, rep)
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		requireMount(t, rep, "/sys/fs/cgroup", "cgroup2", "ro")
		return
	}
	hs, err := hostHierarchies()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		in := requireMount(t, rep, "/sys/fs/cgroup/"+h.name, h.fstype, "ro")
		// A bind of this process's own cgroup, not the hierarchy's root.
		if want := strings.TrimSuffix(strings.TrimPrefix(hostCgroupDir(h), h.mount), "/"); in.Root != want && !(want == "" && in.Root == "/") {
			t.Errorf("%s: root %q, want %q", h.name, in.Root, want)
		}
	}
}

// With the host's side of the bundle shared, nothing the container mounts
// may propagate back, whatever linux.rootfsPropagation says; the root ends
// with the propagation asked for.
func TestRootfsPropagation(t *testing.T) {
	tests := []struct {
		prop     string
		optional string // expected in the optional fields of / inside; "" for none
	}{
		// A slave of the host's shared mount: host mounts come in, none go out.
		{"", "master:"},
		{"rslave", "master:"},
		{"private", ""},
		{"rshared", "shared:"},
		{"unbindable", "unbindable"},
	}
	for _, tt := range tests {
		t.Run("propagation="+tt.prop, func(t *testing.T) {
			rep := runSharedBundle(t, tt.prop)
			root := mountAt(rep, "/")
			if root == nil {
				t.Fatal("no / mount")
			}
			if tt.optional == "" && root.Optional != "" || !strings.Contains(root.Optional, tt.optional) {
				t.Errorf("/ optional fields %q, want %q", root.Optional, tt.optional)
			}
		})
	}
}

func runSharedBundle(t *testing.T, prop string) report {
	bundleDir, rootfs := bundle(t)
	if err := unix.Mount(bundleDir, bundleDir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(bundleDir, unix.MNT_DETACH) })
	if err := unix.Mount("", bundleDir, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	spec := baseSpec()
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
	if prop != "unbindable" { // an unbindable / cannot be a bind source
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/data", Source: t.TempDir(), Options: []string{"rbind", "rshared"}})
	}
	spec.Linux.RootfsPropagation = prop
	rep := runChild(t, childConfig{Spec: spec, Rootfs: rootfs}) // checks the host's table
	mustSucceed(t, rep)
	return rep
}

func TestMountErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name  string
		mount specs.Mount
		dev   *specs.LinuxDevice
		want  string
	}{
		{"no type", specs.Mount{Destination: "/x", Source: "tmpfs"}, nil, "mounts[6].type"},
		{"inside proc", specs.Mount{Destination: "/proc/sys/kernel", Type: "tmpfs", Source: "tmpfs"}, nil, "mounts[6] /proc/sys/kernel (tmpfs): refusing a mount inside /proc"},
		{"missing source", specs.Mount{Destination: "/x", Source: "/does/not/exist", Options: []string{"bind"}}, nil, "mounts[6] /x (bind): open source"},
		{"idmap without maps", specs.Mount{Destination: "/x", Source: "/tmp", Options: []string{"rbind", "idmap"}}, nil, "mounts[6].options: idmap"},
		{"unknown fs", specs.Mount{Destination: "/x", Type: "nosuchfs", Source: "x"}, nil, "mounts[6] /x (nosuchfs): mount: no such device"},
		{"bad device type", specs.Mount{Destination: "/x", Type: "tmpfs"}, &specs.LinuxDevice{Path: "/dev/x", Type: "q"}, "linux.devices[0].type"},
		{"relative device", specs.Mount{Destination: "/x", Type: "tmpfs"}, &specs.LinuxDevice{Path: "dev/x", Type: "c"}, "linux.devices[0].path"},
		{"over the root", specs.Mount{Destination: "/..", Type: "tmpfs"}, nil, "mounts[6].destination"},
		// The /proc check applies to where the destination resolves, not
		// to how it is spelled.
		{"into proc via symlink", specs.Mount{Destination: "/myproc/sys", Type: "tmpfs"}, nil, "mounts[6] /myproc/sys (tmpfs): refusing a mount inside /proc (/proc/sys)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rootfs := bundle(t)
			if err := os.Symlink("/proc", filepath.Join(rootfs, "myproc")); err != nil {
				t.Fatal(err)
			}
			spec := baseSpec()
			spec.Mounts = append(spec.Mounts, tt.mount)
			if tt.dev != nil {
				spec.Linux.Devices = []specs.LinuxDevice{*tt.dev}
			}
			rep := runChild(t, childConfig{Spec: spec, Rootfs: rootfs})
			if !strings.Contains(rep.Error, tt.want) {
				t.Fatalf("error %q does not contain %q", rep.Error, tt.want)
			}
		})
	}
}

// hostFSType is the filesystem type of the host mount holding path.
func hostFSType(t *testing.T, path string) string {
	t.Helper()
	infos, err := mountinfo.GetMounts(mountinfo.ParentsFilter(path))
	if err != nil {
		t.Fatal(err)
	}
	best := ""
	fstype := ""
	for _, in := range infos {
		if len(in.Mountpoint) >= len(best) {
			best, fstype = in.Mountpoint, in.FSType
		}
	}
	return fstype
}

// In a user namespace the kernel refuses mknod and a sysfs mount (the
// network namespace belongs to the host): devices are bound from the host,
// /sys is the host's bound read-only, and a locked atime mode is kept.
func TestInUserNamespace(t *testing.T) {
	_, rootfs := bundle(t)
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := baseSpec()
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: "user"})
	spec.Linux.MaskedPaths = []string{"/proc/kcore", "/etc/hostname"}
	spec.Linux.ReadonlyPaths = []string{"/proc/sys"}
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Destination: "/data", Source: hostDir, Options: []string{"rbind", "ro", "noatime"}},
		specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro"}},
	)
	rep := runChild(t, childConfig{
		Spec: spec, Rootfs: rootfs, UserNS: true, CloneUser: true,
		Stat:  []string{"/dev/null", "/dev/zero"},
		Read:  []string{"/data/f", "/etc/hostname"},
		Write: []string{"/sys/kernel/x", "/data/x"},
	})
	mustSucceed(t, rep)
	requireMount(t, rep, "/sys", "sysfs", "ro")
	requireMount(t, rep, "/dev/null", hostFSType(t, "/dev/null"))
	if s := rep.Stat["/dev/zero"]; s.Type != "char" || s.Major != 1 || s.Minor != 5 {
		t.Errorf("/dev/zero: %+v", s)
	}
	if r := rep.Read["/data/f"]; r.Content != "data" {
		t.Errorf("/data/f: %+v", r)
	}
	if r := rep.Read["/etc/hostname"]; r.Content != "" || r.Err != "" {
		t.Errorf("masked /etc/hostname: %+v", r)
	}
	for _, p := range []string{"/sys/kernel/x", "/data/x"} {
		if rep.Write[p] == "" {
			t.Errorf("write %s succeeded", p)
		}
	}
	requireMount(t, rep, "/data", hostFSType(t, hostDir), "ro")
	requireMount(t, rep, "/sys/fs/cgroup", "tmpfs", "ro")
}
