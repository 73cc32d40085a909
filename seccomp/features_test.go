package seccomp

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
)

func TestFeatures(t *testing.T) {
	f := Features()
	if f.Enabled == nil || !*f.Enabled {
		t.Fatal("seccomp not reported enabled")
	}
	for _, a := range []specs.LinuxSeccompAction{specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap, specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify} {
		if !slices.Contains(f.Actions, string(a)) {
			t.Errorf("action %s missing", a)
		}
	}
	if len(f.Operators) != 7 || !slices.Contains(f.Operators, string(specs.OpMaskedEqual)) {
		t.Errorf("operators %v", f.Operators)
	}
	for _, a := range []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64, specs.ArchRISCV64} {
		if !slices.Contains(f.Archs, string(a)) {
			t.Errorf("arch %s missing from %v", a, f.Archs)
		}
	}
	if len(f.KnownFlags) != 4 {
		t.Errorf("known flags %v", f.KnownFlags)
	}
	for _, fl := range []specs.LinuxSeccompFlag{FlagTsync, specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow} {
		if !slices.Contains(f.SupportedFlags, string(fl)) {
			t.Errorf("flag %s not supported", fl)
		}
	}
	// What this libseccomp cannot set is known but not supported.
	maj, min, _ := libseccomp.GetLibraryVersion()
	old := maj == 2 && min < 6
	if got := slices.Contains(f.SupportedFlags, string(specs.LinuxSeccompFlagWaitKillableRecv)); got == old {
		t.Errorf("WAIT_KILLABLE_RECV supported = %v with libseccomp %d.%d", got, maj, min)
	}
	if got := slices.Contains(f.Archs, string(specs.ArchLOONGARCH64)); got == old {
		t.Errorf("LOONGARCH64 reported = %v with libseccomp %d.%d", got, maj, min)
	}
}

// TestFeaturesArchsCompile: Features reports exactly the architectures
// Compile accepts here (libseccomp refuses to mix byte orders in a filter).
func TestFeaturesArchsCompile(t *testing.T) {
	f := Features()
	for a := range arches {
		_, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{a}})
		if reported := slices.Contains(f.Archs, string(a)); reported != (err == nil) {
			t.Errorf("%s: reported %v, Compile error %v", a, reported, err)
		}
	}
}
