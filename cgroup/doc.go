// Package cgroup owns one container's control groups on this host: it creates
// them, moves processes in, writes the runtime-spec resource limits, freezes,
// signals, reads statistics and removes them again. cgroup v1, hybrid (v1
// controllers plus a cgroup2 mount beside them) and pure v2 hosts sit behind
// one Manager; the layout is detected at run time from the mount table, never
// assumed.
//
// It does not own the container's processes (the runtime starts and reaps
// them), the default device allow-list a runtime adds to a spec (the caller
// passes every device rule it wants), systemd units (this is the cgroupfs
// driver only) or the state file where Paths() is saved.
//
// On disk, for linux.cgroupsPath "/berth/c1" on a hybrid host:
//
//	/sys/fs/cgroup/                      tmpfs holding the hierarchies
//	├── cpu/berth/c1/                    Paths()["cpu"]     cpu.shares, cpu.cfs_*
//	├── cpuacct/berth/c1/                Paths()["cpuacct"] usage for Stats
//	├── cpuset/berth/c1/                 cpus/mems copied from the parent first
//	├── memory/berth/c1/                 memory.limit_in_bytes, memsw, oom_control
//	├── devices/berth/c1/                devices.deny "a", then each rule in order
//	├── freezer/berth/c1/                freezer.state for Freeze/Thaw/Signal
//	├── blkio/berth/c1/                  blkio.throttle.*, blkio[.bfq].weight
//	├── pids/berth/c1/                   pids.max
//	├── systemd/berth/c1/                Paths()["name=systemd"], membership only
//	└── unified/berth/c1/                Paths()[""]: hugetlb.<size>.max, unified keys,
//	                                     the eBPF device program when no v1 devices
//
// A relative cgroupsPath is placed under the runtime's own cgroup in each
// hierarchy (from /proc/self/cgroup), and an empty one means the container ID,
// relative, exactly as runc's cgroupfs driver does. On a pure v2 host Paths()
// has the single key "".
package cgroup
