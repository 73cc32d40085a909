// Package seccomp turns a runtime-spec linux.seccomp section into a kernel
// filter and loads it, hands a user-notification listener fd to the seccomp
// agent named by linux.seccomp.listenerPath, and holds berth's default
// profile (Docker's default seccomp profile, resolved for a capability set
// and the host architecture).
//
// It owns:
//
//   - Validate: every field of linux.seccomp, with errors that name the field
//     in runtime-spec JSON terms;
//   - Compile and Filter.Load: the filter built with libseccomp (through
//     libseccomp-golang, cgo), loaded on every thread of the calling process;
//   - Filter.Program, LoadProgram and Cache: the compiled filter as a raw
//     program, loaded by the kernel directly, and kept on disk per
//     configuration, so that the engine compiles a profile once and hands
//     it over in crun's run.oci.seccomp_bpf_data annotation (BPFAnnotation),
//     which crun and berth-runtime load instead of compiling again;
//   - SendListener: the runtime-spec "container process state" message with
//     the listener fd in SCM_RIGHTS (SendListenerConn on an open connection);
//   - Default: the profile (package seccomp/profile, profile/default.json) with its capability-,
//     architecture- and kernel-conditional rules resolved;
//   - Features: what `berth-runtime features` reports under linux.seccomp.
//
// It does not decide when in the container's start the filter is loaded,
// whether no_new_privs is set, or how the listener fd travels from the
// container's init back to the runtime: that is the runtime's (see
// Filter.Load for the ordering it must respect). It never answers seccomp
// notifications itself; that is the external agent's job.
//
// Unlike runc, the filter is not patched to return ENOSYS for system calls
// newer than the profile: every syscall the profile does not list gets the
// default action (EPERM in Docker's), so a libc cannot tell "refused" from
// "not implemented" and fall back. Docker's profile answers clone3 with
// ENOSYS itself.
//
//	profile/
//	└── default.json   Docker's default profile in moby's format: runtime-spec
//	                   syscall rules plus "includes"/"excludes" conditions
//	                   (caps, arches, minKernel) and an "archMap". It follows
//	                   moby's file as of its 2024 update (syscalls up to
//	                   Linux 6.6, io_uring_* refused); moby's 2025 additions
//	                   for Linux 6.8-6.13 (statmount, listmount, mseal,
//	                   *xattrat, ...) are not in it yet, so those get EPERM.
package seccomp
