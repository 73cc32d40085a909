package seccomp

import (
	"slices"

	"github.com/opencontainers/runtime-spec/specs-go/features"
	libseccomp "github.com/seccomp/libseccomp-golang"
)

// Features reports linux.seccomp for `berth-runtime features`: the actions,
// operators and architectures Validate accepts, the flags it knows, and the
// subset of flags this libseccomp and kernel can actually set (for example
// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs libseccomp 2.6).
func Features() *features.Seccomp {
	enabled := true
	f := &features.Seccomp{Enabled: &enabled}
	for a := range actions {
		f.Actions = append(f.Actions, string(a))
	}
	for o := range operators {
		f.Operators = append(f.Operators, string(o))
	}
	for a, sa := range arches {
		// Architectures this libseccomp was built without are refused by
		// Compile, so they are not reported.
		if archSupported(sa) {
			f.Archs = append(f.Archs, string(a))
		}
	}
	f.SupportedFlags = []string{}
	for fl, set := range flags {
		f.KnownFlags = append(f.KnownFlags, string(fl))
		if flagSupported(set) {
			f.SupportedFlags = append(f.SupportedFlags, string(fl))
		}
	}
	for _, l := range [][]string{f.Actions, f.Operators, f.Archs, f.KnownFlags, f.SupportedFlags} {
		slices.Sort(l)
	}
	return f
}

func archSupported(a libseccomp.ScmpArch) bool {
	sf, err := libseccomp.NewFilter(libseccomp.ActAllow)
	if err != nil {
		return false
	}
	defer sf.Release()
	return sf.AddArch(a) == nil
}

func flagSupported(set func(*libseccomp.ScmpFilter) error) bool {
	sf, err := libseccomp.NewFilter(libseccomp.ActAllow)
	if err != nil {
		return false
	}
	defer sf.Release()
	return set(sf) == nil
}
