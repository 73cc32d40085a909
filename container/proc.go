package container

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/berthproject/berth/cgroup"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/ocirt"
)

// Top runs ps on the host with psArgs (default -ef) and keeps the lines
// of the container's processes, as docker top does.
func (e *Engine) Top(ctx context.Context, ref string, psArgs []string) ([]string, [][]string, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
		return nil, nil, notRunning(c)
	}
	pids, err := e.runtime(c).Ps(ctx, c.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("top %s: %w", c.Name, err)
	}
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := exec.CommandContext(ctx, "ps", psArgs...).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("top %s: ps %s: %w", c.Name, strings.Join(psArgs, " "), err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) == 0 {
		return nil, nil, nil
	}
	header := strings.Fields(lines[0])
	pidCol := -1
	for i, h := range header {
		if h == "PID" {
			pidCol = i
		}
	}
	if pidCol < 0 {
		return nil, nil, fmt.Errorf("top %s: ps %s prints no PID column: %w", c.Name, strings.Join(psArgs, " "), errdefs.ErrInvalidArgument)
	}
	in := map[int]bool{}
	for _, p := range pids {
		in[p] = true
	}
	var rows [][]string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) <= pidCol {
			continue
		}
		pid, err := strconv.Atoi(f[pidCol])
		if err != nil || !in[pid] {
			continue
		}
		// The last column (the command) may hold spaces: keep it whole.
		if len(f) > len(header) {
			f = append(f[:len(header)-1], strings.Join(f[len(header)-1:], " "))
		}
		rows = append(rows, f)
	}
	return header, rows, nil
}

// Stats is one sample of a container's resource use, as docker stats
// shows it.
type Stats struct {
	ID, Name    string
	CPUPercent  float64
	MemUsage    uint64
	MemLimit    uint64
	MemPercent  float64
	NetRx       uint64
	NetTx       uint64
	BlockRead   uint64
	BlockWrite  uint64
	Pids        uint64
	cpuTotal    uint64
	sampledAt   time.Time
	systemTicks uint64
}

// hostMemory is the host's memory, the limit of a container without one.
func hostMemory() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n * 1024
		}
	}
	return 0
}

// systemCPU is the host's total CPU time in nanoseconds, from /proc/stat.
func systemCPU() uint64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var total uint64
	for _, v := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		total += n
	}
	return total * 1e9 / 100 // USER_HZ
}

// netIO reads a process's network namespace's traffic.
func netIO(pid int) (rx, tx uint64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/dev")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n")[2:] {
		_, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) >= 9 {
			r, _ := strconv.ParseUint(f[0], 10, 64)
			t, _ := strconv.ParseUint(f[8], 10, 64)
			rx, tx = rx+r, tx+t
		}
	}
	return rx, tx
}

// Sample reads a container's resource use; prev, a sample taken a moment
// before, gives the CPU percentage (Docker's formula: the container's
// share of all CPU time over the interval, times the number of CPUs).
func (e *Engine) Sample(ctx context.Context, ref string, prev *Stats) (*Stats, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	s := &Stats{ID: c.ID, Name: c.Name, sampledAt: time.Now()}
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
		return s, nil
	}
	raw, err := e.runtime(c).Stats(ctx, c.ID)
	if err != nil {
		// Not every runtime has `events` (crun has not): read the
		// container's cgroup directly then.
		if raw, err = cgroupStats(c); err != nil {
			return nil, fmt.Errorf("stats %s: %w", c.Name, err)
		}
	}
	s.cpuTotal = raw.CPU.Usage.Total
	s.systemTicks = systemCPU()
	if prev != nil && prev.ID == s.ID && s.systemTicks > prev.systemTicks && s.cpuTotal >= prev.cpuTotal {
		cpus := 1
		if n := len(cpuList()); n > 0 {
			cpus = n
		}
		s.CPUPercent = float64(s.cpuTotal-prev.cpuTotal) / float64(s.systemTicks-prev.systemTicks) * float64(cpus) * 100
	}
	s.MemUsage = raw.Memory.Usage.Usage
	if inactive := raw.Memory.Raw["total_inactive_file"]; inactive < s.MemUsage {
		s.MemUsage -= inactive
	}
	s.MemLimit = raw.Memory.Usage.Limit
	if hm := hostMemory(); s.MemLimit == 0 || s.MemLimit > hm {
		s.MemLimit = hm
	}
	if s.MemLimit > 0 {
		s.MemPercent = float64(s.MemUsage) / float64(s.MemLimit) * 100
	}
	for _, b := range raw.Blkio.IoServiceBytesRecursive {
		switch strings.ToLower(b.Op) {
		case "read":
			s.BlockRead += b.Value
		case "write":
			s.BlockWrite += b.Value
		}
	}
	s.Pids = raw.Pids.Current
	if c.State.Pid > 0 && c.HostConfig.NetworkMode != "host" {
		s.NetRx, s.NetTx = netIO(c.State.Pid)
	}
	return s, nil
}

func cpuList() []string {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "cpu") && !strings.HasPrefix(l, "cpu ") {
			out = append(out, l)
		}
	}
	return out
}

// cgroupStats reads a container's resource use from its cgroup, where
// the engine put it (/berth/ID), in the runtimes' stats format.
func cgroupStats(c *Container) (*ocirt.Stats, error) {
	m, err := cgroup.New("/berth/"+c.ID, c.ID)
	if err != nil {
		return nil, err
	}
	st, err := m.Stats()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	var out ocirt.Stats
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
