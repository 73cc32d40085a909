package process

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var rlimitTypes = map[string]int{
	"RLIMIT_AS":         unix.RLIMIT_AS,
	"RLIMIT_CORE":       unix.RLIMIT_CORE,
	"RLIMIT_CPU":        unix.RLIMIT_CPU,
	"RLIMIT_DATA":       unix.RLIMIT_DATA,
	"RLIMIT_FSIZE":      unix.RLIMIT_FSIZE,
	"RLIMIT_LOCKS":      unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK":    unix.RLIMIT_MEMLOCK,
	"RLIMIT_MSGQUEUE":   unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE":       unix.RLIMIT_NICE,
	"RLIMIT_NOFILE":     unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC":      unix.RLIMIT_NPROC,
	"RLIMIT_RSS":        unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO":     unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME":     unix.RLIMIT_RTTIME,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK":      unix.RLIMIT_STACK,
}

// rlimit is one checked process.rlimits entry.
type rlimit struct {
	index    int
	name     string
	resource int
	lim      unix.Rlimit
}

// parseRlimits checks process.rlimits: known types, each at most once, soft
// not above hard.
func parseRlimits(rls []specs.POSIXRlimit) ([]rlimit, error) {
	out := make([]rlimit, 0, len(rls))
	seen := map[string]int{}
	for i, r := range rls {
		res, ok := rlimitTypes[r.Type]
		if !ok {
			return nil, fmt.Errorf("process.rlimits[%d].type: unknown rlimit %q", i, r.Type)
		}
		if j, dup := seen[r.Type]; dup {
			return nil, fmt.Errorf("process.rlimits[%d].type: %s already set by process.rlimits[%d]", i, r.Type, j)
		}
		seen[r.Type] = i
		if r.Soft > r.Hard {
			return nil, fmt.Errorf("process.rlimits[%d]: %s soft limit %d is above its hard limit %d", i, r.Type, r.Soft, r.Hard)
		}
		out = append(out, rlimit{index: i, name: r.Type, resource: res, lim: unix.Rlimit{Cur: r.Soft, Max: r.Hard}})
	}
	return out, nil
}

// applyRlimits sets the limits on the whole process. It goes through
// unix.Prlimit (the syscall package underneath) so that the Go runtime
// forgets the RLIMIT_NOFILE it raised at start-up and does not put its own
// original value back at execve.
func applyRlimits(rls []rlimit) error {
	for _, r := range rls {
		lim := r.lim
		err := unix.Prlimit(0, r.resource, &lim, nil)
		if err == nil {
			continue
		}
		var cur unix.Rlimit
		if errors.Is(err, unix.EPERM) && unix.Prlimit(0, r.resource, nil, &cur) == nil && r.lim.Max > cur.Max {
			return fmt.Errorf("process.rlimits[%d]: %s hard limit %d is above the current hard limit %d, and raising it needs CAP_SYS_RESOURCE, which the runtime does not hold: %w",
				r.index, r.name, r.lim.Max, cur.Max, err)
		}
		return fmt.Errorf("process.rlimits[%d]: set %s to soft %d, hard %d: %w", r.index, r.name, r.lim.Cur, r.lim.Max, err)
	}
	return nil
}

func applyOOMScoreAdj(adj *int) error {
	if adj == nil {
		return nil
	}
	if *adj < -1000 || *adj > 1000 {
		return fmt.Errorf("process.oomScoreAdj: %d is outside [-1000, 1000]", *adj)
	}
	// O_WRONLY without O_TRUNC or O_CREATE: a proc file, written once.
	f, err := os.OpenFile("/proc/self/oom_score_adj", os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("process.oomScoreAdj: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(strconv.Itoa(*adj)); err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return fmt.Errorf("process.oomScoreAdj: lowering the score to %d needs CAP_SYS_RESOURCE: %w", *adj, err)
		}
		return fmt.Errorf("process.oomScoreAdj: write %d: %w", *adj, err)
	}
	return nil
}

const (
	ioprioWhoProcess = 1
	ioprioClassShift = 13
)

var ioprioClasses = map[specs.IOPriorityClass]int{
	specs.IOPRIO_CLASS_RT:   1,
	specs.IOPRIO_CLASS_BE:   2,
	specs.IOPRIO_CLASS_IDLE: 3,
}

// ioprioValue encodes process.ioPriority as ioprio_set(2) takes it.
func ioprioValue(p *specs.LinuxIOPriority) (int, error) {
	class, ok := ioprioClasses[p.Class]
	if !ok {
		return 0, fmt.Errorf("process.ioPriority.class: unknown class %q (want IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE)", p.Class)
	}
	if p.Priority < 0 || p.Priority > 7 {
		return 0, fmt.Errorf("process.ioPriority.priority: %d is outside [0, 7]", p.Priority)
	}
	return class<<ioprioClassShift | p.Priority, nil
}

func applyIOPriority(p *specs.LinuxIOPriority) error {
	if p == nil {
		return nil
	}
	v, err := ioprioValue(p)
	if err != nil {
		return err
	}
	// who 0 is the calling thread, the one that will execve.
	if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, uintptr(v)); e != 0 {
		return fmt.Errorf("process.ioPriority: ioprio_set %s %d: %w", p.Class, p.Priority, e)
	}
	return nil
}

var schedPolicies = map[specs.LinuxSchedulerPolicy]uint32{
	specs.SchedOther:    0,
	specs.SchedFIFO:     1,
	specs.SchedRR:       2,
	specs.SchedBatch:    3,
	specs.SchedISO:      4,
	specs.SchedIdle:     5,
	specs.SchedDeadline: 6,
}

var schedFlags = map[specs.LinuxSchedulerFlag]uint64{
	specs.SchedFlagResetOnFork:  unix.SCHED_FLAG_RESET_ON_FORK,
	specs.SchedFlagReclaim:      unix.SCHED_FLAG_RECLAIM,
	specs.SchedFlagDLOverrun:    unix.SCHED_FLAG_DL_OVERRUN,
	specs.SchedFlagKeepPolicy:   unix.SCHED_FLAG_KEEP_POLICY,
	specs.SchedFlagKeepParams:   unix.SCHED_FLAG_KEEP_PARAMS,
	specs.SchedFlagUtilClampMin: unix.SCHED_FLAG_UTIL_CLAMP_MIN,
	specs.SchedFlagUtilClampMax: unix.SCHED_FLAG_UTIL_CLAMP_MAX,
}

// schedAttr turns process.scheduler into sched_setattr(2)'s argument, with
// runc's checks: nice in [-20, 19], a priority only for the real-time
// policies, runtime/deadline/period only for SCHED_DEADLINE.
func schedAttr(s *specs.Scheduler) (*unix.SchedAttr, error) {
	policy, ok := schedPolicies[s.Policy]
	if !ok {
		return nil, fmt.Errorf("process.scheduler.policy: unknown policy %q", s.Policy)
	}
	if s.Nice < -20 || s.Nice > 19 {
		return nil, fmt.Errorf("process.scheduler.nice: %d is outside [-20, 19]", s.Nice)
	}
	realtime := s.Policy == specs.SchedFIFO || s.Policy == specs.SchedRR
	if s.Priority != 0 && !realtime {
		return nil, fmt.Errorf("process.scheduler.priority: only SCHED_FIFO and SCHED_RR take a priority, not %s", s.Policy)
	}
	if s.Priority < 0 {
		return nil, fmt.Errorf("process.scheduler.priority: %d is negative", s.Priority)
	}
	if s.Policy != specs.SchedDeadline && (s.Runtime != 0 || s.Deadline != 0 || s.Period != 0) {
		return nil, fmt.Errorf("process.scheduler: runtime, deadline and period apply only to SCHED_DEADLINE, not %s", s.Policy)
	}
	attr := &unix.SchedAttr{
		Size:     unix.SizeofSchedAttr,
		Policy:   policy,
		Nice:     s.Nice,
		Priority: uint32(s.Priority),
		Runtime:  s.Runtime,
		Deadline: s.Deadline,
		Period:   s.Period,
	}
	for i, f := range s.Flags {
		v, ok := schedFlags[f]
		if !ok {
			return nil, fmt.Errorf("process.scheduler.flags[%d]: unknown flag %q", i, f)
		}
		attr.Flags |= v
	}
	return attr, nil
}

func applyScheduler(s *specs.Scheduler) error {
	if s == nil {
		return nil
	}
	attr, err := schedAttr(s)
	if err != nil {
		return err
	}
	if err := unix.SchedSetAttr(0, attr, 0); err != nil {
		return fmt.Errorf("process.scheduler: sched_setattr %s: %w", s.Policy, err)
	}
	return nil
}

const (
	perLinux   = 0x0000
	perLinux32 = 0x0008
)

// personalityValue encodes linux.personality. The spec defines no flags
// yet, so any flag is refused rather than silently ignored.
func personalityValue(p *specs.LinuxPersonality) (int, error) {
	var v int
	switch p.Domain {
	case specs.PerLinux:
		v = perLinux
	case specs.PerLinux32:
		v = perLinux32
	default:
		return 0, fmt.Errorf("linux.personality.domain: unknown domain %q (want LINUX or LINUX32)", p.Domain)
	}
	if len(p.Flags) > 0 {
		return 0, fmt.Errorf("linux.personality.flags[0]: unsupported flag %q (the runtime spec defines none)", p.Flags[0])
	}
	return v, nil
}

func applyPersonality(p *specs.LinuxPersonality) error {
	if p == nil {
		return nil
	}
	v, err := personalityValue(p)
	if err != nil {
		return err
	}
	if _, _, e := unix.Syscall(unix.SYS_PERSONALITY, uintptr(v), 0, 0); e != 0 {
		return fmt.Errorf("linux.personality: personality %s: %w", p.Domain, e)
	}
	return nil
}

// ParseCPUList parses a CPU list as process.execCPUAffinity and cpuset
// write it ("0-3,7"). The runtime parent uses it for the initial affinity.
func ParseCPUList(s string) (*unix.CPUSet, error) {
	var set unix.CPUSet
	set.Zero()
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty CPU list")
	}
	maxCPU := len(set) * 64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil || first < 0 {
			return nil, fmt.Errorf("bad CPU %q in %q", lo, s)
		}
		end := first
		if isRange {
			end, err = strconv.Atoi(hi)
			if err != nil || end < first {
				return nil, fmt.Errorf("bad CPU range %q in %q", part, s)
			}
		}
		if end >= maxCPU {
			return nil, fmt.Errorf("CPU %d in %q is above the highest supported CPU %d", end, s, maxCPU-1)
		}
		for c := first; c <= end; c++ {
			set.Set(c)
		}
	}
	return &set, nil
}

func applyFinalAffinity(a *specs.CPUAffinity) error {
	if a == nil || a.Final == "" {
		return nil
	}
	set, err := ParseCPUList(a.Final)
	if err != nil {
		return fmt.Errorf("process.execCPUAffinity.final: %w", err)
	}
	if err := unix.SchedSetaffinity(0, set); err != nil {
		return fmt.Errorf("process.execCPUAffinity.final: sched_setaffinity %s: %w", a.Final, err)
	}
	return nil
}

// SetRlimits applies process.rlimits to another process with prlimit(2).
// The runtime uses it on a container's init from outside: a small
// RLIMIT_AS inside the init would leave the Go runtime and libseccomp no
// room to finish setting up.
func SetRlimits(pid int, rls []specs.POSIXRlimit) error {
	parsed, err := parseRlimits(rls)
	if err != nil {
		return err
	}
	for _, r := range parsed {
		lim := r.lim
		if err := unix.Prlimit(pid, r.resource, &lim, nil); err != nil {
			return fmt.Errorf("process.rlimits[%d]: %s soft %d hard %d: %w", r.index, r.name, lim.Cur, lim.Max, err)
		}
	}
	return nil
}
