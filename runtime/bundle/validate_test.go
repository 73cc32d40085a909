package bundle

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// base is a small valid spec for Validate tests to break one thing in.
func base() *specs.Spec {
	return &specs.Spec{
		Version: "1.2.0",
		Process: &specs.Process{Args: []string{"sh"}, Cwd: "/"},
		Root:    &specs.Root{Path: "rootfs"},
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
			{Type: specs.MountNamespace}, {Type: specs.PIDNamespace},
		}},
	}
}

func ptr[T any](v T) *T { return &v }

// TestValidate covers what the testdata/bad configs do not, on specs built
// in memory (as the runtime core may build them for exec).
func TestValidate(t *testing.T) {
	dir := newBundle(t, nil)
	for _, tc := range []struct {
		name   string
		mutate func(*specs.Spec)
		want   string // "" means valid
	}{
		{"base is valid", func(*specs.Spec) {}, ""},
		{"default is valid", func(s *specs.Spec) { *s = *Default() }, ""},
		{"rootless default is valid", func(s *specs.Spec) { *s = *Default(); ToRootless(s) }, ""},
		{"nil", nil, "empty config: expected a JSON object"},
		{"major version 2", func(s *specs.Spec) { s.Version = "2.0.0" },
			`ociVersion "2.0.0" is not supported (want 1.x; this runtime implements ` + specs.Version + `)`},
		{"version with leading v", func(s *specs.Spec) { s.Version = "v1.0.0" },
			`ociVersion "v1.0.0" is not a semantic version (want e.g. "` + specs.Version + `")`},
		{"empty root path", func(s *specs.Spec) { s.Root.Path = "" }, `root.path: required (the rootfs directory, e.g. "rootfs")`},
		{"empty program", func(s *specs.Spec) { s.Process.Args = []string{"", "x"} }, "process.args[0]: empty program name"},
		{"NUL in args", func(s *specs.Spec) { s.Process.Args = []string{"sh", "a\x00b"} }, "process.args[1]: contains a NUL byte"},
		{"no cwd", func(s *specs.Spec) { s.Process.Cwd = "" }, `process.cwd: required (an absolute path such as "/")`},
		{"env empty key", func(s *specs.Spec) { s.Process.Env = []string{"=x"} }, `process.env[0]: "=x" is not of the form KEY=VALUE`},
		{"env empty value is fine", func(s *specs.Spec) { s.Process.Env = []string{"A=", "B=c=d"} }, ""},
		{"uid -1", func(s *specs.Spec) { s.Process.User.UID = 1<<32 - 1 }, "process.user.uid: 4294967295 is not a valid uid"},
		{"gid -1", func(s *specs.Spec) { s.Process.User.GID = 1<<32 - 1 }, "process.user.gid: 4294967295 is not a valid gid"},
		{"additional gid -1", func(s *specs.Spec) { s.Process.User.AdditionalGids = []uint32{5, 1<<32 - 1} },
			"process.user.additionalGids[1]: 4294967295 is not a valid gid"},
		{"umask", func(s *specs.Spec) { s.Process.User.Umask = ptr(uint32(0o1000)) },
			"process.user.umask: 512 is outside [0, 0777] (the value is decimal in JSON: 0022 is 18)"},
		{"lowercase cap", func(s *specs.Spec) {
			s.Process.Capabilities = &specs.LinuxCapabilities{Ambient: []string{"cap_chown"}}
		}, `process.capabilities.ambient[0]: "cap_chown" is not a capability name (want e.g. "CAP_CHOWN")`},
		{"garbage cap", func(s *specs.Spec) {
			s.Process.Capabilities = &specs.LinuxCapabilities{Effective: []string{"CAP_"}}
		}, `process.capabilities.effective[0]: "CAP_" is not a capability name (want e.g. "CAP_NET_ADMIN")`},
		{"empty rlimit type", func(s *specs.Spec) { s.Process.Rlimits = []specs.POSIXRlimit{{}} },
			`process.rlimits[0].type: required (e.g. "RLIMIT_NOFILE")`},
		{"oomScoreAdj", func(s *specs.Spec) { s.Process.OOMScoreAdj = ptr(1001) }, "process.oomScoreAdj: 1001 is outside [-1000, 1000]"},
		{"scheduler unknown", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: "SCHED_FAST"} },
			`process.scheduler.policy: unknown policy "SCHED_FAST"`},
		{"scheduler nice", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedOther, Nice: 20} },
			"process.scheduler.nice: 20 is outside [-20, 19]"},
		{"scheduler fifo needs priority", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedFIFO} },
			"process.scheduler.priority: SCHED_FIFO needs a priority in [1, 99], got 0"},
		{"scheduler deadline fields", func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch, Runtime: 5}
		}, "process.scheduler: runtime, deadline and period apply only to SCHED_DEADLINE, not SCHED_BATCH"},
		{"scheduler flag", func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedRR, Priority: 5, Flags: []specs.LinuxSchedulerFlag{"SCHED_FLAG_X"}}
		}, `process.scheduler.flags[0]: unknown flag "SCHED_FLAG_X"`},
		{"scheduler rr ok", func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedRR, Priority: 5, Flags: []specs.LinuxSchedulerFlag{specs.SchedFlagResetOnFork}}
		}, ""},
		{"ioPriority class", func(s *specs.Spec) { s.Process.IOPriority = &specs.LinuxIOPriority{Class: "IOPRIO_CLASS_FAST"} },
			`process.ioPriority.class: unknown class "IOPRIO_CLASS_FAST" (want IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE)`},
		{"ioPriority level", func(s *specs.Spec) {
			s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 8}
		}, "process.ioPriority.priority: 8 is outside [0, 7]"},
		{"cpu affinity", func(s *specs.Spec) { s.Process.ExecCPUAffinity = &specs.CPUAffinity{Initial: "0-3,7", Final: "3-1"} },
			`process.execCPUAffinity.final: "3-1" is not a CPU list (want e.g. "0-3,7")`},
		{"mount idmap one-sided", func(s *specs.Spec) {
			s.Mounts = []specs.Mount{{Destination: "/data", Type: "bind", Source: "/tmp", UIDMappings: []specs.LinuxIDMapping{{Size: 1}}}}
		}, "mounts[0].gidMappings: required with uidMappings (set both or neither)"},
		{"mount idmap size 0", func(s *specs.Spec) {
			m := []specs.LinuxIDMapping{{HostID: 1000, Size: 0}}
			s.Mounts = []specs.Mount{{Destination: "/data", Type: "bind", Source: "/tmp", UIDMappings: m, GIDMappings: m}}
		}, "mounts[0].uidMappings[0].size: must be at least 1"},
		{"hook env", func(s *specs.Spec) { s.Hooks = &specs.Hooks{Poststart: []specs.Hook{{Path: "/x", Env: []string{"X"}}}} },
			`hooks.poststart[0].env[0]: "X" is not of the form KEY=VALUE`},
		{"hook without path", func(s *specs.Spec) { s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{}}} },
			"hooks.startContainer[0].path: required (an absolute path to the hook program)"},
		{"annotation empty key", func(s *specs.Spec) { s.Annotations = map[string]string{"": "x"} }, "annotations: keys must not be empty"},
		{"namespace without type", func(s *specs.Spec) { s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{}) },
			"linux.namespaces[2].type: required (cgroup, ipc, mount, network, pid, time, user or uts)"},
		{"domainname without uts", func(s *specs.Spec) { s.Domainname = "example.org" },
			`domainname: needs a uts namespace (add {"type": "uts"} to linux.namespaces), or the host's name would change`},
		{"hostname with joined uts", func(s *specs.Spec) {
			s.Hostname = "x"
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UTSNamespace, Path: "/proc/1/ns/uts"})
		}, ""},
		{"user ns without gid mappings", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 1}}
		}, `linux.gidMappings: required with a user namespace (e.g. [{"containerID": 0, "hostID": 100000, "size": 65536}])`},
		{"user mapping overflow", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 2, HostID: 0, Size: 1<<32 - 1}}
			s.Linux.GIDMappings = s.Linux.UIDMappings
		}, "linux.uidMappings[0]: range overflows 32-bit ids (containerID 2, hostID 0, size 4294967295)"},
		{"time offsets with joined time ns", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace, Path: "/proc/1/ns/time"})
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 1}}
		}, "linux.timeOffsets: cannot be set when joining an existing time namespace (its offsets are already fixed)"},
		{"time offsets unknown clock", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"realtime": {Secs: 1}}
		}, `linux.timeOffsets: unknown clock "realtime" (want monotonic or boottime)`},
		{"time offsets nanosecs", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Nanosecs: 1e9}}
		}, "linux.timeOffsets.monotonic.nanosecs: 1000000000 is not below one second"},
		{"device relative path", func(s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{{Type: "c", Path: "dev/x", Major: 1, Minor: 3}}
		},
			`linux.devices[0].path: "dev/x" must be an absolute path in the container`},
		{"device duplicate path", func(s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{{Type: "c", Path: "/dev/x", Major: 1, Minor: 3}, {Type: "c", Path: "/dev//x", Major: 1, Minor: 5}}
		}, `linux.devices[1].path: "/dev//x" is also linux.devices[0]`},
		{"device negative", func(s *specs.Spec) { s.Linux.Devices = []specs.LinuxDevice{{Type: "b", Path: "/dev/x", Major: -1}} },
			"linux.devices[0]: negative device number -1:0"},
		{"net sysctl without netns", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"net.core.somaxconn": "1024"} },
			`linux.sysctl: "net.core.somaxconn" needs a network namespace (add {"type": "network"} to linux.namespaces)`},
		{"sysctl bad name", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"net..x": "1"} },
			`linux.sysctl: "net..x" is not a sysctl name`},
		{"cgroup device type", func(s *specs.Spec) {
			s.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "p", Access: "rwm"}}}
		}, `linux.resources.devices[0].type: unknown type "p" (want a, b or c)`},
		{"cgroup device access", func(s *specs.Spec) {
			s.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "c", Access: "rwx"}}}
		}, `linux.resources.devices[0].access: "rwx" is not a combination of r, w and m`},
		{"cgroupsPath escape", func(s *specs.Spec) { s.Linux.CgroupsPath = "/berth/../../etc" },
			`linux.cgroupsPath: "/berth/../../etc" must not contain ".." (it is resolved under the cgroup root)`},
		{"seccomp", func(s *specs.Spec) { s.Linux.Seccomp = &specs.LinuxSeccomp{} }, "linux.seccomp.defaultAction: required"},
		{"rootfsPropagation", func(s *specs.Spec) { s.Linux.RootfsPropagation = "rshared,ro" },
			`linux.rootfsPropagation: unknown propagation "rshared,ro" (want e.g. "rprivate", "rslave" or "rshared")`},
		{"masked path relative", func(s *specs.Spec) { s.Linux.MaskedPaths = []string{"/proc/kcore", "proc/keys"} },
			`linux.maskedPaths[1]: "proc/keys" must be an absolute path in the container`},
		{"readonly path relative", func(s *specs.Spec) { s.Linux.ReadonlyPaths = []string{"sys"} },
			`linux.readonlyPaths[0]: "sys" must be an absolute path in the container`},
		{"personality domain", func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: "LINUX64"} },
			`linux.personality.domain: unknown domain "LINUX64" (want LINUX or LINUX32)`},
		{"personality flag", func(s *specs.Spec) {
			s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32, Flags: []specs.LinuxPersonalityFlag{"X"}}
		}, `linux.personality.flags[0]: unknown flag "X" (the runtime spec defines none)`},
		{"memory policy", func(s *specs.Spec) { s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolBind} },
			"linux.memoryPolicy: NUMA memory policies are not supported by berth-runtime; remove it"},
		{"net devices", func(s *specs.Spec) { s.Linux.NetDevices = map[string]specs.LinuxNetDevice{"eth1": {}} },
			"linux.netDevices: moving network devices is not supported by berth-runtime; remove it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s *specs.Spec
			if tc.mutate != nil {
				s = base()
				tc.mutate(s)
			}
			err := Validate(s, dir)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted, want %q", tc.want)
			case tc.want != "" && err.Error() != tc.want:
				t.Errorf("error\n got: %s\nwant: %s", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// TestDecodePaths checks the JSON path in type errors where encoding/json's
// own Field would be ambiguous: inside arrays, maps and nested arrays.
func TestDecodePaths(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"mounts": [{"destination": "/a"}, "tmpfs"]}`, "mounts[1]: expected object, got string"},
		{`{"mounts": [{"destination": "/a", "options": ["ro", ["x"]]}]}`, "mounts[0].options[1]: expected string, got array"},
		{`{"annotations": {"org.example/a b": {}}}`, `annotations["org.example/a b"]: expected string, got object`},
		{`{"linux": {"seccomp": {"syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW"}, {"names": ["b"], "args": [{"index": 0, "value": -1}]}]}}}`,
			"linux.seccomp.syscalls[1].args[0].value: expected non-negative 64-bit integer, got number -1"},
		{`{"linux": {"uidMappings": [{"containerID": 0, "hostID": 4294967296, "size": 1}]}}`,
			"linux.uidMappings[0].hostID: expected non-negative 32-bit integer, got number 4294967296"},
		{`{"process": {"consoleSize": [80, 24]}}`, "process.consoleSize: expected object, got array"},
		{`{"ociVersion": 1.2}`, "ociVersion: expected string, got number"},
		{`"1.2.0"`, "expected object, got string"},
		{`{"process": {"args": ["a"]}, "root": {"path": "r", "readonly": "true"}}`, "root.readonly: expected boolean, got string"},
		{`{"linux": {"resources": {"unified": {"memory.max": 5}}}}`, `linux.resources.unified["memory.max"]: expected string, got number`},
		{`{"linux": {"timeOffsets": {"monotonic": {"secs": "1"}}}}`, "linux.timeOffsets.monotonic.secs: expected 64-bit integer, got string"},
	} {
		_, err := decode([]byte(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("decode(%s)\n got: %v\nwant: %s", tc.in, err, tc.want)
		}
	}
}
