package cgroup

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fieldErr names the offending spec field, in runtime-spec JSON terms.
func fieldErr(field string, err error) error {
	return fmt.Errorf("linux.resources.%s: %w", field, err)
}

// target says where controller c's files are for this container: its v1
// hierarchy, or the cgroup2 directory (always on a pure v2 host; on a hybrid
// host when the controller has no v1 hierarchy but the cgroup2 one offers
// it, as hugetlb does on this project's test machines).
func (m *manager) target(c string) (dir string, v2 bool, err error) {
	if m.layout != Unified {
		if p, ok := m.path(c); ok {
			return p, false, nil
		}
	}
	p, ok := m.path(unifiedKey)
	if ok && (m.layout == Unified || v2Offers(p, c)) {
		if err := enableController(p, c); err != nil {
			return "", false, err
		}
		return p, true, nil
	}
	return "", false, fmt.Errorf("the host has no %s cgroup controller mounted", c)
}

// v2Offers says whether the cgroup2 hierarchy holding dir has controller c.
func v2Offers(dir, c string) bool {
	avail, err := readFile(v2MountRoot(dir), "cgroup.controllers")
	return err == nil && containsWord(avail, c)
}

// Set writes every non-nil field of r. Fields the kernel has no file for are
// an error naming the field; fields runc ignores on modern kernels
// (memory.kernel, memory.kernelTCP) are ignored.
func (m *manager) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	steps := []func(*specs.LinuxResources) error{
		m.setMemory, m.setCPU, m.setCpuset, m.setPids, m.setBlockIO,
		m.setHugepages, m.setNetwork, m.setRdma, m.setUnified, m.setDevices,
	}
	for _, s := range steps {
		if err := s(r); err != nil {
			return err
		}
	}
	return nil
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func i64(v int64) string  { return strconv.FormatInt(v, 10) }
func u64(v uint64) string { return strconv.FormatUint(v, 10) }

// maxOr renders a v2 limit where any negative value means unlimited.
func maxOr(v int64) string {
	if v < 0 {
		return "max"
	}
	return i64(v)
}

func (m *manager) setMemory(r *specs.LinuxResources) error {
	mem := r.Memory
	if mem == nil || (mem.Limit == nil && mem.Reservation == nil && mem.Swap == nil &&
		mem.Swappiness == nil && mem.DisableOOMKiller == nil && mem.UseHierarchy == nil) {
		return nil
	}
	dir, v2, err := m.target("memory")
	if err != nil {
		return fieldErr("memory", err)
	}
	if mem.Limit != nil && *mem.Limit < -1 {
		return fieldErr("memory.limit", fmt.Errorf("%d is neither -1 (unlimited) nor a size", *mem.Limit))
	}
	if mem.Limit != nil && *mem.Limit > 0 && mem.CheckBeforeUpdate != nil && *mem.CheckBeforeUpdate {
		usage := "memory.usage_in_bytes"
		if v2 {
			usage = "memory.current"
		}
		if cur, err := readUint(dir, usage); err == nil && cur > uint64(*mem.Limit) {
			return fieldErr("memory.limit", fmt.Errorf("%d is below the current usage %d (checkBeforeUpdate)", *mem.Limit, cur))
		}
	}
	if v2 {
		return setMemoryV2(dir, mem)
	}
	return setMemoryV1(dir, mem)
}

func setMemoryV1(dir string, mem *specs.LinuxMemory) error {
	hasMemsw := exists(dir, "memory.memsw.limit_in_bytes")
	var swap int64
	if mem.Swap != nil {
		swap = *mem.Swap
	}
	if mem.Limit != nil && *mem.Limit == -1 && mem.Swap == nil && hasMemsw {
		swap = -1 // unlimited memory with unset swap: unlimit both
	}
	if swap != 0 && !hasMemsw && swap != -1 {
		return fieldErr("memory.swap", errors.New("the kernel has no swap accounting (memory.memsw.limit_in_bytes missing; boot with swapaccount=1)"))
	}
	writeLimit := func() error {
		if mem.Limit == nil {
			return nil
		}
		if err := writeFile(dir, "memory.limit_in_bytes", i64(*mem.Limit)); err != nil {
			return fieldErr("memory.limit", err)
		}
		return nil
	}
	writeSwap := func() error {
		if swap == 0 || !hasMemsw {
			return nil
		}
		if err := writeFile(dir, "memory.memsw.limit_in_bytes", i64(swap)); err != nil {
			return fieldErr("memory.swap", err)
		}
		return nil
	}
	// memsw must stay >= limit at every moment: when the limit grows the
	// memsw limit has to grow first, otherwise the limit goes first.
	first, second := writeLimit, writeSwap
	if swap != 0 && hasMemsw && mem.Limit != nil {
		cur, err := readUint(dir, "memory.limit_in_bytes")
		if err != nil {
			return fieldErr("memory.limit", err)
		}
		if *mem.Limit == -1 || uint64(*mem.Limit) > cur {
			first, second = writeSwap, writeLimit
		}
	}
	if err := first(); err != nil {
		return err
	}
	if err := second(); err != nil {
		return err
	}
	if mem.Reservation != nil {
		if err := writeFile(dir, "memory.soft_limit_in_bytes", i64(*mem.Reservation)); err != nil {
			return fieldErr("memory.reservation", err)
		}
	}
	if mem.Swappiness != nil {
		if *mem.Swappiness > 100 {
			return fieldErr("memory.swappiness", fmt.Errorf("%d is above 100", *mem.Swappiness))
		}
		if err := writeFile(dir, "memory.swappiness", u64(*mem.Swappiness)); err != nil {
			return fieldErr("memory.swappiness", err)
		}
	}
	if mem.DisableOOMKiller != nil {
		if err := writeFile(dir, "memory.oom_control", boolStr(*mem.DisableOOMKiller)); err != nil {
			return fieldErr("memory.disableOOMKiller", err)
		}
	}
	if mem.UseHierarchy != nil {
		// Kernels since 5.16 always account hierarchically and refuse
		// writing 0; asking for what is already true is not an error.
		if cur, err := readFile(dir, "memory.use_hierarchy"); err != nil || cur != boolStr(*mem.UseHierarchy) {
			if err := writeFile(dir, "memory.use_hierarchy", boolStr(*mem.UseHierarchy)); err != nil {
				return fieldErr("memory.useHierarchy", err)
			}
		}
	}
	return nil
}

func setMemoryV2(dir string, mem *specs.LinuxMemory) error {
	var limit, swapIn int64
	if mem.Limit != nil {
		limit = *mem.Limit
	}
	if mem.Swap != nil {
		swapIn = *mem.Swap
	}
	swap, err := swapToV2(swapIn, limit)
	if err != nil {
		return fieldErr("memory.swap", err)
	}
	if swap != 0 {
		if !exists(dir, "memory.swap.max") {
			if mem.Swap != nil && swap != -1 {
				return fieldErr("memory.swap", errors.New("the kernel has no swap accounting (memory.swap.max missing)"))
			}
		} else if err := writeFile(dir, "memory.swap.max", maxOr(swap)); err != nil {
			return fieldErr("memory.swap", err)
		}
	}
	if mem.Limit != nil {
		if err := writeFile(dir, "memory.max", maxOr(limit)); err != nil {
			return fieldErr("memory.limit", err)
		}
	}
	if mem.Reservation != nil {
		if err := writeFile(dir, "memory.low", maxOr(*mem.Reservation)); err != nil {
			return fieldErr("memory.reservation", err)
		}
	}
	// swappiness, disableOOMKiller and useHierarchy have no v2 file; runc
	// ignores them there too.
	return nil
}

func (m *manager) setCPU(r *specs.LinuxResources) error {
	c := r.CPU
	if c == nil || (c.Shares == nil && c.Quota == nil && c.Period == nil && c.Burst == nil &&
		c.RealtimeRuntime == nil && c.RealtimePeriod == nil && c.Idle == nil) {
		return nil
	}
	dir, v2, err := m.target("cpu")
	if err != nil {
		return fieldErr("cpu", err)
	}
	if v2 {
		return setCPUV2(dir, c)
	}
	return setCPUV1(dir, c)
}

func setCPUV1(dir string, c *specs.LinuxCPU) error {
	if c.Shares != nil && *c.Shares != 0 {
		if err := writeFile(dir, "cpu.shares", u64(*c.Shares)); err != nil {
			return fieldErr("cpu.shares", err)
		}
		// The kernel clamps instead of failing; say so like runc does.
		if got, err := readUint(dir, "cpu.shares"); err == nil && got != *c.Shares {
			return fieldErr("cpu.shares", fmt.Errorf("%d is out of the kernel's range (it would use %d)", *c.Shares, got))
		}
	}
	quota := func() error {
		if c.Quota == nil {
			return nil
		}
		v := *c.Quota
		if v <= 0 {
			v = -1
		}
		if err := writeFile(dir, "cpu.cfs_quota_us", i64(v)); err != nil {
			return fieldErr("cpu.quota", err)
		}
		return nil
	}
	if c.Period != nil && *c.Period != 0 {
		// A shorter period can be refused while the old quota exceeds
		// what it allows; then the quota has to go first.
		if err := writeFile(dir, "cpu.cfs_period_us", u64(*c.Period)); err != nil {
			if qerr := quota(); qerr != nil {
				return qerr
			}
			if err := writeFile(dir, "cpu.cfs_period_us", u64(*c.Period)); err != nil {
				return fieldErr("cpu.period", err)
			}
		} else if err := quota(); err != nil {
			return err
		}
	} else if err := quota(); err != nil {
		return err
	}
	if c.Burst != nil {
		if err := writeFile(dir, "cpu.cfs_burst_us", u64(*c.Burst)); err != nil {
			return fieldErr("cpu.burst", err)
		}
	}
	if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 {
		if err := writeFile(dir, "cpu.rt_period_us", u64(*c.RealtimePeriod)); err != nil {
			return fieldErr("cpu.realtimePeriod", err)
		}
	}
	if c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0 {
		if err := writeFile(dir, "cpu.rt_runtime_us", i64(*c.RealtimeRuntime)); err != nil {
			return fieldErr("cpu.realtimeRuntime", err)
		}
	}
	if c.Idle != nil {
		if err := writeFile(dir, "cpu.idle", i64(*c.Idle)); err != nil {
			return fieldErr("cpu.idle", err)
		}
	}
	return nil
}

func setCPUV2(dir string, c *specs.LinuxCPU) error {
	if (c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0) || (c.RealtimePeriod != nil && *c.RealtimePeriod != 0) {
		return fieldErr("cpu.realtimeRuntime", errors.New("realtime scheduling limits do not exist in cgroup v2"))
	}
	if c.Idle != nil && *c.Idle != 0 {
		// cpu.idle and cpu.weight exclude each other; idle wins, as in runc.
		if err := writeFile(dir, "cpu.idle", i64(*c.Idle)); err != nil {
			return fieldErr("cpu.idle", err)
		}
	} else {
		if c.Idle != nil {
			if err := writeFile(dir, "cpu.idle", "0"); err != nil {
				return fieldErr("cpu.idle", err)
			}
		}
		if c.Shares != nil && *c.Shares != 0 {
			if err := writeFile(dir, "cpu.weight", u64(sharesToWeight(*c.Shares))); err != nil {
				return fieldErr("cpu.shares", err)
			}
		}
	}
	if c.Burst != nil {
		if err := writeFile(dir, "cpu.max.burst", u64(*c.Burst)); err != nil {
			return fieldErr("cpu.burst", err)
		}
	}
	if c.Quota == nil && (c.Period == nil || *c.Period == 0) {
		return nil
	}
	// cpu.max holds both numbers; keep whichever one was not given.
	cur, err := readFile(dir, "cpu.max")
	if err != nil {
		return fieldErr("cpu.quota", err)
	}
	q, p, _ := strings.Cut(cur, " ")
	if c.Quota != nil {
		q = maxOr(*c.Quota)
		if *c.Quota == 0 {
			q = "max"
		}
	}
	if c.Period != nil && *c.Period != 0 {
		p = u64(*c.Period)
	}
	if err := writeFile(dir, "cpu.max", q+" "+p); err != nil {
		return fieldErr("cpu.quota", err)
	}
	return nil
}

func (m *manager) setCpuset(r *specs.LinuxResources) error {
	c := r.CPU
	if c == nil || (c.Cpus == "" && c.Mems == "") {
		return nil
	}
	dir, _, err := m.target("cpuset")
	if err != nil {
		return fieldErr("cpu.cpus", err)
	}
	if c.Cpus != "" {
		if err := writeFile(dir, "cpuset.cpus", c.Cpus); err != nil {
			return fieldErr("cpu.cpus", err)
		}
	}
	if c.Mems != "" {
		if err := writeFile(dir, "cpuset.mems", c.Mems); err != nil {
			return fieldErr("cpu.mems", err)
		}
	}
	return nil
}

func (m *manager) setPids(r *specs.LinuxResources) error {
	if r.Pids == nil || r.Pids.Limit == nil {
		return nil
	}
	dir, _, err := m.target("pids")
	if err != nil {
		return fieldErr("pids.limit", err)
	}
	v := "max"
	if *r.Pids.Limit > 0 {
		v = i64(*r.Pids.Limit)
	}
	if err := writeFile(dir, "pids.max", v); err != nil {
		return fieldErr("pids.limit", err)
	}
	return nil
}

func devString(d specs.LinuxBlockIODevice) string {
	return fmt.Sprintf("%d:%d", d.Major, d.Minor)
}

func (m *manager) setBlockIO(r *specs.LinuxResources) error {
	b := r.BlockIO
	if b == nil || (b.Weight == nil && b.LeafWeight == nil && len(b.WeightDevice) == 0 &&
		len(b.ThrottleReadBpsDevice) == 0 && len(b.ThrottleWriteBpsDevice) == 0 &&
		len(b.ThrottleReadIOPSDevice) == 0 && len(b.ThrottleWriteIOPSDevice) == 0) {
		return nil
	}
	ctrl := "blkio"
	if m.layout == Unified {
		ctrl = "io"
	} else if _, ok := m.path("blkio"); !ok {
		ctrl = "io"
	}
	dir, v2, err := m.target(ctrl)
	if err != nil {
		return fieldErr("blockIO", err)
	}
	if v2 {
		return setIOV2(dir, b)
	}
	return setBlkioV1(dir, b)
}

func setBlkioV1(dir string, b *specs.LinuxBlockIO) error {
	// CFQ's files, else BFQ's (CFQ left the kernel in 5.0); runc's choice.
	weightFile, weightDevFile := "blkio.weight", "blkio.weight_device"
	if !exists(dir, weightFile) && exists(dir, "blkio.bfq.weight") {
		weightFile, weightDevFile = "blkio.bfq.weight", "blkio.bfq.weight_device"
	}
	if b.Weight != nil && *b.Weight != 0 {
		if !exists(dir, weightFile) {
			return fieldErr("blockIO.weight", errors.New("no blkio.weight or blkio.bfq.weight: the kernel has no proportional-weight I/O scheduler for this cgroup"))
		}
		if err := writeFile(dir, weightFile, strconv.Itoa(int(*b.Weight))); err != nil {
			return fieldErr("blockIO.weight", err)
		}
	}
	if b.LeafWeight != nil && *b.LeafWeight != 0 {
		if err := writeFile(dir, "blkio.leaf_weight", strconv.Itoa(int(*b.LeafWeight))); err != nil {
			return fieldErr("blockIO.leafWeight", err)
		}
	}
	for i, wd := range b.WeightDevice {
		if wd.Weight != nil && *wd.Weight != 0 {
			if err := writeFile(dir, weightDevFile, fmt.Sprintf("%s %d", devString(wd.LinuxBlockIODevice), *wd.Weight)); err != nil {
				return fieldErr(fmt.Sprintf("blockIO.weightDevice[%d].weight", i), err)
			}
		}
		if wd.LeafWeight != nil && *wd.LeafWeight != 0 {
			if err := writeFile(dir, "blkio.leaf_weight_device", fmt.Sprintf("%s %d", devString(wd.LinuxBlockIODevice), *wd.LeafWeight)); err != nil {
				return fieldErr(fmt.Sprintf("blockIO.weightDevice[%d].leafWeight", i), err)
			}
		}
	}
	for _, t := range []struct {
		field, file string
		devs        []specs.LinuxThrottleDevice
	}{
		{"throttleReadBpsDevice", "blkio.throttle.read_bps_device", b.ThrottleReadBpsDevice},
		{"throttleWriteBpsDevice", "blkio.throttle.write_bps_device", b.ThrottleWriteBpsDevice},
		{"throttleReadIOPSDevice", "blkio.throttle.read_iops_device", b.ThrottleReadIOPSDevice},
		{"throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", b.ThrottleWriteIOPSDevice},
	} {
		for i, d := range t.devs {
			if err := writeFile(dir, t.file, fmt.Sprintf("%s %d", devString(d.LinuxBlockIODevice), d.Rate)); err != nil {
				return fieldErr(fmt.Sprintf("blockIO.%s[%d]", t.field, i), err)
			}
		}
	}
	return nil
}

func setIOV2(dir string, b *specs.LinuxBlockIO) error {
	bfq := exists(dir, "io.bfq.weight")
	weight := func(w uint16) (string, string) {
		if bfq {
			return "io.bfq.weight", strconv.Itoa(int(w))
		}
		return "io.weight", u64(blkioWeightToIOWeight(w))
	}
	if b.Weight != nil && *b.Weight != 0 {
		file, v := weight(*b.Weight)
		if err := writeFile(dir, file, v); err != nil {
			return fieldErr("blockIO.weight", err)
		}
	}
	for i, wd := range b.WeightDevice {
		if wd.Weight == nil || *wd.Weight == 0 {
			continue
		}
		file, v := weight(*wd.Weight)
		if err := writeFile(dir, file, devString(wd.LinuxBlockIODevice)+" "+v); err != nil {
			return fieldErr(fmt.Sprintf("blockIO.weightDevice[%d].weight", i), err)
		}
	}
	// Leaf weights have no v2 equivalent; runc ignores them there too.
	for _, t := range []struct {
		field, key string
		devs       []specs.LinuxThrottleDevice
	}{
		{"throttleReadBpsDevice", "rbps", b.ThrottleReadBpsDevice},
		{"throttleWriteBpsDevice", "wbps", b.ThrottleWriteBpsDevice},
		{"throttleReadIOPSDevice", "riops", b.ThrottleReadIOPSDevice},
		{"throttleWriteIOPSDevice", "wiops", b.ThrottleWriteIOPSDevice},
	} {
		for i, d := range t.devs {
			v := u64(d.Rate)
			if d.Rate == 0 {
				v = "max"
			}
			if err := writeFile(dir, "io.max", fmt.Sprintf("%s %s=%s", devString(d.LinuxBlockIODevice), t.key, v)); err != nil {
				return fieldErr(fmt.Sprintf("blockIO.%s[%d]", t.field, i), err)
			}
		}
	}
	return nil
}

func (m *manager) setHugepages(r *specs.LinuxResources) error {
	if len(r.HugepageLimits) == 0 {
		return nil
	}
	sizes, err := hugePageSizes()
	if err != nil {
		return fieldErr("hugepageLimits", fmt.Errorf("list the host's huge page sizes: %w", err))
	}
	for i, l := range r.HugepageLimits {
		if !slices.Contains(sizes, l.Pagesize) {
			return fieldErr(fmt.Sprintf("hugepageLimits[%d].pageSize", i),
				fmt.Errorf("%q is not a huge page size of this host (it has %s)", l.Pagesize, strings.Join(sizes, ", ")))
		}
	}
	dir, v2, err := m.target("hugetlb")
	if err != nil {
		return fieldErr("hugepageLimits", err)
	}
	limit, rsvd := "hugetlb.%s.limit_in_bytes", "hugetlb.%s.rsvd.limit_in_bytes"
	if v2 {
		limit, rsvd = "hugetlb.%s.max", "hugetlb.%s.rsvd.max"
	}
	for i, l := range r.HugepageLimits {
		v := u64(l.Limit)
		if err := writeFile(dir, fmt.Sprintf(limit, l.Pagesize), v); err != nil {
			return fieldErr(fmt.Sprintf("hugepageLimits[%d].limit", i), err)
		}
		// Reservations count too (since 5.7); limit both like runc, so
		// a mapping cannot reserve past the limit and fault later.
		if f := fmt.Sprintf(rsvd, l.Pagesize); exists(dir, f) {
			if err := writeFile(dir, f, v); err != nil {
				return fieldErr(fmt.Sprintf("hugepageLimits[%d].limit", i), err)
			}
		}
	}
	return nil
}

func (m *manager) setNetwork(r *specs.LinuxResources) error {
	n := r.Network
	if n == nil || (n.ClassID == nil && len(n.Priorities) == 0) {
		return nil
	}
	if m.layout == Unified {
		// cgroup v2 has no net_cls/net_prio (eBPF took their place);
		// runc's v2 driver leaves these fields alone as well.
		return nil
	}
	if n.ClassID != nil {
		dir, ok := m.path("net_cls")
		if !ok {
			return fieldErr("network.classID", errors.New("the host has no net_cls cgroup hierarchy mounted"))
		}
		if err := writeFile(dir, "net_cls.classid", strconv.FormatUint(uint64(*n.ClassID), 10)); err != nil {
			return fieldErr("network.classID", err)
		}
	}
	if len(n.Priorities) > 0 {
		dir, ok := m.path("net_prio")
		if !ok {
			return fieldErr("network.priorities", errors.New("the host has no net_prio cgroup hierarchy mounted"))
		}
		for i, p := range n.Priorities {
			if err := writeFile(dir, "net_prio.ifpriomap", fmt.Sprintf("%s %d", p.Name, p.Priority)); err != nil {
				return fieldErr(fmt.Sprintf("network.priorities[%d]", i), err)
			}
		}
	}
	return nil
}

func (m *manager) setRdma(r *specs.LinuxResources) error {
	if len(r.Rdma) == 0 {
		return nil
	}
	dir, _, err := m.target("rdma")
	if err != nil {
		return fieldErr("rdma", err)
	}
	devs := make([]string, 0, len(r.Rdma))
	for d := range r.Rdma {
		devs = append(devs, d)
	}
	slices.Sort(devs)
	for _, d := range devs {
		l := r.Rdma[d]
		line := d
		if l.HcaHandles != nil {
			line += fmt.Sprintf(" hca_handle=%d", *l.HcaHandles)
		}
		if l.HcaObjects != nil {
			line += fmt.Sprintf(" hca_object=%d", *l.HcaObjects)
		}
		if line == d {
			continue
		}
		if err := writeFile(dir, "rdma.max", line); err != nil {
			return fieldErr(fmt.Sprintf("rdma[%q]", d), err)
		}
	}
	return nil
}

func (m *manager) setUnified(r *specs.LinuxResources) error {
	if len(r.Unified) == 0 {
		return nil
	}
	dir, ok := m.path(unifiedKey)
	if !ok || m.layout == Legacy {
		return fieldErr("unified", errors.New("the host has no cgroup v2 hierarchy"))
	}
	keys := make([]string, 0, len(r.Unified))
	for k := range r.Unified {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		field := fmt.Sprintf("unified[%q]", k)
		if k == "" || strings.ContainsRune(k, '/') || k == "." || k == ".." {
			return fieldErr(field, errors.New("not a cgroup file name"))
		}
		err := writeFile(dir, k, r.Unified[k])
		if err != nil && isNotExist(err) {
			// The file appears once its controller is enabled above us.
			ctrl, _, _ := strings.Cut(k, ".")
			if !v2Offers(dir, ctrl) {
				return fieldErr(field, fmt.Errorf("no such file, and the cgroup v2 hierarchy has no %q controller", ctrl))
			}
			if eerr := enableController(dir, ctrl); eerr != nil {
				return fieldErr(field, eerr)
			}
			err = writeFile(dir, k, r.Unified[k])
		}
		if err != nil {
			return fieldErr(field, err)
		}
	}
	return nil
}

func (m *manager) setDevices(r *specs.LinuxResources) error {
	if r.Devices == nil {
		return nil
	}
	rules, err := deviceRules(r.Devices)
	if err != nil {
		return err
	}
	if m.layout != Unified {
		if dir, ok := m.path("devices"); ok {
			if err := setDevicesV1(dir, rules); err != nil {
				return fieldErr("devices", err)
			}
			return nil
		}
	}
	dir, ok := m.path(unifiedKey)
	if !ok {
		return fieldErr("devices", errors.New("the host has neither a devices cgroup hierarchy nor cgroup v2"))
	}
	if err := setDevicesV2(dir, rules); err != nil {
		return fieldErr("devices", err)
	}
	return nil
}

// hugetlbDir is where Stats reads hugetlb counters, if anywhere.
func (m *manager) hugetlbDir() (string, bool, bool) {
	if m.layout != Unified {
		if p, ok := m.path("hugetlb"); ok {
			return p, false, true
		}
	}
	if p, ok := m.path(unifiedKey); ok && exists(p, "cgroup.controllers") {
		// Files exist only where the controller is enabled.
		if ents, err := filepath.Glob(filepath.Join(p, "hugetlb.*.current")); err == nil && len(ents) > 0 {
			return p, true, true
		}
	}
	return "", false, false
}
