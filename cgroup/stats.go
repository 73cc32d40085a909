package cgroup

import (
	"bufio"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Stats is a container's resource usage. It marshals to the JSON that
// `runc events --stats` prints as the "data" member (runc's types.Stats), so
// tools that parse runc's output parse berth-runtime's.
type Stats struct {
	CPU      CPU                `json:"cpu"`
	CPUSet   CPUSet             `json:"cpuset"`
	Memory   Memory             `json:"memory"`
	Pids     Pids               `json:"pids"`
	Blkio    Blkio              `json:"blkio"`
	Hugetlb  map[string]Hugetlb `json:"hugetlb"`
	IntelRdt IntelRdt           `json:"intel_rdt"`
	// NetworkInterfaces is filled by the runtime (it is not cgroup data);
	// it is here so the JSON has runc's shape.
	NetworkInterfaces []*NetworkInterface `json:"network_interfaces"`
}

// Hugetlb is one huge page size's usage, in bytes.
type Hugetlb struct {
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// BlkioEntry is one device's counter; Op is Read, Write, Sync, Async, Discard
// or Total as the kernel names them.
type BlkioEntry struct {
	Major uint64 `json:"major,omitempty"`
	Minor uint64 `json:"minor,omitempty"`
	Op    string `json:"op,omitempty"`
	Value uint64 `json:"value,omitempty"`
}

// Blkio holds block I/O counters in v1 terms (v2 io.stat is mapped onto them).
type Blkio struct {
	IoServiceBytesRecursive []BlkioEntry `json:"ioServiceBytesRecursive,omitempty"`
	IoServicedRecursive     []BlkioEntry `json:"ioServicedRecursive,omitempty"`
	IoQueuedRecursive       []BlkioEntry `json:"ioQueueRecursive,omitempty"`
	IoServiceTimeRecursive  []BlkioEntry `json:"ioServiceTimeRecursive,omitempty"`
	IoWaitTimeRecursive     []BlkioEntry `json:"ioWaitTimeRecursive,omitempty"`
	IoMergedRecursive       []BlkioEntry `json:"ioMergedRecursive,omitempty"`
	IoTimeRecursive         []BlkioEntry `json:"ioTimeRecursive,omitempty"`
	SectorsRecursive        []BlkioEntry `json:"sectorsRecursive,omitempty"`
}

// Pids is the process count and its limit (0 when unlimited).
type Pids struct {
	Current uint64 `json:"current,omitempty"`
	Limit   uint64 `json:"limit,omitempty"`
}

// Throttling is CFS bandwidth throttling; ThrottledTime is in nanoseconds.
type Throttling struct {
	Periods          uint64 `json:"periods,omitempty"`
	ThrottledPeriods uint64 `json:"throttledPeriods,omitempty"`
	ThrottledTime    uint64 `json:"throttledTime,omitempty"`
}

// CPUUsage is CPU time in nanoseconds.
type CPUUsage struct {
	Total        uint64   `json:"total,omitempty"`
	Percpu       []uint64 `json:"percpu,omitempty"`
	PercpuKernel []uint64 `json:"percpu_kernel,omitempty"`
	PercpuUser   []uint64 `json:"percpu_user,omitempty"`
	Kernel       uint64   `json:"kernel"`
	User         uint64   `json:"user"`
}

// CPU is CPU usage and throttling.
type CPU struct {
	Usage      CPUUsage   `json:"usage,omitempty"`
	Throttling Throttling `json:"throttling,omitempty"`
}

// CPUSet is the cpuset in effect (flags only on v1).
type CPUSet struct {
	CPUs                  []uint16 `json:"cpus,omitempty"`
	CPUExclusive          uint64   `json:"cpu_exclusive"`
	Mems                  []uint16 `json:"mems,omitempty"`
	MemHardwall           uint64   `json:"mem_hardwall"`
	MemExclusive          uint64   `json:"mem_exclusive"`
	MemoryMigrate         uint64   `json:"memory_migrate"`
	MemorySpreadPage      uint64   `json:"memory_spread_page"`
	MemorySpreadSlab      uint64   `json:"memory_spread_slab"`
	MemoryPressure        uint64   `json:"memory_pressure"`
	SchedLoadBalance      uint64   `json:"sched_load_balance"`
	SchedRelaxDomainLevel int64    `json:"sched_relax_domain_level"`
}

// MemoryEntry is one memory counter in bytes; Limit is all ones when
// unlimited.
type MemoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// Memory is memory usage; Swap is memory+swap as v1 counts it, and Raw is
// memory.stat.
type Memory struct {
	Cache     uint64            `json:"cache,omitempty"`
	Usage     MemoryEntry       `json:"usage,omitempty"`
	Swap      MemoryEntry       `json:"swap,omitempty"`
	Kernel    MemoryEntry       `json:"kernel,omitempty"`
	KernelTCP MemoryEntry       `json:"kernelTCP,omitempty"`
	Raw       map[string]uint64 `json:"raw,omitempty"`
}

// IntelRdt is always empty here: RDT is resctrl, not a cgroup.
type IntelRdt struct{}

// NetworkInterface is one interface's counters, as runc reports them.
type NetworkInterface struct {
	Name      string
	RxBytes   uint64
	RxPackets uint64
	RxErrors  uint64
	RxDropped uint64
	TxBytes   uint64
	TxPackets uint64
	TxErrors  uint64
	TxDropped uint64
}

// userHZ is the unit of cpuacct.stat; the kernel exports USER_HZ, which is
// 100 on every architecture Linux containers run on.
const userHZ = 100

func (m *manager) Stats() (*Stats, error) {
	s := &Stats{Hugetlb: map[string]Hugetlb{}}
	var err error
	if m.layout == Unified {
		err = m.statsV2(s)
	} else {
		err = m.statsV1(s)
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup: stats: %w", err)
	}
	if dir, v2, ok := m.hugetlbDir(); ok {
		if err := hugetlbStats(dir, v2, s); err != nil {
			return nil, fmt.Errorf("cgroup: stats: %w", err)
		}
	}
	return s, nil
}

func (m *manager) statsV1(s *Stats) error {
	if dir, ok := m.path("cpuacct"); ok {
		if err := cpuacctStats(dir, &s.CPU.Usage); err != nil {
			return err
		}
	}
	if dir, ok := m.path("cpu"); ok {
		kv, err := readKeyValues(dir, "cpu.stat")
		if err != nil {
			return err
		}
		s.CPU.Throttling = Throttling{Periods: kv["nr_periods"], ThrottledPeriods: kv["nr_throttled"], ThrottledTime: kv["throttled_time"]}
	}
	if dir, ok := m.path("cpuset"); ok {
		if err := cpusetStats(dir, &s.CPUSet); err != nil {
			return err
		}
	}
	if dir, ok := m.path("memory"); ok {
		if err := memoryStatsV1(dir, &s.Memory); err != nil {
			return err
		}
	}
	if dir, ok := m.path("pids"); ok {
		if err := pidsStats(dir, &s.Pids); err != nil {
			return err
		}
	}
	if dir, ok := m.path("blkio"); ok {
		if err := blkioStatsV1(dir, &s.Blkio); err != nil {
			return err
		}
	}
	return nil
}

func cpuacctStats(dir string, u *CPUUsage) error {
	var err error
	if u.Total, err = readUint(dir, "cpuacct.usage"); err != nil {
		return err
	}
	if u.Percpu, err = readUints(dir, "cpuacct.usage_percpu"); err != nil {
		return err
	}
	// cpuacct.usage_all: "cpu user system" per line, nanoseconds.
	if all, err := readFile(dir, "cpuacct.usage_all"); err == nil {
		sc := bufio.NewScanner(strings.NewReader(all))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] == "cpu" {
				continue
			}
			us, _ := strconv.ParseUint(f[1], 10, 64)
			sy, _ := strconv.ParseUint(f[2], 10, 64)
			u.PercpuUser = append(u.PercpuUser, us)
			u.PercpuKernel = append(u.PercpuKernel, sy)
		}
	}
	kv, err := readKeyValues(dir, "cpuacct.stat")
	if err != nil {
		return err
	}
	u.User = kv["user"] * (1e9 / userHZ)
	u.Kernel = kv["system"] * (1e9 / userHZ)
	return nil
}

func readUints(dir, name string) ([]uint64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, f := range strings.Fields(s) {
		v, err := parseUint(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
		}
		out = append(out, v)
	}
	return out, nil
}

// parseList expands a cpuset list such as "0-3,8".
func parseList(s string) ([]uint16, error) {
	var out []uint16
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("parse cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 16); err != nil || b < a {
				return nil, fmt.Errorf("parse cpu list %q: bad range %q", s, part)
			}
		}
		for v := a; v <= b; v++ {
			out = append(out, uint16(v))
		}
	}
	return out, nil
}

func cpusetStats(dir string, c *CPUSet) error {
	for _, l := range []struct {
		file string
		dst  *[]uint16
	}{{"cpuset.cpus", &c.CPUs}, {"cpuset.mems", &c.Mems}} {
		s, err := readFile(dir, l.file)
		if err != nil {
			return err
		}
		if *l.dst, err = parseList(s); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		file string
		dst  *uint64
	}{
		{"cpuset.cpu_exclusive", &c.CPUExclusive}, {"cpuset.mem_hardwall", &c.MemHardwall},
		{"cpuset.mem_exclusive", &c.MemExclusive}, {"cpuset.memory_migrate", &c.MemoryMigrate},
		{"cpuset.memory_spread_page", &c.MemorySpreadPage}, {"cpuset.memory_spread_slab", &c.MemorySpreadSlab},
		{"cpuset.memory_pressure", &c.MemoryPressure}, {"cpuset.sched_load_balance", &c.SchedLoadBalance},
	} {
		if v, err := readUint(dir, f.file); err == nil {
			*f.dst = v
		}
	}
	if s, err := readFile(dir, "cpuset.sched_relax_domain_level"); err == nil {
		c.SchedRelaxDomainLevel, _ = strconv.ParseInt(s, 10, 64)
	}
	return nil
}

func memoryEntryV1(dir, prefix string) MemoryEntry {
	var e MemoryEntry
	e.Usage, _ = readUint(dir, prefix+".usage_in_bytes")
	e.Max, _ = readUint(dir, prefix+".max_usage_in_bytes")
	e.Failcnt, _ = readUint(dir, prefix+".failcnt")
	e.Limit, _ = readUint(dir, prefix+".limit_in_bytes")
	return e
}

func memoryStatsV1(dir string, mem *Memory) error {
	raw, err := readKeyValues(dir, "memory.stat")
	if err != nil {
		return err
	}
	mem.Raw = raw
	mem.Cache = raw["cache"]
	mem.Usage = memoryEntryV1(dir, "memory")
	if exists(dir, "memory.memsw.usage_in_bytes") {
		mem.Swap = memoryEntryV1(dir, "memory.memsw")
	}
	if exists(dir, "memory.kmem.usage_in_bytes") {
		mem.Kernel = memoryEntryV1(dir, "memory.kmem")
	}
	if exists(dir, "memory.kmem.tcp.usage_in_bytes") {
		mem.KernelTCP = memoryEntryV1(dir, "memory.kmem.tcp")
	}
	return nil
}

func pidsStats(dir string, p *Pids) error {
	var err error
	if p.Current, err = readUint(dir, "pids.current"); err != nil {
		return err
	}
	s, err := readFile(dir, "pids.max")
	if err != nil {
		return err
	}
	if s != "max" {
		p.Limit, _ = strconv.ParseUint(s, 10, 64)
	}
	return nil
}

// readBlkioEntries parses v1 "maj:min Op value" lines (and "Total n").
func readBlkioEntries(dir, name string) ([]BlkioEntry, error) {
	s, err := readFile(dir, name)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []BlkioEntry
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] == "Total" {
			continue
		}
		maj, min, ok := strings.Cut(f[0], ":")
		if !ok {
			continue
		}
		e := BlkioEntry{}
		e.Major, _ = strconv.ParseUint(maj, 10, 64)
		e.Minor, _ = strconv.ParseUint(min, 10, 64)
		valField := f[1]
		if len(f) == 3 {
			e.Op, valField = f[1], f[2]
		}
		e.Value, _ = strconv.ParseUint(valField, 10, 64)
		out = append(out, e)
	}
	return out, nil
}

func blkioStatsV1(dir string, b *Blkio) error {
	// CFQ's (or BFQ's) recursive counters when a proportional scheduler is
	// in use, otherwise the throttle layer's, which count every I/O: the
	// same fallback runc makes.
	prefix := "blkio."
	if !exists(dir, "blkio.io_service_bytes_recursive") {
		prefix = "blkio.bfq."
	}
	var err error
	if exists(dir, prefix+"io_service_bytes_recursive") {
		if b.IoServiceBytesRecursive, err = readBlkioEntries(dir, prefix+"io_service_bytes_recursive"); err != nil {
			return err
		}
		if b.IoServicedRecursive, err = readBlkioEntries(dir, prefix+"io_serviced_recursive"); err != nil {
			return err
		}
		for _, f := range []struct {
			name string
			dst  *[]BlkioEntry
		}{
			{"io_queued_recursive", &b.IoQueuedRecursive}, {"io_service_time_recursive", &b.IoServiceTimeRecursive},
			{"io_wait_time_recursive", &b.IoWaitTimeRecursive}, {"io_merged_recursive", &b.IoMergedRecursive},
			{"time_recursive", &b.IoTimeRecursive}, {"sectors_recursive", &b.SectorsRecursive},
		} {
			if *f.dst, err = readBlkioEntries(dir, prefix+f.name); err != nil {
				return err
			}
		}
	}
	if len(b.IoServiceBytesRecursive) == 0 {
		if b.IoServiceBytesRecursive, err = readBlkioEntries(dir, "blkio.throttle.io_service_bytes_recursive"); err != nil {
			return err
		}
		if b.IoServicedRecursive, err = readBlkioEntries(dir, "blkio.throttle.io_serviced_recursive"); err != nil {
			return err
		}
	}
	return nil
}

func (m *manager) statsV2(s *Stats) error {
	dir, ok := m.path(unifiedKey)
	if !ok {
		return fmt.Errorf("no cgroup v2 path")
	}
	if kv, err := readKeyValues(dir, "cpu.stat"); err == nil {
		s.CPU.Usage.Total = kv["usage_usec"] * 1000
		s.CPU.Usage.User = kv["user_usec"] * 1000
		s.CPU.Usage.Kernel = kv["system_usec"] * 1000
		s.CPU.Throttling = Throttling{Periods: kv["nr_periods"], ThrottledPeriods: kv["nr_throttled"], ThrottledTime: kv["throttled_usec"] * 1000}
	} else {
		return err
	}
	if exists(dir, "cpuset.cpus.effective") {
		if v, err := readFile(dir, "cpuset.cpus.effective"); err == nil {
			s.CPUSet.CPUs, _ = parseList(v)
		}
		if v, err := readFile(dir, "cpuset.mems.effective"); err == nil {
			s.CPUSet.Mems, _ = parseList(v)
		}
	}
	if exists(dir, "memory.stat") {
		raw, err := readKeyValues(dir, "memory.stat")
		if err != nil {
			return err
		}
		s.Memory.Raw = raw
		s.Memory.Cache = raw["file"]
		s.Memory.Usage.Usage, _ = readUint(dir, "memory.current")
		s.Memory.Usage.Max, _ = readUint(dir, "memory.peak")
		s.Memory.Usage.Limit, _ = readUint(dir, "memory.max")
		if ev, err := readKeyValues(dir, "memory.events"); err == nil {
			s.Memory.Usage.Failcnt = ev["max"]
		}
		if exists(dir, "memory.swap.current") {
			// Like runc, report memory+swap, the v1 meaning of "swap".
			sw, _ := readUint(dir, "memory.swap.current")
			swMax, _ := readUint(dir, "memory.swap.max")
			s.Memory.Swap.Usage = sw + s.Memory.Usage.Usage
			s.Memory.Swap.Limit = swMax
			if swMax != ^uint64(0) && s.Memory.Usage.Limit != ^uint64(0) {
				s.Memory.Swap.Limit = swMax + s.Memory.Usage.Limit
			}
		}
	}
	if exists(dir, "pids.current") {
		if err := pidsStats(dir, &s.Pids); err != nil {
			return err
		}
	}
	if exists(dir, "io.stat") {
		if err := ioStatsV2(dir, &s.Blkio); err != nil {
			return err
		}
	}
	return nil
}

// ioStatsV2 maps io.stat ("maj:min rbytes=.. wbytes=.. rios=.. wios=..")
// onto the v1-shaped entries runc reports.
func ioStatsV2(dir string, b *Blkio) error {
	s, err := readFile(dir, "io.stat")
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		maj, min, ok := strings.Cut(f[0], ":")
		if !ok {
			continue
		}
		var e BlkioEntry
		e.Major, _ = strconv.ParseUint(maj, 10, 64)
		e.Minor, _ = strconv.ParseUint(min, 10, 64)
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue
			}
			ent := e
			ent.Value = n
			switch k {
			case "rbytes":
				ent.Op = "Read"
				b.IoServiceBytesRecursive = append(b.IoServiceBytesRecursive, ent)
			case "wbytes":
				ent.Op = "Write"
				b.IoServiceBytesRecursive = append(b.IoServiceBytesRecursive, ent)
			case "rios":
				ent.Op = "Read"
				b.IoServicedRecursive = append(b.IoServicedRecursive, ent)
			case "wios":
				ent.Op = "Write"
				b.IoServicedRecursive = append(b.IoServicedRecursive, ent)
			}
		}
	}
	return nil
}

func hugetlbStats(dir string, v2 bool, s *Stats) error {
	sizes, err := hugePageSizes()
	if err != nil {
		return nil // no huge pages on this host: nothing to report
	}
	for _, size := range sizes {
		var h Hugetlb
		if v2 {
			if h.Usage, err = readUint(dir, "hugetlb."+size+".current"); err != nil {
				return err
			}
			if ev, err := readKeyValues(dir, "hugetlb."+size+".events"); err == nil {
				h.Failcnt = ev["max"]
			}
		} else {
			if h.Usage, err = readUint(dir, "hugetlb."+size+".usage_in_bytes"); err != nil {
				return err
			}
			h.Max, _ = readUint(dir, "hugetlb."+size+".max_usage_in_bytes")
			h.Failcnt, _ = readUint(dir, "hugetlb."+size+".failcnt")
		}
		s.Hugetlb[size] = h
	}
	return nil
}
