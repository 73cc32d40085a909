package seccomp

import (
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
)

// FlagTsync is the runtime-spec flag asking the filter to be synchronised
// across all threads. specs-go has no constant for it.
const FlagTsync specs.LinuxSeccompFlag = "SECCOMP_FILTER_FLAG_TSYNC"

// maxArgs is how many arguments a Linux system call has at most; args[].index
// counts from 0.
const maxArgs = 6

// maxRet is the widest errnoRet the kernel can carry: SECCOMP_RET_DATA is the
// low 16 bits of the filter's return value.
const maxRet = 0xffff

// minNotifyAPI is the libseccomp API level that supports user notification
// together with TSYNC (libseccomp 2.5 and Linux 5.7).
const minNotifyAPI = 6

var actions = map[specs.LinuxSeccompAction]libseccomp.ScmpAction{
	// libseccomp's SCMP_ACT_KILL is the thread-killing action, as in runc.
	specs.ActKill:        libseccomp.ActKillThread,
	specs.ActKillThread:  libseccomp.ActKillThread,
	specs.ActKillProcess: libseccomp.ActKillProcess,
	specs.ActTrap:        libseccomp.ActTrap,
	specs.ActErrno:       libseccomp.ActErrno,
	specs.ActTrace:       libseccomp.ActTrace,
	specs.ActAllow:       libseccomp.ActAllow,
	specs.ActLog:         libseccomp.ActLog,
	specs.ActNotify:      libseccomp.ActNotify,
}

var operators = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual:     libseccomp.CompareNotEqual,
	specs.OpLessThan:     libseccomp.CompareLess,
	specs.OpLessEqual:    libseccomp.CompareLessOrEqual,
	specs.OpEqualTo:      libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual,
	specs.OpGreaterThan:  libseccomp.CompareGreater,
	specs.OpMaskedEqual:  libseccomp.CompareMaskedEqual,
}

var arches = map[specs.Arch]libseccomp.ScmpArch{
	specs.ArchX86:         libseccomp.ArchX86,
	specs.ArchX86_64:      libseccomp.ArchAMD64,
	specs.ArchX32:         libseccomp.ArchX32,
	specs.ArchARM:         libseccomp.ArchARM,
	specs.ArchAARCH64:     libseccomp.ArchARM64,
	specs.ArchMIPS:        libseccomp.ArchMIPS,
	specs.ArchMIPS64:      libseccomp.ArchMIPS64,
	specs.ArchMIPS64N32:   libseccomp.ArchMIPS64N32,
	specs.ArchMIPSEL:      libseccomp.ArchMIPSEL,
	specs.ArchMIPSEL64:    libseccomp.ArchMIPSEL64,
	specs.ArchMIPSEL64N32: libseccomp.ArchMIPSEL64N32,
	specs.ArchPPC:         libseccomp.ArchPPC,
	specs.ArchPPC64:       libseccomp.ArchPPC64,
	specs.ArchPPC64LE:     libseccomp.ArchPPC64LE,
	specs.ArchS390:        libseccomp.ArchS390,
	specs.ArchS390X:       libseccomp.ArchS390X,
	specs.ArchPARISC:      libseccomp.ArchPARISC,
	specs.ArchPARISC64:    libseccomp.ArchPARISC64,
	specs.ArchRISCV64:     libseccomp.ArchRISCV64,
	specs.ArchLOONGARCH64: libseccomp.ArchLOONGARCH64,
	specs.ArchM68K:        libseccomp.ArchM68K,
	specs.ArchSH:          libseccomp.ArchSH,
	specs.ArchSHEB:        libseccomp.ArchSHEB,
}

// flags are the runtime-spec filter flags, each with the filter attribute
// that asks libseccomp for it. TSYNC has none: libseccomp-golang sets it on
// every filter it creates.
var flags = map[specs.LinuxSeccompFlag]func(*libseccomp.ScmpFilter) error{
	FlagTsync:                              func(*libseccomp.ScmpFilter) error { return nil },
	specs.LinuxSeccompFlagLog:              func(f *libseccomp.ScmpFilter) error { return f.SetLogBit(true) },
	specs.LinuxSeccompFlagSpecAllow:        func(f *libseccomp.ScmpFilter) error { return f.SetSSB(true) },
	specs.LinuxSeccompFlagWaitKillableRecv: func(f *libseccomp.ScmpFilter) error { return f.SetWaitKill(true) },
}

// takesErrno reports whether an action carries errnoRet: the spec makes a
// value on any other action an error.
func takesErrno(a specs.LinuxSeccompAction) bool {
	return a == specs.ActErrno || a == specs.ActTrace
}

// Validate checks c without touching the process or asking libseccomp to
// build anything; every error names the offending field in runtime-spec JSON
// terms, e.g. `linux.seccomp.syscalls[2].args[0].op: unknown operator
// "SCMP_CMP_FOO"`. A nil c is valid (no filter). Syscall names are not
// checked against a table: names this kernel or libseccomp does not know are
// skipped by Compile, as runc does, so one profile serves several kernels.
//
// Beyond the spec's own rules it refuses, like runc, SCMP_ACT_NOTIFY as the
// default action and on the syscalls that hand the listener over after the
// filter is loaded ("write" as runc, and "sendmsg", which SendListenerConn
// uses from the container's init): the agent cannot answer before it has the
// listener, so the init would hang. It also refuses SCMP_ACT_NOTIFY without a
// listenerPath (nobody would ever answer).
func Validate(c *specs.LinuxSeccomp) error {
	if c == nil {
		return nil
	}
	const f = "linux.seccomp"
	switch _, ok := actions[c.DefaultAction]; {
	case c.DefaultAction == "":
		return fmt.Errorf("%s.defaultAction: required", f)
	case !ok:
		return fmt.Errorf("%s.defaultAction: unknown action %q", f, c.DefaultAction)
	case c.DefaultAction == specs.ActNotify:
		return fmt.Errorf("%s.defaultAction: %s cannot be the default action: the runtime itself would need the agent to answer", f, c.DefaultAction)
	}
	if err := checkErrno(f+".defaultErrnoRet", c.DefaultAction, c.DefaultErrnoRet); err != nil {
		return err
	}
	for i, a := range c.Architectures {
		if _, ok := arches[a]; !ok {
			return fmt.Errorf("%s.architectures[%d]: unknown architecture %q", f, i, a)
		}
	}
	for i, fl := range c.Flags {
		if _, ok := flags[fl]; !ok {
			return fmt.Errorf("%s.flags[%d]: unknown flag %q", f, i, fl)
		}
	}
	if c.ListenerMetadata != "" && c.ListenerPath == "" {
		return fmt.Errorf("%s.listenerMetadata: must not be set without listenerPath", f)
	}
	notifyAt := -1
	for i, sc := range c.Syscalls {
		p := fmt.Sprintf("%s.syscalls[%d]", f, i)
		if len(sc.Names) == 0 {
			return fmt.Errorf("%s.names: must name at least one syscall", p)
		}
		for j, n := range sc.Names {
			if n == "" {
				return fmt.Errorf("%s.names[%d]: empty syscall name", p, j)
			}
			if (n == "write" || n == "sendmsg") && sc.Action == specs.ActNotify {
				return fmt.Errorf("%s.names[%d]: %s cannot be used on %s: the runtime uses it to hand the listener over after loading the filter", p, j, sc.Action, n)
			}
		}
		switch _, ok := actions[sc.Action]; {
		case sc.Action == "":
			return fmt.Errorf("%s.action: required", p)
		case !ok:
			return fmt.Errorf("%s.action: unknown action %q", p, sc.Action)
		}
		if sc.Action == specs.ActNotify && notifyAt < 0 {
			notifyAt = i
		}
		if err := checkErrno(p+".errnoRet", sc.Action, sc.ErrnoRet); err != nil {
			return err
		}
		for j, a := range sc.Args {
			ap := fmt.Sprintf("%s.args[%d]", p, j)
			if a.Index >= maxArgs {
				return fmt.Errorf("%s.index: %d out of range: a syscall has arguments 0 to %d", ap, a.Index, maxArgs-1)
			}
			switch _, ok := operators[a.Op]; {
			case a.Op == "":
				return fmt.Errorf("%s.op: required", ap)
			case !ok:
				return fmt.Errorf("%s.op: unknown operator %q", ap, a.Op)
			}
		}
	}
	if notifyAt >= 0 && c.ListenerPath == "" {
		return fmt.Errorf("%s.listenerPath: required because syscalls[%d] uses %s", f, notifyAt, specs.ActNotify)
	}
	return nil
}

func checkErrno(field string, a specs.LinuxSeccompAction, ret *uint) error {
	if ret == nil {
		return nil
	}
	if !takesErrno(a) {
		return fmt.Errorf("%s: set but action %s does not return an errno", field, a)
	}
	if *ret > maxRet {
		return fmt.Errorf("%s: %d does not fit the filter's 16-bit return data", field, *ret)
	}
	return nil
}

// toAction maps a validated action and its errnoRet; ERRNO and TRACE default
// to EPERM as the spec says.
func toAction(a specs.LinuxSeccompAction, ret *uint) libseccomp.ScmpAction {
	act := actions[a]
	if takesErrno(a) {
		code := uint(1) // EPERM
		if ret != nil {
			code = *ret
		}
		act = act.SetReturnCode(int16(code))
	}
	return act
}

// Filter is a compiled linux.seccomp section, ready to load. It holds
// libseccomp state outside the Go heap: Close it when done.
type Filter struct {
	scmp   *libseccomp.ScmpFilter
	notify bool
}

// Compile validates c and builds the filter without loading it. Syscall names
// libseccomp cannot resolve are skipped, as runc does, rather than failing:
// profiles name syscalls of newer kernels and other architectures. A rule
// whose action equals the default action is dropped (libseccomp refuses it
// and it changes nothing). Several args with the same index on one entry
// would be an impossible AND for libseccomp, so such an entry becomes one
// rule per arg (OR), as in runc; otherwise all args of an entry must match
// together.
func Compile(c *specs.LinuxSeccomp) (*Filter, error) {
	if c == nil {
		return nil, errors.New("linux.seccomp: no configuration to compile")
	}
	if err := Validate(c); err != nil {
		return nil, err
	}
	const fld = "linux.seccomp"
	notify := false
	for _, sc := range c.Syscalls {
		notify = notify || sc.Action == specs.ActNotify
	}
	if notify {
		if api, _ := libseccomp.GetAPI(); api < minNotifyAPI {
			maj, min, mic := libseccomp.GetLibraryVersion()
			return nil, fmt.Errorf("%s: %s needs libseccomp API level %d (libseccomp >= 2.5.0, Linux >= 5.7); have level %d with libseccomp %d.%d.%d",
				fld, specs.ActNotify, minNotifyAPI, api, maj, min, mic)
		}
	}
	def := toAction(c.DefaultAction, c.DefaultErrnoRet)
	sf, err := libseccomp.NewFilter(def)
	if err != nil {
		return nil, fmt.Errorf("%s.defaultAction: create filter: %w", fld, err)
	}
	f := &Filter{scmp: sf, notify: notify}
	if err := f.build(c, def); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (f *Filter) build(c *specs.LinuxSeccomp, def libseccomp.ScmpAction) error {
	const fld = "linux.seccomp"
	sf := f.scmp
	// The container's init sets no_new_privs itself when the spec asks;
	// the filter must not do it behind its back.
	if err := sf.SetNoNewPrivsBit(false); err != nil {
		return fmt.Errorf("%s: clear the filter's no_new_privs attribute: %w", fld, err)
	}
	for i, a := range c.Architectures {
		if err := sf.AddArch(arches[a]); err != nil {
			return fmt.Errorf("%s.architectures[%d]: %s: %w", fld, i, a, err)
		}
	}
	for i, fl := range c.Flags {
		if err := flags[fl](sf); err != nil {
			return fmt.Errorf("%s.flags[%d]: %s: %w", fld, i, fl, err)
		}
	}
	// A binary tree keeps lookups logarithmic for long allow lists such as
	// Docker's; libseccomp up to 2.5.4 mishandles it for empty filters.
	if len(c.Syscalls) > 32 {
		_ = sf.SetOptimize(2) // older libseccomp: keep the linear filter
	}
	for i, sc := range c.Syscalls {
		act := toAction(sc.Action, sc.ErrnoRet)
		if act == def {
			continue
		}
		conds, separate, err := conditions(sc.Args)
		if err != nil {
			return fmt.Errorf("%s.syscalls[%d].args: %w", fld, i, err)
		}
		for j, name := range sc.Names {
			nr, err := libseccomp.GetSyscallFromName(name)
			if err != nil {
				continue // unknown to this libseccomp: skipped like runc
			}
			if err := addRule(sf, nr, act, conds, separate); err != nil {
				return fmt.Errorf("%s.syscalls[%d].names[%d]: add rule for %q: %w", fld, i, j, name, err)
			}
		}
	}
	return nil
}

// conditions converts args; separate says they must go in one rule each
// because two of them test the same argument.
func conditions(args []specs.LinuxSeccompArg) ([]libseccomp.ScmpCondition, bool, error) {
	var seen [maxArgs]int
	separate := false
	conds := make([]libseccomp.ScmpCondition, 0, len(args))
	for j, a := range args {
		c, err := libseccomp.MakeCondition(a.Index, operators[a.Op], a.Value, a.ValueTwo)
		if err != nil {
			return nil, false, fmt.Errorf("[%d]: %w", j, err)
		}
		seen[a.Index]++
		separate = separate || seen[a.Index] > 1
		conds = append(conds, c)
	}
	return conds, separate, nil
}

func addRule(sf *libseccomp.ScmpFilter, nr libseccomp.ScmpSyscall, act libseccomp.ScmpAction, conds []libseccomp.ScmpCondition, separate bool) error {
	switch {
	case len(conds) == 0:
		return sf.AddRule(nr, act)
	case separate:
		for _, c := range conds {
			if err := sf.AddRuleConditional(nr, act, []libseccomp.ScmpCondition{c}); err != nil {
				return err
			}
		}
		return nil
	default:
		return sf.AddRuleConditional(nr, act, conds)
	}
}

// Load installs the filter on the calling process and returns the seccomp
// user-notification listener fd when the configuration uses SCMP_ACT_NOTIFY,
// else -1. The fd is close-on-exec and belongs to the caller, who hands it to
// the agent (SendListener, usually from the runtime after the init passed it
// back) and closes it.
//
// The filter is loaded with TSYNC, so every thread of the process gets it,
// not only the calling one: the container's init is a Go program whose
// goroutines move between threads, and any of them could be the one that
// execs. TSYNC fails if another thread already has a different filter.
//
// Load does not set no_new_privs: the filter's NNP attribute is off, and the
// init sets PR_SET_NO_NEW_PRIVS itself when process.noNewPrivileges asks.
// Without no_new_privs the kernel lets only a task with CAP_SYS_ADMIN install
// a filter, so the order is:
//
//   - process.noNewPrivileges false: Load before dropping capabilities and
//     changing uid (CAP_SYS_ADMIN still held); the filter must then allow
//     what the init does afterwards (capset, setresuid, prctl, ...);
//   - process.noNewPrivileges true: set no_new_privs, then Load as late as
//     possible, right before execve.
//
// With SCMP_ACT_NOTIFY the notified syscalls block until the agent answers,
// so the init must hand over the fd before it makes any of them.
func (f *Filter) Load() (listenerFd int, err error) {
	if f == nil || f.scmp == nil || !f.scmp.IsValid() {
		return -1, errors.New("linux.seccomp: load: filter is closed or was never compiled")
	}
	if err := f.scmp.Load(); err != nil {
		return -1, fmt.Errorf("linux.seccomp: load filter into the kernel: %w", err)
	}
	if !f.notify {
		return -1, nil
	}
	fd, err := f.scmp.GetNotifFd()
	if err != nil {
		return -1, fmt.Errorf("linux.seccomp: filter loaded but its listener fd is unavailable: %w", err)
	}
	if fd < 0 {
		return -1, errors.New("linux.seccomp: filter loaded but the kernel returned no listener fd")
	}
	return int(fd), nil
}

// Close releases libseccomp's copy of the filter. A loaded filter stays in
// the kernel; the listener fd returned by Load stays open. Close is safe to
// call more than once and on nil.
func (f *Filter) Close() {
	if f == nil || f.scmp == nil {
		return
	}
	f.scmp.Release()
}

// Notify reports whether the filter uses SCMP_ACT_NOTIFY, i.e. whether Load
// returns a listener fd that must be handed to the agent.
func (f *Filter) Notify() bool { return f != nil && f.notify }
