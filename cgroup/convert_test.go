package cgroup

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSharesToWeight(t *testing.T) {
	for _, tc := range []struct{ shares, weight uint64 }{
		{0, 0}, // unset stays unset
		{1, 1},
		{2, 1},
		{1024, 100}, // the defaults line up
		{262144, 10000},
		{1 << 20, 10000},
		{512, 59},
		{2048, 174},
	} {
		if got := sharesToWeight(tc.shares); got != tc.weight {
			t.Errorf("sharesToWeight(%d) = %d, want %d", tc.shares, got, tc.weight)
		}
	}
	// Monotonic over the whole range.
	prev := uint64(0)
	for s := uint64(2); s <= 262144; s += 97 {
		w := sharesToWeight(s)
		if w < prev || w < 1 || w > 10000 {
			t.Fatalf("sharesToWeight(%d) = %d after %d", s, w, prev)
		}
		prev = w
	}
}

func TestBlkioWeightToIOWeight(t *testing.T) {
	for _, tc := range []struct {
		in   uint16
		want uint64
	}{{0, 0}, {10, 1}, {1000, 10000}, {500, 4950}} {
		if got := blkioWeightToIOWeight(tc.in); got != tc.want {
			t.Errorf("blkioWeightToIOWeight(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestSwapToV2(t *testing.T) {
	for _, tc := range []struct {
		swap, limit, want int64
		err               bool
	}{
		{0, -1, -1, false}, // unlimited memory, swap unset: unlimited swap
		{-1, 100, -1, false},
		{0, 100, 0, false},
		{300, 100, 200, false},
		{100, 100, 0, false},
		{50, 100, 0, true},
		{300, 0, 0, true},
		{300, -1, 0, true},
	} {
		got, err := swapToV2(tc.swap, tc.limit)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("swapToV2(%d, %d) = %d, %v; want %d, err=%v", tc.swap, tc.limit, got, err, tc.want, tc.err)
		}
	}
}

func TestHugePageNames(t *testing.T) {
	got, err := hugePageNames([]string{"hugepages-2048kB", "hugepages-1048576kB", "hugepages-64kB", "other"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "1GB,2MB,64KB" {
		t.Errorf("hugePageNames = %v", got)
	}
	if _, err := hugePageNames([]string{"hugepages-2048MB"}); err == nil {
		t.Error("bad unit: want an error")
	}
}

func TestParseList(t *testing.T) {
	got, err := parseList("0-2,5,7-8\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []uint16{0, 1, 2, 5, 7, 8}
	if len(got) != len(want) {
		t.Fatalf("parseList = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("parseList = %v", got)
		}
	}
	for _, bad := range []string{"a", "3-1", "1-x"} {
		if _, err := parseList(bad); err == nil {
			t.Errorf("parseList(%q): want an error", bad)
		}
	}
}

// The JSON shape must be runc's types.Stats, which `runc events --stats`
// prints; spot-check the tags that differ from Go names.
func TestStatsJSONShape(t *testing.T) {
	s := Stats{Hugetlb: map[string]Hugetlb{"2MB": {Usage: 1}}}
	s.CPU.Usage.Total = 5
	s.CPU.Usage.Percpu = []uint64{5}
	s.CPU.Throttling.ThrottledPeriods = 2
	s.Memory.Usage.Usage = 7
	s.Memory.Swap.Usage = 8
	s.Memory.KernelTCP.Limit = 9
	s.Blkio.IoServiceBytesRecursive = []BlkioEntry{{Major: 8, Op: "Read", Value: 1}}
	s.Blkio.IoQueuedRecursive = []BlkioEntry{{Major: 8}}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	for _, want := range []string{
		`"cpu":{"usage":{"total":5,"percpu":[5],"kernel":0,"user":0},"throttling":{"throttledPeriods":2}}`,
		`"memory":{"usage":{"limit":0,"usage":7,"failcnt":0},"swap":{"limit":0,"usage":8,"failcnt":0},"kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":9,"failcnt":0}}`,
		`"ioServiceBytesRecursive":[{"major":8,"op":"Read","value":1}]`,
		`"ioQueueRecursive":[{"major":8}]`,
		`"hugetlb":{"2MB":{"usage":1,"failcnt":0}}`,
		`"pids":{}`,
		`"intel_rdt":{}`,
		`"network_interfaces":null`,
		`"cpuset":{"cpu_exclusive":0,`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("JSON lacks %s\nin %s", want, out)
		}
	}
}
