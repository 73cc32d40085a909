// Package profile holds berth's default seccomp profile, Docker's, and
// resolves it for a container's capabilities and this host's architecture
// and kernel. It is pure data and Go, without libseccomp, so that the
// engine can put the profile into a bundle without linking the filter
// compiler; package seccomp compiles and loads it in the runtime.
package profile

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

//go:embed default.json
var defaultProfileJSON []byte

// profile is a seccomp profile in moby's format: runtime-spec syscall rules
// with conditions that are resolved before the profile becomes a
// linux.seccomp section.
type profile struct {
	DefaultAction   specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet *uint                    `json:"defaultErrnoRet,omitempty"`
	ArchMap         []archMapEntry           `json:"archMap"`
	Syscalls        []profileRule            `json:"syscalls"`
}

type archMapEntry struct {
	Arch    specs.Arch   `json:"architecture"`
	SubArch []specs.Arch `json:"subArchitectures"`
}

type profileRule struct {
	specs.LinuxSyscall
	Comment  string    `json:"comment,omitempty"`
	Includes condition `json:"includes"`
	Excludes condition `json:"excludes"`
}

// condition is a rule's "includes" (all must hold for the rule to apply)
// or "excludes" (any one holding drops the rule).
type condition struct {
	// Caps are capability names as in the runtime spec ("CAP_SYS_ADMIN").
	Caps []string `json:"caps,omitempty"`
	// Arches are Go architecture names (runtime.GOARCH), plus moby's
	// "x86" and "x32" for the 32-bit x86 ABIs.
	Arches []string `json:"arches,omitempty"`
	// MinKernel is "major.minor".
	MinKernel string `json:"minKernel,omitempty"`
}

// host is what conditional rules are resolved against.
type host struct {
	goarch string
	// kernel is major<<16|minor, or 0 when unknown (treated as new enough:
	// minKernel conditions in Docker's profile name kernels from 2016).
	kernel int
}

// Default returns berth's default profile, Docker's default seccomp profile,
// as a linux.seccomp section resolved for caps (the container's capability
// names, e.g. "CAP_SYS_ADMIN"; the bounding set is what Docker uses) and this
// host's architecture and kernel: defaultAction SCMP_ACT_ERRNO with errnoRet
// EPERM, the host's architecture and its companion ABIs (x86_64 with x86 and
// x32, aarch64 with arm, ...), the allow list, and the rules whose
// conditions hold. For example without CAP_SYS_ADMIN, mount, unshare and
// setns are refused, clone is allowed only without namespace flags and
// clone3 fails with ENOSYS; with it they are allowed.
//
// Each call returns a new value the caller may modify.
func Default(caps []string) *specs.LinuxSeccomp {
	return defaultFor(caps, host{goarch: runtime.GOARCH, kernel: kernelVersion()})
}

func defaultFor(caps []string, h host) *specs.LinuxSeccomp {
	var p profile
	if err := json.Unmarshal(defaultProfileJSON, &p); err != nil {
		// The file is compiled in and parsed by the package's tests, so
		// this is a broken build, not bad input.
		panic(fmt.Sprintf("seccomp profile: embedded default.json: %v", err))
	}
	return p.resolve(caps, h)
}

func (p *profile) resolve(caps []string, h host) *specs.LinuxSeccomp {
	have := make(map[string]bool, len(caps))
	for _, c := range caps {
		have[capName(c)] = true
	}
	out := &specs.LinuxSeccomp{
		DefaultAction:   p.DefaultAction,
		DefaultErrnoRet: p.DefaultErrnoRet,
	}
	if native, ok := goarchToSpec[h.goarch]; ok {
		for _, m := range p.ArchMap {
			if m.Arch == native {
				out.Architectures = append(append(out.Architectures, m.Arch), m.SubArch...)
			}
		}
	}
	for _, r := range p.Syscalls {
		if !r.applies(have, h) {
			continue
		}
		out.Syscalls = append(out.Syscalls, r.LinuxSyscall)
	}
	return out
}

func (r *profileRule) applies(have map[string]bool, h host) bool {
	in, ex := r.Includes, r.Excludes
	for _, c := range in.Caps {
		if !have[capName(c)] {
			return false
		}
	}
	if len(in.Arches) > 0 && !matchArch(in.Arches, h.goarch) {
		return false
	}
	if in.MinKernel != "" && h.kernel != 0 && h.kernel < parseKernel(in.MinKernel) {
		return false
	}
	for _, c := range ex.Caps {
		if have[capName(c)] {
			return false
		}
	}
	if len(ex.Arches) > 0 && matchArch(ex.Arches, h.goarch) {
		return false
	}
	if ex.MinKernel != "" && (h.kernel == 0 || h.kernel >= parseKernel(ex.MinKernel)) {
		return false
	}
	return true
}

// capName accepts "sys_admin", "SYS_ADMIN" and "CAP_SYS_ADMIN" alike, as
// Docker's --cap-add does.
func capName(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// goarchAliases are the names a profile may use for a Go architecture.
var goarchAliases = map[string][]string{
	"386":   {"x86"},
	"amd64": {"x86_64"},
	"arm64": {"aarch64"},
}

func matchArch(list []string, goarch string) bool {
	names := append([]string{goarch}, goarchAliases[goarch]...)
	return slices.ContainsFunc(list, func(a string) bool { return slices.Contains(names, a) })
}

var goarchToSpec = map[string]specs.Arch{
	"386":      specs.ArchX86,
	"amd64":    specs.ArchX86_64,
	"arm":      specs.ArchARM,
	"arm64":    specs.ArchAARCH64,
	"mips":     specs.ArchMIPS,
	"mipsle":   specs.ArchMIPSEL,
	"mips64":   specs.ArchMIPS64,
	"mips64le": specs.ArchMIPSEL64,
	"ppc64":    specs.ArchPPC64,
	"ppc64le":  specs.ArchPPC64LE,
	"s390x":    specs.ArchS390X,
	"riscv64":  specs.ArchRISCV64,
	"loong64":  specs.ArchLOONGARCH64,
}

// parseKernel turns "major.minor[.patch][-extra]" into major<<16|minor, 0 if
// it cannot.
func parseKernel(s string) int {
	s, _, _ = strings.Cut(s, "-")
	parts := strings.SplitN(s, ".", 3)
	if len(parts) < 2 {
		return 0
	}
	maj, err1 := strconv.Atoi(parts[0])
	minor := parts[1]
	if i := strings.IndexFunc(minor, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = minor[:i] // "1rc2"
	}
	min, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil || maj < 0 || min < 0 || min > 0xffff {
		return 0
	}
	return maj<<16 | min
}

func kernelVersion() int {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return 0
	}
	return parseKernel(unix.ByteSliceToString(u.Release[:]))
}

// Resolve reads a seccomp profile a user gives (--security-opt
// seccomp=FILE): Docker's format, with an archMap and conditional rules,
// or a plain runtime-spec linux.seccomp section with "architectures", and
// resolves it as Default does.
func Resolve(data []byte, caps []string) (*specs.LinuxSeccomp, error) {
	var p struct {
		profile
		Architectures []specs.Arch `json:"architectures"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("not a seccomp profile: %w", err)
	}
	if p.DefaultAction == "" {
		return nil, fmt.Errorf("not a seccomp profile: no defaultAction")
	}
	out := p.profile.resolve(caps, host{goarch: runtime.GOARCH, kernel: kernelVersion()})
	if len(p.ArchMap) == 0 && len(p.Architectures) > 0 {
		out.Architectures = p.Architectures
	}
	return out, nil
}
