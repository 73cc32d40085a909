package cgroup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakeDir makes a directory of plain files standing in for a cgroup2
// directory, so the v2 writers (which this hybrid test machine cannot
// exercise for memory, cpu or io) are checked for what they write.
func fakeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestV2Writers(t *testing.T) {
	base := map[string]string{
		"memory.max": "max", "memory.swap.max": "max", "memory.low": "0",
		"cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
		"io.weight": "default 100", "io.max": "",
	}
	for _, tc := range []struct {
		name  string
		res   specs.LinuxResources
		want  map[string]string
		field string // expected error field, if any
	}{
		{"memory", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(100 << 20), Swap: i64p(300 << 20), Reservation: i64p(50 << 20)}},
			map[string]string{"memory.max": "104857600", "memory.swap.max": "209715200", "memory.low": "52428800"}, ""},
		{"memory unlimited", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(-1)}},
			map[string]string{"memory.max": "max", "memory.swap.max": "max"}, ""},
		{"swap below limit", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(100), Swap: i64p(50)}}, nil, "linux.resources.memory.swap"},
		{"cpu shares and quota", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64p(1024), Quota: i64p(20000), Burst: u64p(500)}},
			map[string]string{"cpu.weight": "100", "cpu.max": "20000 100000", "cpu.max.burst": "500"}, ""},
		{"cpu period keeps quota", specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64p(50000)}},
			map[string]string{"cpu.max": "max 50000"}, ""},
		{"cpu idle wins over weight", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64p(2048), Idle: i64p(1)}},
			map[string]string{"cpu.idle": "1", "cpu.weight": "100"}, ""},
		{"cpu realtime", specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: i64p(1000)}}, nil, "linux.resources.cpu.realtimeRuntime"},
		{"io weight converted", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16p(500)}},
			map[string]string{"io.weight": "4950"}, ""},
		{"io throttle", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleWriteBpsDevice: []specs.LinuxThrottleDevice{
			{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 16}, Rate: 1000}}}},
			map[string]string{"io.max": "8:16 wbps=1000"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fakeDir(t, base)
			var err error
			switch {
			case tc.res.Memory != nil:
				err = setMemoryV2(dir, tc.res.Memory)
			case tc.res.CPU != nil:
				err = setCPUV2(dir, tc.res.CPU)
			case tc.res.BlockIO != nil:
				err = setIOV2(dir, tc.res.BlockIO)
			}
			if tc.field != "" {
				if err == nil || !strings.Contains(err.Error(), tc.field) {
					t.Fatalf("error %v, want one naming %s", err, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for f, want := range tc.want {
				if got := mustRead(t, dir, f); got != want {
					t.Errorf("%s = %q, want %q", f, got, want)
				}
			}
		})
	}
}

func TestStatsV2FromFiles(t *testing.T) {
	dir := fakeDir(t, map[string]string{
		"cpu.stat":        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 2\nthrottled_usec 30",
		"memory.stat":     "anon 4096\nfile 8192",
		"memory.current":  "12288",
		"memory.max":      "max",
		"memory.events":   "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1",
		"pids.current":    "2",
		"pids.max":        "max",
		"io.stat":         "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0",
		"cgroup.freeze":   "0",
		"cgroup.procs":    "",
		"memory.swap.max": "max",
	})
	m := &manager{layout: Unified, paths: map[string]string{unifiedKey: dir}}
	s, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU.Usage.Total != 1500000 || s.CPU.Usage.User != 1000000 || s.CPU.Usage.Kernel != 500000 {
		t.Errorf("cpu usage = %+v", s.CPU.Usage)
	}
	if s.CPU.Throttling != (Throttling{Periods: 4, ThrottledPeriods: 2, ThrottledTime: 30000}) {
		t.Errorf("throttling = %+v", s.CPU.Throttling)
	}
	if s.Memory.Cache != 8192 || s.Memory.Usage.Usage != 12288 || s.Memory.Usage.Failcnt != 3 || s.Memory.Raw["anon"] != 4096 {
		t.Errorf("memory = %+v", s.Memory)
	}
	if s.Pids.Current != 2 || s.Pids.Limit != 0 {
		t.Errorf("pids = %+v", s.Pids)
	}
	want := []BlkioEntry{{8, 0, "Read", 100}, {8, 0, "Write", 200}}
	if len(s.Blkio.IoServiceBytesRecursive) != 2 || s.Blkio.IoServiceBytesRecursive[0] != want[0] || s.Blkio.IoServiceBytesRecursive[1] != want[1] {
		t.Errorf("io bytes = %+v", s.Blkio.IoServiceBytesRecursive)
	}
	if n, err := m.OOMKillCount(); err != nil || n != 1 {
		t.Errorf("OOMKillCount = %d, %v", n, err)
	}
}
