package cgroup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/testutil"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// testRoot returns a fresh absolute cgroupsPath prefix and removes whatever
// is left under it in every hierarchy when the test ends.
func testRoot(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	root := fmt.Sprintf("/berth-cgtest-%d-%d", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		h, err := readHost()
		if err != nil {
			t.Error(err)
			return
		}
		all := append([]hierarchy{}, h.v1...)
		if h.unified != nil {
			all = append(all, *h.unified)
		}
		for _, hr := range all {
			if err := removeTree(filepath.Join(hr.mountpoint, root)); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return root
}

// gated starts `sh -c 'read _; script'`: the shell waits for a line on stdin,
// so the test can move it into a cgroup before script runs.
type gated struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startGated(t *testing.T, script string) *gated {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "read _; "+script)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gated{cmd: cmd, stdin: in}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return g
}

func (g *gated) pid() int { return g.cmd.Process.Pid }

func (g *gated) release(t *testing.T) {
	t.Helper()
	if _, err := g.stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
}

// wait returns the exit code, or -1 after a timeout.
func (g *gated) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- g.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(d):
		return -1
	}
}

func mustRead(t *testing.T, dir, name string) string {
	t.Helper()
	v, err := readFile(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newManager(t *testing.T, path string) *manager {
	t.Helper()
	m, err := New(path, "ctr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Destroy() })
	return m.(*manager)
}

func TestDetectLayout(t *testing.T) {
	got, err := DetectLayout()
	if err != nil {
		t.Fatal(err)
	}
	// Decide independently from statfs what this machine is.
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Skipf("no cgroup mount at /sys/fs/cgroup to compare with: %v", err)
	}
	want := Legacy
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		want = Unified
	} else if unix.Statfs("/sys/fs/cgroup/unified", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		want = Hybrid
	}
	if got != want {
		t.Fatalf("DetectLayout = %v, statfs says %v", got, want)
	}
}

func requireHybrid(t *testing.T) {
	t.Helper()
	if l, err := DetectLayout(); err != nil || l != Hybrid {
		t.Skipf("written for this project's hybrid test machines; layout %v, %v", l, err)
	}
}

func u64p(v uint64) *uint64 { return &v }
func u16p(v uint16) *uint16 { return &v }
func boolp(v bool) *bool    { return &v }

// rootDisk finds a real block device for the blkio throttle files.
func rootDisk(t *testing.T) (int64, int64) {
	t.Helper()
	b, err := os.ReadFile("/proc/partitions")
	if err != nil {
		t.Skipf("blkio throttle test needs /proc/partitions: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) == 4 && !strings.HasPrefix(f[3], "zram") && !strings.HasPrefix(f[3], "loop") {
			maj, _ := strconv.ParseInt(f[0], 10, 64)
			min, _ := strconv.ParseInt(f[1], 10, 64)
			return maj, min
		}
	}
	t.Skip("blkio throttle test needs a real block device; /proc/partitions lists none")
	return 0, 0
}

func TestApplySetReadBack(t *testing.T) {
	requireHybrid(t)
	root := testRoot(t)
	m := newManager(t, root+"/ctr")
	child := startGated(t, "exec cat /dev/zero > /dev/null")
	if err := m.Apply(child.pid()); err != nil {
		t.Fatal(err)
	}
	for key, dir := range m.Paths() {
		procs := strings.Fields(mustRead(t, dir, "cgroup.procs"))
		if !slices.Contains(procs, strconv.Itoa(child.pid())) {
			t.Errorf("%q (%s): cgroup.procs %v lacks %d", key, dir, procs, child.pid())
		}
	}
	maj, min := rootDisk(t)
	sizes, _ := hugePageSizes()
	res := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{
			Limit: i64p(64 << 20), Reservation: i64p(32 << 20), Swappiness: u64p(10),
			DisableOOMKiller: boolp(false), Kernel: i64p(1 << 20), KernelTCP: i64p(1 << 20),
		},
		CPU: &specs.LinuxCPU{
			Shares: u64p(512), Quota: i64p(50000), Period: u64p(100000), Burst: u64p(1000),
			Cpus: "0", Mems: "0",
		},
		Pids: &specs.LinuxPids{Limit: i64p(50)},
		BlockIO: &specs.LinuxBlockIO{
			ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: maj, Minor: min}, Rate: 1 << 20}},
			ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: maj, Minor: min}, Rate: 300}},
		},
		Devices: []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"},
			{Allow: true, Type: "c", Major: i64p(1), Minor: i64p(3), Access: "rwm"},
			{Allow: true, Type: "c", Major: i64p(136), Access: "rw"},
		},
	}
	if exists(m.paths["memory"], "memory.memsw.limit_in_bytes") {
		res.Memory.Swap = i64p(96 << 20)
	}
	bfq := exists(m.paths["blkio"], "blkio.bfq.weight") || exists(m.paths["blkio"], "blkio.weight")
	if bfq {
		res.BlockIO.Weight = u16p(300)
	}
	if slices.Contains(sizes, "2MB") {
		res.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}
	}
	if err := m.Set(res); err != nil {
		t.Fatal(err)
	}
	dev := fmt.Sprintf("%d:%d", maj, min)
	checks := []struct{ key, file, want string }{
		{"memory", "memory.limit_in_bytes", "67108864"},
		{"memory", "memory.soft_limit_in_bytes", "33554432"},
		{"memory", "memory.swappiness", "10"},
		{"cpu", "cpu.shares", "512"},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpu", "cpu.cfs_burst_us", "1000"},
		{"cpuset", "cpuset.cpus", "0"},
		{"cpuset", "cpuset.mems", "0"},
		{"pids", "pids.max", "50"},
		{"blkio", "blkio.throttle.read_bps_device", dev + " 1048576"},
		{"blkio", "blkio.throttle.write_iops_device", dev + " 300"},
		{"devices", "devices.list", "c 1:3 rwm\nc 136:* rw"},
	}
	if res.Memory.Swap != nil {
		checks = append(checks, struct{ key, file, want string }{"memory", "memory.memsw.limit_in_bytes", "100663296"})
	}
	if res.HugepageLimits != nil {
		// Here hugetlb is in the cgroup2 hierarchy of the hybrid layout.
		key, file := "hugetlb", "hugetlb.2MB.limit_in_bytes"
		if _, ok := m.paths["hugetlb"]; !ok {
			key, file = "", "hugetlb.2MB.max"
		}
		checks = append(checks, struct{ key, file, want string }{key, file, "4194304"})
	}
	for _, c := range checks {
		if got := mustRead(t, m.paths[c.key], c.file); got != c.want {
			t.Errorf("%s/%s = %q, want %q", m.paths[c.key], c.file, got, c.want)
		}
	}
	if bfq {
		f := "blkio.weight"
		if !exists(m.paths["blkio"], f) {
			f = "blkio.bfq.weight"
		}
		if got := mustRead(t, m.paths["blkio"], f); !strings.HasSuffix(got, "300") {
			t.Errorf("%s = %q, want 300", f, got)
		}
	}
	if oc := mustRead(t, m.paths["memory"], "memory.oom_control"); !strings.Contains(oc, "oom_kill_disable 0") {
		t.Errorf("memory.oom_control = %q", oc)
	}

	// The device rules hold for the process: /dev/null yes, /dev/zero no.
	probe := startGated(t, "cat /dev/null && ! head -c1 /dev/zero >/dev/null 2>&1")
	if err := m.Apply(probe.pid()); err != nil {
		t.Fatal(err)
	}
	probe.release(t)
	if code := probe.wait(t, 5*time.Second); code != 0 {
		t.Errorf("device probe exited %d, want 0 (null allowed, zero denied)", code)
	}

	// update: only what is given changes.
	if err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64p(-1)}, CPU: &specs.LinuxCPU{Quota: i64p(-1)}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ key, file, want string }{
		{"pids", "pids.max", "max"},
		{"cpu", "cpu.cfs_quota_us", "-1"},
		{"cpu", "cpu.shares", "512"},
		{"memory", "memory.limit_in_bytes", "67108864"},
	} {
		if got := mustRead(t, m.paths[c.key], c.file); got != c.want {
			t.Errorf("after update %s = %q, want %q", c.file, got, c.want)
		}
	}
	// Growing memory past memsw must reorder the writes.
	if res.Memory.Swap != nil {
		if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(256 << 20), Swap: i64p(512 << 20)}}); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, m.paths["memory"], "memory.limit_in_bytes"); got != "268435456" {
			t.Errorf("grown limit = %s", got)
		}
	}
}

func TestSetErrorsNameTheField(t *testing.T) {
	requireHybrid(t)
	root := testRoot(t)
	m := newManager(t, root+"/ctr")
	if err := m.Apply(0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		res   specs.LinuxResources
		field string
	}{
		{specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "3MB", Limit: 1}}}, "linux.resources.hugepageLimits[0].pageSize"},
		{specs.LinuxResources{Unified: map[string]string{"bogus.knob": "1"}}, `linux.resources.unified["bogus.knob"]`},
		{specs.LinuxResources{Unified: map[string]string{"../x": "1"}}, `linux.resources.unified["../x"]`},
		{specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: u64p(101)}}, "linux.resources.memory.swappiness"},
		{specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64p(1)}}, "linux.resources.cpu.shares"},
		{specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "q"}}}, "linux.resources.devices[0].type"},
	} {
		err := m.Set(&tc.res)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("Set(%+v) = %v, want an error naming %s", tc.res, err, tc.field)
		}
	}
	// Controllers this host lacks: an error only when asked for.
	if _, ok := m.paths["net_cls"]; !ok {
		err := m.Set(&specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: new(uint32)}})
		if err == nil || !strings.Contains(err.Error(), "linux.resources.network.classID") {
			t.Errorf("net_cls missing: %v", err)
		}
		if err := m.Set(&specs.LinuxResources{Network: &specs.LinuxNetwork{}}); err != nil {
			t.Errorf("empty network: %v", err)
		}
	}
	if _, ok := m.paths["rdma"]; !ok && !v2Offers(m.paths[""], "rdma") {
		one := uint32(1)
		err := m.Set(&specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx5_0": {HcaHandles: &one}}})
		if err == nil || !strings.Contains(err.Error(), "linux.resources.rdma") {
			t.Errorf("rdma missing: %v", err)
		}
	}
	// A unified key in the cgroup2 hierarchy of a hybrid host works.
	if sizes, _ := hugePageSizes(); slices.Contains(sizes, "2MB") && v2Offers(m.paths[""], "hugetlb") {
		if err := m.Set(&specs.LinuxResources{Unified: map[string]string{"hugetlb.2MB.max": "2097152"}}); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, m.paths[""], "hugetlb.2MB.max"); got != "2097152" {
			t.Errorf("unified hugetlb.2MB.max = %s", got)
		}
	}
}

// utime reads a process's user CPU ticks from /proc/<pid>/stat.
func utime(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	v, _ := strconv.ParseUint(f[11], 10, 64) // field 14 overall
	return v
}

func TestFreezeThaw(t *testing.T) {
	root := testRoot(t)
	m := newManager(t, root+"/ctr")
	child := startGated(t, "while :; do :; done")
	if err := m.Apply(child.pid()); err != nil {
		t.Fatal(err)
	}
	child.release(t)
	time.Sleep(100 * time.Millisecond)
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if f, err := m.Frozen(); err != nil || !f {
		t.Fatalf("Frozen = %v, %v after Freeze", f, err)
	}
	// Signalling a paused container leaves it paused.
	if err := m.Signal(unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if f, err := m.Frozen(); err != nil || !f {
		t.Fatalf("Frozen = %v, %v after Signal on a paused cgroup", f, err)
	}
	a := utime(t, child.pid())
	time.Sleep(300 * time.Millisecond)
	if b := utime(t, child.pid()); b != a {
		t.Errorf("frozen busy loop still ran: utime %d -> %d", a, b)
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if f, err := m.Frozen(); err != nil || f {
		t.Fatalf("Frozen = %v, %v after Thaw", f, err)
	}
	a = utime(t, child.pid())
	deadline := time.Now().Add(3 * time.Second)
	for utime(t, child.pid()) == a {
		if time.Now().After(deadline) {
			t.Fatal("thawed busy loop does not run")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSignalKillsEveryProcess(t *testing.T) {
	root := testRoot(t)
	m := newManager(t, root+"/ctr")
	// Each shell forks two sleeps once inside the cgroup.
	var kids []*gated
	for range 3 {
		g := startGated(t, "sleep 60 & sleep 60 & wait")
		if err := m.Apply(g.pid()); err != nil {
			t.Fatal(err)
		}
		g.release(t)
		kids = append(kids, g)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := m.Pids()
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 9 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Pids = %v, want 9 processes", pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := m.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, g := range kids {
		if code := g.wait(t, 5*time.Second); code != 128+int(unix.SIGKILL) {
			t.Errorf("shell %d exited %d, want killed", g.pid(), code)
		}
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		pids, err := m.Pids()
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Signal(SIGKILL) still %v", pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if f, _ := m.Frozen(); f {
		t.Error("Signal left the cgroup frozen")
	}
	// Signalling an empty cgroup is fine.
	if err := m.Signal(unix.SIGTERM); err != nil {
		t.Errorf("Signal on empty cgroup: %v", err)
	}
}

func TestStatsBusyChild(t *testing.T) {
	root := testRoot(t)
	m := newManager(t, root+"/ctr")
	// dd allocates and touches a 32 MiB buffer, then copies busily.
	child := startGated(t, "exec dd if=/dev/zero of=/dev/null bs=32M count=1000000")
	if err := m.Apply(child.pid()); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64p(20)}}); err != nil {
		t.Fatal(err)
	}
	child.release(t)
	time.Sleep(400 * time.Millisecond)
	s, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU.Usage.Total == 0 || s.CPU.Usage.User+s.CPU.Usage.Kernel == 0 {
		t.Errorf("cpu usage = %+v, want non-zero", s.CPU.Usage)
	}
	if s.Memory.Usage.Usage < 16<<20 {
		t.Errorf("memory usage = %d, want the 32 MiB buffer", s.Memory.Usage.Usage)
	}
	if len(s.Memory.Raw) == 0 {
		t.Error("memory raw stats empty")
	}
	if s.Pids.Current != 1 || s.Pids.Limit != 20 {
		t.Errorf("pids = %+v, want current 1 limit 20", s.Pids)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
}

func TestOOMKillCount(t *testing.T) {
	root := testRoot(t)
	m := newManager(t, root+"/ctr")
	child := startGated(t, "exec dd if=/dev/zero of=/dev/null bs=64M count=1")
	if err := m.Apply(child.pid()); err != nil {
		t.Fatal(err)
	}
	mem := &specs.LinuxMemory{Limit: i64p(16 << 20)}
	if p, ok := m.paths["memory"]; ok && exists(p, "memory.memsw.limit_in_bytes") {
		mem.Swap = i64p(16 << 20) // no swapping out of the limit
	} else if p, ok := m.paths[""]; ok && exists(p, "memory.swap.max") {
		mem.Swap = i64p(16 << 20)
	}
	if err := m.Set(&specs.LinuxResources{Memory: mem}); err != nil {
		t.Fatal(err)
	}
	before, err := m.OOMKillCount()
	if err != nil {
		t.Fatal(err)
	}
	child.release(t)
	if code := child.wait(t, 10*time.Second); code != 128+int(unix.SIGKILL) {
		t.Fatalf("dd exited %d, want OOM-killed", code)
	}
	after, err := m.OOMKillCount()
	if err != nil {
		t.Fatal(err)
	}
	if after != before+1 {
		t.Errorf("OOMKillCount %d -> %d, want one more", before, after)
	}
}

func TestRelativeAndAbsolutePaths(t *testing.T) {
	testutil.RequireRoot(t)
	h, err := readHost()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("berth-cgtest-rel-%d-%d", os.Getpid(), time.Now().UnixNano())
	for _, tc := range []struct{ cgroupsPath, id string }{{name, "x"}, {"", name}} {
		m, err := New(tc.cgroupsPath, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Apply(0); err != nil {
			t.Fatal(err)
		}
		for key, dir := range m.Paths() {
			var mnt string
			for _, hr := range append(h.v1, *h.unified) {
				if slices.Contains(hr.keys, key) {
					mnt = hr.mountpoint
				}
			}
			own := h.own[key]
			if key == unifiedKey && h.layout == Unified {
				own = strings.TrimSuffix(own, "/init.scope")
			}
			if want := filepath.Join(mnt, own, name); dir != want {
				t.Errorf("%q/%q: %q = %s, want %s", tc.cgroupsPath, tc.id, key, dir, want)
			}
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				t.Errorf("%s not created: %v", dir, err)
			}
		}
		if err := m.Destroy(); err != nil {
			t.Fatal(err)
		}
	}
	abs := testRoot(t) + "/abs"
	m := newManager(t, abs)
	for key, dir := range m.Paths() {
		if !strings.HasSuffix(dir, abs) {
			t.Errorf("absolute: %q = %s, want it to end in %s", key, dir, abs)
		}
	}
}

func TestDestroyLeavesNothing(t *testing.T) {
	root := testRoot(t)
	m := newManager(t, root+"/a/b")
	child := startGated(t, "sleep 60")
	if err := m.Apply(child.pid()); err != nil {
		t.Fatal(err)
	}
	// The container made a child cgroup of its own.
	sub := filepath.Join(m.paths["memory"], "inner")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = child.cmd.Process.Kill()
	child.wait(t, 5*time.Second)
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	h, _ := readHost()
	for _, hr := range append(h.v1, *h.unified) {
		p := filepath.Join(hr.mountpoint, root)
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists (%v)", p, err)
		}
	}
	if err := m.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
}

func TestLoadRoundTrip(t *testing.T) {
	root := testRoot(t)
	m := newManager(t, root+"/ctr")
	child := startGated(t, "sleep 60")
	if err := m.Apply(child.pid()); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m.Paths())
	if err != nil {
		t.Fatal(err)
	}
	var saved map[string]string
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	l, err := Load(saved)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := l.Pids()
	if err != nil || !slices.Contains(pids, child.pid()) {
		t.Fatalf("loaded Pids = %v, %v; want %d", pids, err, child.pid())
	}
	if err := l.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64p(7)}}); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, m.paths["pids"], "pids.max"); got != "7" && m.layout != Unified {
		t.Errorf("pids.max via loaded manager = %s", got)
	}
	if err := l.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.wait(t, 5*time.Second)
	if err := l.Destroy(); err != nil {
		t.Fatal(err)
	}
	for _, dir := range saved {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s survives Destroy of the loaded manager", dir)
		}
	}
}

// TestDeviceProgramV2 runs a process in a cgroup2 directory carrying the
// eBPF device program and checks the kernel enforces it.
func TestDeviceProgramV2(t *testing.T) {
	testutil.RequireRoot(t)
	h, err := readHost()
	if err != nil || h.unified == nil {
		t.Skipf("no cgroup2 hierarchy: %v", err)
	}
	root := testRoot(t)
	dir := filepath.Join(h.unified.mountpoint, root, "dev")
	if _, err := mkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	run := func() int {
		cg, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer cg.Close()
		cmd := exec.Command("/bin/cat", "/dev/null")
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
		err = cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	attached := func() int {
		cg, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer cg.Close()
		q, err := link.QueryPrograms(link.QueryOptions{Target: int(cg.Fd()), Attach: ebpf.AttachCGroupDevice})
		if err != nil {
			t.Fatal(err)
		}
		return len(q.Programs)
	}
	if run() != 0 {
		t.Fatal("/dev/null not readable before any program")
	}
	denyAll, _ := deviceRules([]specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}})
	if err := setDevicesV2(dir, denyAll); err != nil {
		t.Fatal(err)
	}
	if run() == 0 {
		t.Error("deny-all program: /dev/null still opens")
	}
	allowNull, _ := deviceRules([]specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: i64p(1), Minor: i64p(3), Access: "rw"},
	})
	if err := setDevicesV2(dir, allowNull); err != nil {
		t.Fatal(err)
	}
	if code := run(); code != 0 {
		t.Errorf("allow-listed /dev/null: exit %d", code)
	}
	if n := attached(); n != 1 {
		t.Errorf("%d device programs attached after replacing, want 1", n)
	}
	// The same through Manager.Set when the host has no v1 devices
	// hierarchy: drive a manager holding only the cgroup2 path.
	m := &manager{layout: Unified, paths: map[string]string{unifiedKey: dir}}
	if err := m.Set(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}); err != nil {
		t.Fatal(err)
	}
	if run() == 0 {
		t.Error("Set with deny-all: /dev/null still opens")
	}
	if n := attached(); n != 1 {
		t.Errorf("%d device programs attached after Set, want 1", n)
	}
}
