package profile

import (
	"encoding/json"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// rulesFor returns the rules of c that name syscall.
func rulesFor(c *specs.LinuxSeccomp, syscall string) []specs.LinuxSyscall {
	var out []specs.LinuxSyscall
	for _, r := range c.Syscalls {
		if slices.Contains(r.Names, syscall) {
			out = append(out, r)
		}
	}
	return out
}

func allowed(c *specs.LinuxSeccomp, syscall string) bool {
	for _, r := range rulesFor(c, syscall) {
		if r.Action == specs.ActAllow && len(r.Args) == 0 {
			return true
		}
	}
	return false
}

func TestDefaultProfileFile(t *testing.T) {
	var p profile
	if err := json.Unmarshal(defaultProfileJSON, &p); err != nil {
		t.Fatalf("profile/default.json: %v", err)
	}
	// Unknown keys would be conditions silently ignored.
	var raw struct {
		Syscalls []map[string]json.RawMessage `json:"syscalls"`
	}
	if err := json.Unmarshal(defaultProfileJSON, &raw); err != nil {
		t.Fatal(err)
	}
	known := []string{"names", "action", "errnoRet", "args", "comment", "includes", "excludes"}
	for i, r := range raw.Syscalls {
		for k := range r {
			if !slices.Contains(known, k) {
				t.Errorf("syscalls[%d]: unknown key %q", i, k)
			}
		}
	}
	names := p.Syscalls[0].Names
	if len(names) < 350 || !slices.Contains(names, "read") || slices.Contains(names, "mount") {
		t.Errorf("allow list looks wrong: %d names", len(names))
	}
	if dup := duplicates(names); len(dup) > 0 {
		t.Errorf("allow list repeats %v", dup)
	}
}

func duplicates(s []string) []string {
	seen := map[string]bool{}
	var d []string
	for _, n := range s {
		if seen[n] {
			d = append(d, n)
		}
		seen[n] = true
	}
	return d
}

func TestDefault(t *testing.T) {
	amd64 := host{goarch: "amd64", kernel: parseKernel("6.18.0")}
	tests := []struct {
		name    string
		caps    []string
		h       host
		allow   []string
		deny    []string // neither allowed unconditionally nor by any rule
		arches  []specs.Arch
		checkFn func(t *testing.T, c *specs.LinuxSeccomp)
	}{
		{
			name:   "no caps",
			h:      amd64,
			allow:  []string{"read", "write", "execve", "ptrace", "process_vm_readv", "arch_prctl", "modify_ldt", "futex_wake"},
			deny:   []string{"io_uring_setup", "io_uring_enter", "mount", "umount2", "unshare", "setns", "bpf", "kcmp", "reboot", "chroot", "open_by_handle_at", "syslog", "perf_event_open", "sethostname", "init_module", "acct", "settimeofday", "s390_runtime_instr", "set_tls"},
			arches: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
			checkFn: func(t *testing.T, c *specs.LinuxSeccomp) {
				if c.DefaultAction != specs.ActErrno || c.DefaultErrnoRet == nil || *c.DefaultErrnoRet != 1 {
					t.Errorf("default = %s %v, want SCMP_ACT_ERRNO EPERM", c.DefaultAction, c.DefaultErrnoRet)
				}
				clone := rulesFor(c, "clone")
				if len(clone) != 1 || len(clone[0].Args) != 1 || clone[0].Args[0] != (specs.LinuxSeccompArg{Index: 0, Value: 0x7E020000, Op: specs.OpMaskedEqual}) {
					t.Errorf("clone rules = %+v, want one MASKED_EQ on the namespace flags of arg 0", clone)
				}
				c3 := rulesFor(c, "clone3")
				if len(c3) != 1 || c3[0].Action != specs.ActErrno || c3[0].ErrnoRet == nil || *c3[0].ErrnoRet != 38 {
					t.Errorf("clone3 rules = %+v, want ERRNO ENOSYS", c3)
				}
				var personas []uint64
				for _, r := range rulesFor(c, "personality") {
					if len(r.Args) != 1 || r.Args[0].Op != specs.OpEqualTo || r.Action != specs.ActAllow {
						t.Errorf("personality rule %+v", r)
					}
					personas = append(personas, r.Args[0].Value)
				}
				if !slices.Equal(personas, []uint64{0, 8, 0x20000, 0x20008, 0xffffffff}) {
					t.Errorf("personality values %#x", personas)
				}
				sock := rulesFor(c, "socket")
				if len(sock) != 1 || sock[0].Args[0] != (specs.LinuxSeccompArg{Index: 0, Value: 40, Op: specs.OpNotEqual}) {
					t.Errorf("socket rules = %+v, want all but AF_VSOCK", sock)
				}
			},
		},
		{
			name:  "CAP_SYS_ADMIN",
			caps:  []string{"CAP_SYS_ADMIN"},
			h:     amd64,
			allow: []string{"mount", "umount2", "unshare", "setns", "clone", "clone3", "bpf", "sethostname", "syslog", "perf_event_open"},
			deny:  []string{"kcmp", "reboot"},
			checkFn: func(t *testing.T, c *specs.LinuxSeccomp) {
				for _, r := range rulesFor(c, "clone3") {
					if r.Action != specs.ActAllow {
						t.Errorf("clone3 still refused with CAP_SYS_ADMIN: %+v", r)
					}
				}
				for _, r := range rulesFor(c, "clone") {
					if len(r.Args) != 0 {
						t.Errorf("clone still restricted with CAP_SYS_ADMIN: %+v", r)
					}
				}
			},
		},
		{
			name:  "short cap names",
			caps:  []string{"sys_ptrace", "SYS_TIME", "cap_sys_boot"},
			h:     amd64,
			allow: []string{"kcmp", "pidfd_getfd", "settimeofday", "clock_settime", "reboot"},
			deny:  []string{"mount"},
		},
		{
			name:  "other caps",
			caps:  []string{"CAP_DAC_READ_SEARCH", "CAP_SYS_CHROOT", "CAP_SYS_MODULE", "CAP_SYS_PACCT", "CAP_SYS_RAWIO", "CAP_SYS_TTY_CONFIG", "CAP_SYS_NICE", "CAP_SYSLOG", "CAP_BPF", "CAP_PERFMON"},
			h:     amd64,
			allow: []string{"open_by_handle_at", "chroot", "init_module", "finit_module", "delete_module", "acct", "iopl", "ioperm", "vhangup", "mbind", "set_mempolicy_home_node", "syslog", "bpf", "perf_event_open"},
			deny:  []string{"mount", "unshare"},
		},
		{
			name:  "old kernel: ptrace needs CAP_SYS_PTRACE",
			h:     host{goarch: "amd64", kernel: parseKernel("4.4.0-200-generic")},
			allow: []string{"read"},
			deny:  []string{"ptrace", "process_vm_readv", "process_vm_writev"},
		},
		{
			name:  "old kernel with CAP_SYS_PTRACE",
			caps:  []string{"CAP_SYS_PTRACE"},
			h:     host{goarch: "amd64", kernel: parseKernel("4.4")},
			allow: []string{"ptrace", "process_vm_readv"},
		},
		{
			name:   "arm64",
			h:      host{goarch: "arm64", kernel: parseKernel("6.1")},
			allow:  []string{"set_tls", "cacheflush", "arm_fadvise64_64"},
			deny:   []string{"arch_prctl", "modify_ldt", "riscv_flush_icache"},
			arches: []specs.Arch{specs.ArchAARCH64, specs.ArchARM},
		},
		{
			name:   "s390x",
			h:      host{goarch: "s390x", kernel: parseKernel("6.1")},
			allow:  []string{"s390_runtime_instr"},
			deny:   []string{"arch_prctl"},
			arches: []specs.Arch{specs.ArchS390X, specs.ArchS390},
			checkFn: func(t *testing.T, c *specs.LinuxSeccomp) {
				clone := rulesFor(c, "clone")
				if len(clone) != 1 || clone[0].Args[0].Index != 1 {
					t.Errorf("s390x clone rules = %+v, want the flags at arg 1", clone)
				}
			},
		},
		{
			name:  "ppc64le",
			h:     host{goarch: "ppc64le", kernel: parseKernel("6.1")},
			allow: []string{"swapcontext", "sync_file_range2"},
			// Docker's archMap has no ppc64le entry: native only.
			arches: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultFor(tt.caps, tt.h)
			for _, s := range tt.allow {
				if !allowed(c, s) {
					t.Errorf("%s not allowed", s)
				}
			}
			for _, s := range tt.deny {
				for _, r := range rulesFor(c, s) {
					if r.Action == specs.ActAllow {
						t.Errorf("%s allowed by %+v", s, r)
					}
				}
			}
			if tt.arches != nil || tt.h.goarch == "ppc64le" {
				if !slices.Equal(c.Architectures, tt.arches) {
					t.Errorf("architectures = %v, want %v", c.Architectures, tt.arches)
				}
			}
			if tt.checkFn != nil {
				tt.checkFn(t, c)
			}
		})
	}
}

func TestDefaultIndependentCopies(t *testing.T) {
	a := Default(nil)
	a.Syscalls[0].Names[0] = "changed"
	*a.DefaultErrnoRet = 99
	b := Default(nil)
	if b.Syscalls[0].Names[0] == "changed" || *b.DefaultErrnoRet != 1 {
		t.Fatal("Default returned shared state")
	}
}

func TestParseKernel(t *testing.T) {
	for s, want := range map[string]int{
		"6.18.0": 6<<16 | 18, "4.8": 4<<16 | 8, "5.15.0-91-generic": 5<<16 | 15, "6.1rc2": 6<<16 | 1,
		"": 0, "6": 0, "x.y": 0,
	} {
		if got := parseKernel(s); got != want {
			t.Errorf("parseKernel(%q) = %#x, want %#x", s, got, want)
		}
	}
}
