package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/berthproject/berth/runtime"
)

// event is one line of `events` output, as runc prints it.
type event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data any    `json:"data,omitempty"`
}

func eventsCommand(g *globals) *cobra.Command {
	var stats bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "events [flags] CONTAINER_ID",
		Short: "print container events (stats every interval, oom) as JSON lines",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			rt := g.rt()
			enc := json.NewEncoder(cmd.OutOrStdout())
			if stats {
				s, err := rt.Stats(id)
				if err != nil {
					return err
				}
				return enc.Encode(event{Type: "stats", ID: id, Data: s})
			}
			if interval <= 0 {
				return fmt.Errorf("--interval %s: must be positive", interval)
			}
			ooms, _ := rt.OOMKills(id)
			tick := time.NewTicker(interval)
			defer tick.Stop()
			// OOM kills are looked for more often than stats are printed.
			poll := time.NewTicker(200 * time.Millisecond)
			defer poll.Stop()
			for {
				select {
				case <-tick.C:
					s, err := rt.Stats(id)
					if err != nil {
						if errors.Is(err, runtime.ErrInvalidState) || errors.Is(err, runtime.ErrNotExist) {
							return nil
						}
						return err
					}
					if err := enc.Encode(event{Type: "stats", ID: id, Data: s}); err != nil {
						return err
					}
				case <-poll.C:
					st, err := rt.State(id)
					if err != nil || st.Status == runtime.Stopped {
						return nil
					}
					if n, err := rt.OOMKills(id); err == nil && n > ooms {
						ooms = n
						if err := enc.Encode(event{Type: "oom", ID: id}); err != nil {
							return err
						}
					}
				}
			}
		},
	}
	cmd.Flags().BoolVar(&stats, "stats", false, "print one stats event and exit")
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "how often to print stats")
	return cmd
}

type updateFlags struct {
	resources                                      string
	memory, memorySwap, memoryReservation, kmem    string
	kmemTCP                                        string
	cpuShares, cpuPeriod, cpuRtPeriod, blkioWeight uint64
	cpuQuota, cpuRtRuntime, pidsLimit              int64
	cpusetCpus, cpusetMems                         string
}

func updateCommand(g *globals) *cobra.Command {
	var u updateFlags
	cmd := &cobra.Command{
		Use:   "update [flags] CONTAINER_ID",
		Short: "change a container's resource limits (flags, or --resources FILE|- as LinuxResources JSON)",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := u.build(cmd)
			if err != nil {
				return err
			}
			return g.rt().Update(args[0], res)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&u.resources, "resources", "r", "", "LinuxResources JSON file, or - for stdin")
	f.StringVar(&u.memory, "memory", "", "memory limit (e.g. 64m)")
	f.StringVar(&u.memorySwap, "memory-swap", "", "memory+swap limit (-1 for unlimited)")
	f.StringVar(&u.memoryReservation, "memory-reservation", "", "memory soft limit")
	f.StringVar(&u.kmem, "kernel-memory", "", "ignored by kernels since 5.16")
	f.StringVar(&u.kmemTCP, "kernel-memory-tcp", "", "kernel TCP buffer limit")
	f.Uint64Var(&u.cpuShares, "cpu-shares", 0, "relative CPU weight")
	f.Uint64Var(&u.cpuPeriod, "cpu-period", 0, "CFS period in µs")
	f.Int64Var(&u.cpuQuota, "cpu-quota", 0, "CFS quota in µs per period")
	f.Uint64Var(&u.cpuRtPeriod, "cpu-rt-period", 0, "realtime period in µs")
	f.Int64Var(&u.cpuRtRuntime, "cpu-rt-runtime", 0, "realtime runtime in µs")
	f.StringVar(&u.cpusetCpus, "cpuset-cpus", "", "CPUs allowed (0-3,5)")
	f.StringVar(&u.cpusetMems, "cpuset-mems", "", "memory nodes allowed")
	f.Int64Var(&u.pidsLimit, "pids-limit", 0, "maximum number of processes")
	f.Uint64Var(&u.blkioWeight, "blkio-weight", 0, "block IO weight (10-1000)")
	return cmd
}

func (u *updateFlags) build(cmd *cobra.Command) (*specs.LinuxResources, error) {
	res := &specs.LinuxResources{}
	if u.resources != "" {
		var r io.Reader
		if u.resources == "-" {
			r = os.Stdin
		} else {
			f, err := os.Open(u.resources)
			if err != nil {
				return nil, fmt.Errorf("--resources: %w", err)
			}
			defer f.Close()
			r = f
		}
		if err := json.NewDecoder(r).Decode(res); err != nil {
			return nil, fmt.Errorf("--resources: not LinuxResources JSON: %w", err)
		}
	}
	ch := cmd.Flags().Changed
	mem := func(flag, val string, dst **int64) error {
		if !ch(flag) {
			return nil
		}
		n, err := parseBytes(val)
		if err != nil {
			return fmt.Errorf("--%s: %w", flag, err)
		}
		if res.Memory == nil {
			res.Memory = &specs.LinuxMemory{}
		}
		*dst = &n
		return nil
	}
	if res.Memory == nil {
		res.Memory = &specs.LinuxMemory{}
	}
	for _, m := range []struct {
		flag, val string
		dst       **int64
	}{
		{"memory", u.memory, &res.Memory.Limit},
		{"memory-swap", u.memorySwap, &res.Memory.Swap},
		{"memory-reservation", u.memoryReservation, &res.Memory.Reservation},
		{"kernel-memory", u.kmem, &res.Memory.Kernel}, //nolint:staticcheck
		{"kernel-memory-tcp", u.kmemTCP, &res.Memory.KernelTCP},
	} {
		if err := mem(m.flag, m.val, m.dst); err != nil {
			return nil, err
		}
	}
	if *res.Memory == (specs.LinuxMemory{}) {
		res.Memory = nil
	}
	cpu := func() *specs.LinuxCPU {
		if res.CPU == nil {
			res.CPU = &specs.LinuxCPU{}
		}
		return res.CPU
	}
	if ch("cpu-shares") {
		cpu().Shares = &u.cpuShares
	}
	if ch("cpu-period") {
		cpu().Period = &u.cpuPeriod
	}
	if ch("cpu-quota") {
		cpu().Quota = &u.cpuQuota
	}
	if ch("cpu-rt-period") {
		cpu().RealtimePeriod = &u.cpuRtPeriod
	}
	if ch("cpu-rt-runtime") {
		cpu().RealtimeRuntime = &u.cpuRtRuntime
	}
	if ch("cpuset-cpus") {
		cpu().Cpus = u.cpusetCpus
	}
	if ch("cpuset-mems") {
		cpu().Mems = u.cpusetMems
	}
	if ch("pids-limit") {
		res.Pids = &specs.LinuxPids{Limit: &u.pidsLimit}
	}
	if ch("blkio-weight") {
		if u.blkioWeight < 10 || u.blkioWeight > 1000 {
			return nil, fmt.Errorf("--blkio-weight %d: must be between 10 and 1000", u.blkioWeight)
		}
		w := uint16(u.blkioWeight)
		res.BlockIO = &specs.LinuxBlockIO{Weight: &w}
	}
	return res, nil
}

// parseBytes reads sizes as docker and runc do: a number with an optional
// b, k, m, g or t suffix (powers of 1024); -1 means unlimited.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "-1" {
		return -1, nil
	}
	mult := int64(1)
	s = strings.TrimSuffix(s, "b")
	if s != "" {
		switch s[len(s)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional k, m, g suffix", s)
	}
	return int64(n * float64(mult)), nil
}
