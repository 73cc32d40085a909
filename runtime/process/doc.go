// Package process applies a runtime-spec process (and the container-level
// attributes that belong to the process rather than to the filesystem or the
// cgroup) to the calling process, right before it execs the container's
// program: hostname and domainname, sysctls, personality, rlimits, the OOM
// score, I/O priority, scheduler, exec CPU affinity, AppArmor and SELinux
// labels, no_new_privs, the capability sets, the user and groups, the umask,
// the working directory, and the resolution and execve of process.args[0].
//
// It does not own namespaces, mounts or pivot_root (the caller is already
// inside the container's namespaces and root), cgroups, or the compilation of
// seccomp filters: the caller passes a callback and this package only decides
// when it runs.
//
// # Order
//
// Prepare follows runc's standard init: UTS names and sysctls (init only),
// personality, rlimits, oom_score_adj, I/O priority, scheduler, CPU affinity
// (exec only), AppArmor, SELinux, no_new_privs, seccomp when no_new_privs is
// off (loading then still has CAP_SYS_ADMIN), the bounding set, the identity
// change with PR_SET_KEEPCAPS, the remaining capability sets, umask, and the
// working directory (checked to be inside the root: CVE-2024-21626). Exec
// marks every file descriptor not asked for close-on-exec, loads seccomp when
// no_new_privs is on (as late as possible, so the filter need not allow what
// the runtime does before execve), and execs.
//
// # Threads
//
// Capabilities, no_new_privs, personality, I/O priority, scheduling
// attributes and security labels belong to a thread, and execve keeps only
// the calling thread's. Prepare locks its goroutine to its thread and never
// unlocks it; Exec must be called from that same goroutine.
//
// # Capabilities
//
// Like runc, names that are not capabilities and capabilities the kernel or
// this process lacks (here: CAP_SYS_RESOURCE is outside the host's bounding
// set) are skipped with a warning through log/slog instead of failing the
// container. CheckCapabilities reports unknown names as errors for callers
// that want to be strict.
package process
