package process

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// capName is the runtime-spec spelling of a capability: "CAP_SYS_ADMIN".
func capName(c capability.Cap) string {
	return "CAP_" + strings.ToUpper(c.String())
}

// ParseCapability accepts a capability name as the runtime spec writes it
// ("CAP_SYS_ADMIN") and the short forms people type on command lines
// ("SYS_ADMIN", "sys_admin"). Capabilities newer than the running kernel
// still parse: whether the kernel has one is decided when it is applied.
func ParseCapability(name string) (capability.Cap, error) {
	upper := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(upper, "CAP_") {
		upper = "CAP_" + upper
	}
	for _, c := range capability.ListKnown() {
		if capName(c) == upper {
			return c, nil
		}
	}
	return 0, fmt.Errorf("unknown capability %q", name)
}

// KnownCapabilities lists every capability name this runtime recognizes,
// whether or not the running kernel has it, as `features` reports them.
func KnownCapabilities() []string {
	known := capability.ListKnown()
	names := make([]string, 0, len(known))
	for _, c := range known {
		names = append(names, capName(c))
	}
	return names
}

// capSetField pairs a runtime-spec capability list with its JSON name.
type capSetField struct {
	field string
	names []string
}

func capFields(c *specs.LinuxCapabilities) []capSetField {
	return []capSetField{
		{"bounding", c.Bounding},
		{"effective", c.Effective},
		{"inheritable", c.Inheritable},
		{"permitted", c.Permitted},
		{"ambient", c.Ambient},
	}
}

// CheckCapabilities reports the first name in c that is not a capability,
// naming its field (process.capabilities.bounding[2]). Prepare itself only
// warns about such names, as runc does, so that configurations runc accepts
// keep working; callers that build configurations can be stricter.
func CheckCapabilities(c *specs.LinuxCapabilities) error {
	if c == nil {
		return nil
	}
	for _, f := range capFields(c) {
		for i, n := range f.names {
			if _, err := parseSpecCap(n); err != nil {
				return fmt.Errorf("process.capabilities.%s[%d]: %w", f.field, i, err)
			}
		}
	}
	return nil
}

// parseSpecCap is stricter than ParseCapability: a config.json must spell
// names exactly, as runc requires.
func parseSpecCap(name string) (capability.Cap, error) {
	for _, c := range capability.ListKnown() {
		if capName(c) == name {
			return c, nil
		}
	}
	return 0, fmt.Errorf("unknown capability %q", name)
}

// capMask is a set of capabilities, bit n for capability n.
type capMask uint64

func (m capMask) has(c capability.Cap) bool { return m&(1<<uint(c)) != 0 }

func (m capMask) names() []string {
	var out []string
	for c := capability.Cap(0); c < 64; c++ {
		if m.has(c) {
			out = append(out, capName(c))
		}
	}
	return out
}

// capState is the five capability sets of a thread.
type capState struct {
	bounding, effective, inheritable, permitted, ambient capMask
}

// capPlan is what applyCaps will install, and what was asked for but left
// out, for the warning.
type capPlan struct {
	want    capState
	skipped []string // "process.capabilities.bounding[2]: CAP_FOO (reason)"
}

// planCaps decides the capability sets to install from the spec and the
// sets the process holds now. It drops, with a note for the warning, names
// that are not capabilities, capabilities above the kernel's last one, and
// capabilities the process cannot hand on: a set can only be narrowed, so
// a container asking for CAP_SYS_RESOURCE on a host whose bounding set lacks
// it runs without it rather than failing.
func planCaps(c *specs.LinuxCapabilities, have capState, last capability.Cap) capPlan {
	var plan capPlan
	parse := func(field string, names []string, avail capMask, why string) capMask {
		var m capMask
		for i, n := range names {
			cp, err := parseSpecCap(n)
			switch {
			case err != nil:
				plan.skipped = append(plan.skipped, fmt.Sprintf("process.capabilities.%s[%d]: %q (unknown)", field, i, n))
			case cp > last:
				plan.skipped = append(plan.skipped, fmt.Sprintf("process.capabilities.%s[%d]: %s (unknown to this kernel)", field, i, n))
			case !avail.has(cp):
				plan.skipped = append(plan.skipped, fmt.Sprintf("process.capabilities.%s[%d]: %s (%s)", field, i, n, why))
			default:
				m |= 1 << uint(cp)
			}
		}
		return m
	}
	w := &plan.want
	w.bounding = parse("bounding", c.Bounding, have.bounding, "not in the runtime's bounding set")
	w.permitted = parse("permitted", c.Permitted, have.permitted, "not permitted to the runtime")
	w.effective = parse("effective", c.Effective, w.permitted, "not in the permitted set")
	// Without CAP_SETPCAP (gone once the uid changes) the inheritable set
	// can only gain what is permitted.
	w.inheritable = parse("inheritable", c.Inheritable, have.inheritable|have.permitted, "not permitted to the runtime")
	w.ambient = parse("ambient", c.Ambient, w.permitted&w.inheritable, "not in both the permitted and inheritable sets")
	return plan
}

// loadCaps reads the calling thread's capability sets.
func loadCaps() (capability.Capabilities, capState, error) {
	pc, err := capability.NewPid2(0)
	if err != nil {
		return nil, capState{}, fmt.Errorf("read capabilities: %w", err)
	}
	if err := pc.Load(); err != nil {
		// Load reads the bounding and ambient sets from /proc/self/status;
		// a container without /proc (or a joined mount namespace) has
		// none. Ask the kernel directly instead.
		if err := loadCapsSyscall(pc); err != nil {
			return nil, capState{}, fmt.Errorf("read capabilities: %w", err)
		}
	}
	var s capState
	for _, c := range capability.ListKnown() {
		bit := capMask(1) << uint(c)
		if pc.Get(capability.BOUNDING, c) {
			s.bounding |= bit
		}
		if pc.Get(capability.EFFECTIVE, c) {
			s.effective |= bit
		}
		if pc.Get(capability.INHERITABLE, c) {
			s.inheritable |= bit
		}
		if pc.Get(capability.PERMITTED, c) {
			s.permitted |= bit
		}
		if pc.Get(capability.AMBIENT, c) {
			s.ambient |= bit
		}
	}
	return pc, s, nil
}

// capApplier carries the thread's capability handle from the bounding-set
// step (which must precede the uid change: dropping needs CAP_SETPCAP) to
// the final sets (which must follow it: setresuid clears effective).
type capApplier struct {
	pc   capability.Capabilities
	plan capPlan
	last capability.Cap
}

func newCapApplier(c *specs.LinuxCapabilities) (*capApplier, error) {
	if c == nil {
		// runc leaves the sets alone when the spec has none.
		return nil, nil
	}
	last, err := lastCap()
	if err != nil {
		return nil, fmt.Errorf("process.capabilities: find the kernel's last capability: %w", err)
	}
	pc, have, err := loadCaps()
	if err != nil {
		return nil, fmt.Errorf("process.capabilities: %w", err)
	}
	plan := planCaps(c, have, last)
	if len(plan.skipped) > 0 {
		slog.Warn("ignoring unknown or unavailable capabilities", "capabilities", plan.skipped)
	}
	return &capApplier{pc: pc, plan: plan, last: last}, nil
}

func (a *capApplier) applyBounding() error {
	if a == nil {
		return nil
	}
	for c := capability.Cap(0); c <= a.last; c++ {
		if a.plan.want.bounding.has(c) {
			continue
		}
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("process.capabilities.bounding: drop %s: %w", capName(c), err)
		}
	}
	return nil
}

func (a *capApplier) applySets() error {
	if a == nil {
		return nil
	}
	w := a.plan.want
	a.pc.Clear(capability.CAPS | capability.AMBIENT)
	for c := capability.Cap(0); c <= a.last; c++ {
		for _, s := range []struct {
			t capability.CapType
			m capMask
		}{
			{capability.EFFECTIVE, w.effective},
			{capability.PERMITTED, w.permitted},
			{capability.INHERITABLE, w.inheritable},
			{capability.AMBIENT, w.ambient},
		} {
			if s.m.has(c) {
				a.pc.Set(s.t, c)
			}
		}
	}
	if err := a.pc.Apply(capability.CAPS); err != nil {
		return fmt.Errorf("process.capabilities: set effective %v, permitted %v, inheritable %v: %w",
			w.effective.names(), w.permitted.names(), w.inheritable.names(), err)
	}
	if err := a.pc.Apply(capability.AMBS); err != nil {
		return fmt.Errorf("process.capabilities.ambient: raise %v: %w", w.ambient.names(), err)
	}
	return nil
}

// loadCapsSyscall fills pc from capget(2) and prctl(2), without /proc.
func loadCapsSyscall(pc capability.Capabilities) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	pc.Clear(capability.CAPS | capability.BOUNDS | capability.AMBS)
	last, err := lastCap()
	if err != nil {
		return err
	}
	for _, c := range capability.ListKnown() {
		if c > last {
			continue
		}
		i, bit := uint(c)/32, uint32(1)<<(uint(c)%32)
		if data[i].Effective&bit != 0 {
			pc.Set(capability.EFFECTIVE, c)
		}
		if data[i].Permitted&bit != 0 {
			pc.Set(capability.PERMITTED, c)
		}
		if data[i].Inheritable&bit != 0 {
			pc.Set(capability.INHERITABLE, c)
		}
		if r, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err == nil && r == 1 {
			pc.Set(capability.BOUNDING, c)
		}
		if r, err := unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, uintptr(c), 0, 0); err == nil && r == 1 {
			pc.Set(capability.AMBIENT, c)
		}
	}
	return nil
}

// lastCap is the kernel's highest capability. capability.LastCap reads
// /proc/sys/kernel/cap_last_cap; without /proc, probe the bounding set:
// PR_CAPBSET_READ fails with EINVAL past the last one.
func lastCap() (capability.Cap, error) {
	if c, err := capability.LastCap(); err == nil {
		return c, nil
	}
	var last capability.Cap
	for c := capability.Cap(0); c < 64; c++ {
		if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err != nil {
			break
		}
		last = c
	}
	return last, nil
}
