package process

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestParseCapability(t *testing.T) {
	tests := []struct {
		in      string
		want    capability.Cap
		wantErr string
	}{
		{"CAP_SYS_ADMIN", capability.CAP_SYS_ADMIN, ""},
		{"SYS_ADMIN", capability.CAP_SYS_ADMIN, ""},
		{"sys_admin", capability.CAP_SYS_ADMIN, ""},
		{"cap_net_raw", capability.CAP_NET_RAW, ""},
		{" CAP_CHOWN ", capability.CAP_CHOWN, ""},
		{"CAP_CHECKPOINT_RESTORE", capability.CAP_CHECKPOINT_RESTORE, ""},
		{"CAP_FOO", 0, `unknown capability "CAP_FOO"`},
		{"", 0, `unknown capability ""`},
		{"ALL", 0, `unknown capability "ALL"`},
	}
	for _, tc := range tests {
		got, err := ParseCapability(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseCapability(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseCapability(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestKnownCapabilities(t *testing.T) {
	names := KnownCapabilities()
	for _, want := range []string{"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"} {
		if !slices.Contains(names, want) {
			t.Errorf("KnownCapabilities lacks %s", want)
		}
	}
	for _, n := range names {
		if _, err := parseSpecCap(n); err != nil {
			t.Errorf("KnownCapabilities has %q, which does not parse back: %v", n, err)
		}
	}
}

func TestCheckCapabilities(t *testing.T) {
	tests := []struct {
		caps *specs.LinuxCapabilities
		want string
	}{
		{nil, ""},
		{&specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN", "CAP_KILL"}}, ""},
		{&specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN", "CAP_KILL", "CAP_FOO"}}, `process.capabilities.bounding[2]: unknown capability "CAP_FOO"`},
		{&specs.LinuxCapabilities{Ambient: []string{"sys_admin"}}, `process.capabilities.ambient[0]: unknown capability "sys_admin"`},
		{&specs.LinuxCapabilities{Permitted: []string{"CAP_CHOWN"}, Effective: []string{"CHOWN"}}, `process.capabilities.effective[0]: unknown capability "CHOWN"`},
	}
	for _, tc := range tests {
		err := CheckCapabilities(tc.caps)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("CheckCapabilities(%+v) = %q, want %q", tc.caps, got, tc.want)
		}
	}
}

func mask(cs ...capability.Cap) capMask {
	var m capMask
	for _, c := range cs {
		m |= 1 << uint(c)
	}
	return m
}

func TestPlanCaps(t *testing.T) {
	all := capMask(1<<41 - 1)
	noRes := all &^ mask(capability.CAP_SYS_RESOURCE)
	tests := []struct {
		name        string
		caps        specs.LinuxCapabilities
		have        capState
		last        capability.Cap
		want        capState
		wantSkipped []string
	}{
		{
			name: "all available",
			caps: specs.LinuxCapabilities{
				Bounding: []string{"CAP_CHOWN", "CAP_KILL"}, Permitted: []string{"CAP_KILL"},
				Effective: []string{"CAP_KILL"}, Inheritable: []string{"CAP_KILL"}, Ambient: []string{"CAP_KILL"},
			},
			have: capState{bounding: all, permitted: all, effective: all},
			last: 40,
			want: capState{
				bounding: mask(capability.CAP_CHOWN, capability.CAP_KILL), permitted: mask(capability.CAP_KILL),
				effective: mask(capability.CAP_KILL), inheritable: mask(capability.CAP_KILL), ambient: mask(capability.CAP_KILL),
			},
		},
		{
			name: "host lacks CAP_SYS_RESOURCE",
			caps: specs.LinuxCapabilities{
				Bounding: []string{"CAP_SYS_RESOURCE", "CAP_CHOWN"}, Permitted: []string{"CAP_SYS_RESOURCE"},
				Effective: []string{"CAP_SYS_RESOURCE"},
			},
			have: capState{bounding: noRes, permitted: noRes, effective: noRes},
			last: 40,
			want: capState{bounding: mask(capability.CAP_CHOWN)},
			wantSkipped: []string{
				"process.capabilities.bounding[0]: CAP_SYS_RESOURCE (not in the runtime's bounding set)",
				"process.capabilities.permitted[0]: CAP_SYS_RESOURCE (not permitted to the runtime)",
				"process.capabilities.effective[0]: CAP_SYS_RESOURCE (not in the permitted set)",
			},
		},
		{
			name: "unknown names and caps newer than the kernel",
			caps: specs.LinuxCapabilities{Bounding: []string{"CAP_UNKNOWN", "UNKNOWN_CAP", "CAP_CHECKPOINT_RESTORE", "CAP_CHOWN"}},
			have: capState{bounding: all, permitted: all},
			last: capability.CAP_AUDIT_READ,
			want: capState{bounding: mask(capability.CAP_CHOWN)},
			wantSkipped: []string{
				`process.capabilities.bounding[0]: "CAP_UNKNOWN" (unknown)`,
				`process.capabilities.bounding[1]: "UNKNOWN_CAP" (unknown)`,
				"process.capabilities.bounding[2]: CAP_CHECKPOINT_RESTORE (unknown to this kernel)",
			},
		},
		{
			name: "ambient needs permitted and inheritable",
			caps: specs.LinuxCapabilities{
				Permitted: []string{"CAP_KILL", "CAP_CHOWN"}, Inheritable: []string{"CAP_KILL"},
				Ambient: []string{"CAP_KILL", "CAP_CHOWN"},
			},
			have: capState{bounding: all, permitted: all},
			last: 40,
			want: capState{
				permitted: mask(capability.CAP_KILL, capability.CAP_CHOWN), inheritable: mask(capability.CAP_KILL),
				ambient: mask(capability.CAP_KILL),
			},
			wantSkipped: []string{"process.capabilities.ambient[1]: CAP_CHOWN (not in both the permitted and inheritable sets)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := planCaps(&tc.caps, tc.have, tc.last)
			if plan.want != tc.want {
				t.Errorf("sets = %+v, want %+v", plan.want, tc.want)
			}
			if !slices.Equal(plan.skipped, tc.wantSkipped) {
				t.Errorf("skipped = %q, want %q", plan.skipped, tc.wantSkipped)
			}
		})
	}
}

func TestParseRlimits(t *testing.T) {
	tests := []struct {
		in      []specs.POSIXRlimit
		want    []rlimit
		wantErr string
	}{
		{nil, []rlimit{}, ""},
		{
			[]specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 4096}, {Type: "RLIMIT_CORE"}},
			[]rlimit{
				{0, "RLIMIT_NOFILE", unix.RLIMIT_NOFILE, unix.Rlimit{Cur: 1024, Max: 4096}},
				{1, "RLIMIT_CORE", unix.RLIMIT_CORE, unix.Rlimit{}},
			},
			"",
		},
		{[]specs.POSIXRlimit{{Type: "RLIMIT_NPROC", Soft: ^uint64(0), Hard: ^uint64(0)}}, []rlimit{{0, "RLIMIT_NPROC", unix.RLIMIT_NPROC, unix.Rlimit{Cur: ^uint64(0), Max: ^uint64(0)}}}, ""},
		{[]specs.POSIXRlimit{{Type: "nofile"}}, nil, `process.rlimits[0].type: unknown rlimit "nofile"`},
		{[]specs.POSIXRlimit{{Type: "RLIMIT_CPU", Soft: 2, Hard: 1}}, nil, "process.rlimits[0]: RLIMIT_CPU soft limit 2 is above its hard limit 1"},
		{[]specs.POSIXRlimit{{Type: "RLIMIT_CPU"}, {Type: "RLIMIT_AS"}, {Type: "RLIMIT_CPU"}}, nil, "process.rlimits[2].type: RLIMIT_CPU already set by process.rlimits[0]"},
	}
	for _, tc := range tests {
		got, err := parseRlimits(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("parseRlimits(%v) error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseRlimits(%v) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestSchedAttr(t *testing.T) {
	tests := []struct {
		in      specs.Scheduler
		want    unix.SchedAttr
		wantErr string
	}{
		{specs.Scheduler{Policy: specs.SchedOther, Nice: -5}, unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: 0, Nice: -5}, ""},
		{specs.Scheduler{Policy: specs.SchedFIFO, Priority: 10}, unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: 1, Priority: 10}, ""},
		{
			specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 10, Deadline: 20, Period: 30, Flags: []specs.LinuxSchedulerFlag{specs.SchedFlagReclaim, specs.SchedFlagDLOverrun}},
			unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: 6, Runtime: 10, Deadline: 20, Period: 30, Flags: unix.SCHED_FLAG_RECLAIM | unix.SCHED_FLAG_DL_OVERRUN},
			"",
		},
		{specs.Scheduler{Policy: "SCHED_X"}, unix.SchedAttr{}, `process.scheduler.policy: unknown policy "SCHED_X"`},
		{specs.Scheduler{Policy: specs.SchedOther, Nice: 20}, unix.SchedAttr{}, "process.scheduler.nice: 20 is outside [-20, 19]"},
		{specs.Scheduler{Policy: specs.SchedBatch, Priority: 1}, unix.SchedAttr{}, "process.scheduler.priority: only SCHED_FIFO and SCHED_RR take a priority, not SCHED_BATCH"},
		{specs.Scheduler{Policy: specs.SchedRR, Priority: -1}, unix.SchedAttr{}, "process.scheduler.priority: -1 is negative"},
		{specs.Scheduler{Policy: specs.SchedOther, Period: 5}, unix.SchedAttr{}, "process.scheduler: runtime, deadline and period apply only to SCHED_DEADLINE, not SCHED_OTHER"},
		{specs.Scheduler{Policy: specs.SchedOther, Flags: []specs.LinuxSchedulerFlag{"SCHED_FLAG_RESET_ON_FORK", "X"}}, unix.SchedAttr{}, `process.scheduler.flags[1]: unknown flag "X"`},
	}
	for _, tc := range tests {
		got, err := schedAttr(&tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("schedAttr(%+v) error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || *got != tc.want {
			t.Errorf("schedAttr(%+v) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestIOPrioAndPersonality(t *testing.T) {
	io := []struct {
		in      specs.LinuxIOPriority
		want    int
		wantErr string
	}{
		{specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_RT, Priority: 0}, 1 << 13, ""},
		{specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 4}, 2<<13 | 4, ""},
		{specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE, Priority: 7}, 3<<13 | 7, ""},
		{specs.LinuxIOPriority{Class: "IOPRIO_CLASS_NONE"}, 0, `process.ioPriority.class: unknown class "IOPRIO_CLASS_NONE"`},
		{specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: -1}, 0, "process.ioPriority.priority: -1 is outside [0, 7]"},
	}
	for _, tc := range io {
		got, err := ioprioValue(&tc.in)
		switch {
		case tc.wantErr == "" && err != nil, tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)):
			t.Errorf("ioprioValue(%+v) error %v, want %q", tc.in, err, tc.wantErr)
		case err == nil && got != tc.want:
			t.Errorf("ioprioValue(%+v) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
	pers := []struct {
		in      specs.LinuxPersonality
		want    int
		wantErr string
	}{
		{specs.LinuxPersonality{Domain: specs.PerLinux}, 0, ""},
		{specs.LinuxPersonality{Domain: specs.PerLinux32, Flags: []specs.LinuxPersonalityFlag{}}, 8, ""},
		{specs.LinuxPersonality{Domain: ""}, 0, `linux.personality.domain: unknown domain ""`},
		{specs.LinuxPersonality{Domain: specs.PerLinux, Flags: []specs.LinuxPersonalityFlag{"ADDR_NO_RANDOMIZE"}}, 0, `linux.personality.flags[0]: unsupported flag "ADDR_NO_RANDOMIZE"`},
	}
	for _, tc := range pers {
		got, err := personalityValue(&tc.in)
		switch {
		case tc.wantErr == "" && err != nil, tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)):
			t.Errorf("personalityValue(%+v) error %v, want %q", tc.in, err, tc.wantErr)
		case err == nil && got != tc.want:
			t.Errorf("personalityValue(%+v) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

func TestCheckSysctl(t *testing.T) {
	withNS := func(types ...specs.LinuxNamespaceType) *specs.Spec {
		s := &specs.Spec{Linux: &specs.Linux{}}
		for _, ty := range types {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: ty})
		}
		return s
	}
	tests := []struct {
		spec *specs.Spec
		key  string
		want string // error substring; "" for allowed
	}{
		{withNS(specs.IPCNamespace), "kernel.msgmax", ""},
		{withNS(specs.IPCNamespace), "kernel.shm_rmid_forced", ""},
		{withNS(specs.IPCNamespace), "fs.mqueue.queues_max", ""},
		{withNS(), "kernel.msgmax", `linux.sysctl["kernel.msgmax"]: needs an ipc namespace`},
		{withNS(specs.NetworkNamespace), "net.ipv4.ip_forward", ""},
		{withNS(specs.NetworkNamespace), "net/ipv4/ip_forward", ""},
		{withNS(specs.NetworkNamespace), "net.ipv4.conf.eth0/100.forwarding", ""},
		{withNS(specs.IPCNamespace), "net.ipv4.ip_forward", `linux.sysctl["net.ipv4.ip_forward"]: needs a network namespace`},
		{withNS(specs.UTSNamespace), "kernel.domainname", ""},
		{withNS(), "kernel.domainname", "needs a uts namespace"},
		{withNS(specs.UTSNamespace), "kernel.hostname", "set the hostname field instead"},
		{withNS(specs.IPCNamespace, specs.UTSNamespace, specs.NetworkNamespace), "kernel.pid_max", `linux.sysctl["kernel.pid_max"]: not owned by any namespace`},
		{withNS(specs.IPCNamespace, specs.NetworkNamespace), "vm.swappiness", "not owned by any namespace"},
		{withNS(specs.NetworkNamespace), "net..ipv4", "not a sysctl name"},
		{withNS(specs.NetworkNamespace), "net/../../kernel/core_pattern", "not a sysctl name"},
		{withNS(specs.NetworkNamespace), "", "not a sysctl name"},
	}
	for _, tc := range tests {
		err := checkSysctl(tc.spec, tc.key)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("checkSysctl(%q) = %v, want allowed", tc.key, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("checkSysctl(%q) = %v, want error containing %q", tc.key, err, tc.want)
		}
	}
}

func TestSysctlPath(t *testing.T) {
	tests := map[string]string{
		"kernel.msgmax":                     "kernel/msgmax",
		"net.ipv4.conf.eth0/100.forwarding": "net/ipv4/conf/eth0.100/forwarding",
		"net/ipv4/ip_forward":               "net/ipv4/ip_forward",
		"net/ipv4/conf/eth0.100/forwarding": "net/ipv4/conf/eth0.100/forwarding",
		"vm":                                "vm",
	}
	for in, want := range tests {
		if got := sysctlPath(in); got != want {
			t.Errorf("sysctlPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"0", []int{0}, false},
		{"0-3,7", []int{0, 1, 2, 3, 7}, false},
		{" 1 , 3-4 ", []int{1, 3, 4}, false},
		{"", nil, true},
		{"a", nil, true},
		{"3-1", nil, true},
		{"-1", nil, true},
		{"0-", nil, true},
		{"99999", nil, true},
	}
	for _, tc := range tests {
		set, err := ParseCPUList(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParseCPUList(%q) succeeded, want error", tc.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseCPUList(%q): %v", tc.in, err)
			continue
		}
		var got []int
		for c := 0; c < 1024; c++ {
			if set.IsSet(c) {
				got = append(got, c)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ParseCPUList(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestGroupListAndEnv(t *testing.T) {
	groups := []struct {
		u    specs.User
		want []int
	}{
		{specs.User{GID: 5}, []int{5}},
		{specs.User{GID: 5, AdditionalGids: []uint32{7, 5, 7, 9}}, []int{7, 5, 9}},
	}
	for _, tc := range groups {
		if got := groupList(tc.u); !slices.Equal(got, tc.want) {
			t.Errorf("groupList(%+v) = %v, want %v", tc.u, got, tc.want)
		}
	}
	env := []string{"A=1", "PATH=/x", "NOVALUE", "PATH=/y", "EMPTY="}
	for _, tc := range []struct {
		key, want string
		ok        bool
	}{{"PATH", "/x", true}, {"EMPTY", "", true}, {"NOVALUE", "", false}, {"B", "", false}} {
		if v, ok := envLookup(env, tc.key); v != tc.want || ok != tc.ok {
			t.Errorf("envLookup(%q) = %q, %v; want %q, %v", tc.key, v, ok, tc.want, tc.ok)
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin1, bin2 := filepath.Join(dir, "bin1"), filepath.Join(dir, "bin2")
	for _, d := range []string{bin1, bin2, filepath.Join(bin1, "adir")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, mode os.FileMode) {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(bin1, "noexec"), 0o644)
	write(filepath.Join(bin2, "prog"), 0o755)
	write(filepath.Join(bin2, "noexec"), 0o755)
	write(filepath.Join(bin1, "onlyhere"), 0o644)
	path := "PATH=" + bin1 + ":" + bin2

	tests := []struct {
		file    string
		env     []string
		want    string
		wantErr error
	}{
		{"prog", []string{path}, bin2 + "/prog", nil},
		{"noexec", []string{path}, bin2 + "/noexec", nil}, // the first executable one wins
		{"adir", []string{path}, "", fs.ErrPermission},
		{"missing", []string{path}, "", exec.ErrNotFound},
		{"prog", nil, "", exec.ErrNotFound},
		{"prog", []string{"PATH="}, "", exec.ErrNotFound},
		{bin2 + "/prog", nil, bin2 + "/prog", nil},
		{bin2 + "/missing", nil, "", fs.ErrNotExist},
		{"", []string{path}, "", exec.ErrNotFound},
		// Found, but no x bit anywhere: "permission denied" (exit 126),
		// not "not found" (127). 0644 has no x bit, so this holds for root.
		{"onlyhere", []string{path}, "", fs.ErrPermission},
	}
	for _, tc := range tests {
		got, err := lookPath(tc.file, tc.env)
		if tc.wantErr != nil {
			var ee *exec.Error
			if !errors.Is(err, tc.wantErr) || !errors.As(err, &ee) || ee.Name != tc.file {
				t.Errorf("lookPath(%q, %v) = %q, %v; want exec.Error wrapping %v", tc.file, tc.env, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("lookPath(%q, %v) = %q, %v; want %q", tc.file, tc.env, got, err, tc.want)
		}
	}
	_, err := lookPath("no-such-prog", []string{path})
	if err == nil || err.Error() != `exec: "no-such-prog": executable file not found in $PATH` {
		t.Errorf("not-found message = %v", err)
	}
}
