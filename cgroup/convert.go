package cgroup

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// sharesToWeight maps v1 cpu.shares [2, 262144] onto v2 cpu.weight
// [1, 10000]. It is the curve runc and crun adopted in 2025 (runc#4785): a
// quadratic in log2(shares) through the three points that matter — the
// minimum, the maximum, and the default 1024 shares landing on the default
// weight 100 — where the old linear map gave 1024 shares only weight 39.
// Zero means unset and stays zero.
func sharesToWeight(shares uint64) uint64 {
	switch {
	case shares == 0:
		return 0
	case shares <= 2:
		return 1
	case shares >= 262144:
		return 10000
	}
	l := math.Log2(float64(shares))
	exp := (l*l+125*l)/612.0 - 7.0/34.0
	return uint64(math.Ceil(math.Pow(10, exp)))
}

// blkioWeightToIOWeight maps v1 blkio.weight [10, 1000] onto v2 io.weight
// [1, 10000] linearly, as runc does.
func blkioWeightToIOWeight(w uint16) uint64 {
	if w == 0 {
		return 0
	}
	if w < 10 {
		w = 10
	}
	return 1 + (uint64(w)-10)*9999/990
}

// swapToV2 turns the spec's memory.swap, which is memory+swap as in v1, into
// v2's memory.swap.max, which is swap alone. -1 means unlimited and 0 means
// unset; an unlimited memory with no swap given unlimits swap too, as a v1
// host would.
func swapToV2(swap, limit int64) (int64, error) {
	switch {
	case limit == -1 && swap == 0:
		return -1, nil
	case swap == -1 || swap == 0:
		return swap, nil
	case limit == 0 || limit == -1:
		return 0, errors.New("a swap limit needs a memory limit (linux.resources.memory.limit)")
	case limit < 0:
		return 0, fmt.Errorf("invalid memory limit %d", limit)
	case swap < limit:
		return 0, fmt.Errorf("memory+swap %d is below the memory limit %d", swap, limit)
	}
	return swap - limit, nil
}

// hugePageSizes lists the page sizes this host offers, named as the hugetlb
// controller names its files ("2MB", "1GB").
func hugePageSizes() ([]string, error) {
	ents, err := os.ReadDir("/sys/kernel/mm/hugepages")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return hugePageNames(names)
}

// hugePageNames converts sysfs directory names ("hugepages-2048kB") to the
// controller's size names.
func hugePageNames(dirs []string) ([]string, error) {
	var out []string
	for _, d := range dirs {
		s, ok := strings.CutPrefix(d, "hugepages-")
		if !ok {
			continue
		}
		s, ok = strings.CutSuffix(s, "kB")
		if !ok {
			return nil, fmt.Errorf("unexpected huge page directory %q", d)
		}
		kb, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("unexpected huge page directory %q: %w", d, err)
		}
		out = append(out, sizeName(kb*1024))
	}
	sort.Strings(out)
	return out, nil
}

// sizeName names a size the way mm/hugetlb_cgroup.c does: the largest unit
// among KB, MB, GB that divides it.
func sizeName(bytes uint64) string {
	switch {
	case bytes >= 1<<30 && bytes%(1<<30) == 0:
		return fmt.Sprintf("%dGB", bytes>>30)
	case bytes >= 1<<20 && bytes%(1<<20) == 0:
		return fmt.Sprintf("%dMB", bytes>>20)
	}
	return fmt.Sprintf("%dKB", bytes>>10)
}
