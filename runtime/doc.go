// Package runtime owns one OCI container's life on this host: create, start,
// state, kill, delete, exec, pause, resume, update and stats, from a bundle,
// as the OCI runtime specification describes them and as runc's command line
// presents them. cmd/berth-runtime is a thin shell over it.
//
// It does not own what goes into a bundle (runtime/bundle reads and checks
// config.json), the root filesystem (runtime/rootfs), the process attributes
// (runtime/process), cgroups (cgroup) or seccomp (seccomp): it orders them.
//
// # Processes
//
// create starts a copy of the runtime binary sealed in a memfd (so that a
// container can never write to the binary on the host; the CVE-2019-5736
// class), with new user/mount/network/ipc/uts namespaces from clone(2). The
// runtime/nsenter constructor in that child joins namespaces given by path,
// unshares the cgroup and time namespaces once the parent has placed it in its
// cgroup, and forks into a new pid namespace, before the Go runtime starts.
// The child then becomes the container's init: it builds the root filesystem,
// lets the parent run the createRuntime hooks, pivots, applies the process
// attributes and reports ready; create records the state and exits. The init
// waits on the exec fifo until start opens it, runs the startContainer hooks
// and execs the container's program, which is then pid 1 of the container.
// No runtime process stays behind.
//
// # State on disk
//
//	<root>/                      --root (default /run/berth-runtime)
//	  <id>/
//	    state.json               written atomically: pid, start time, bundle, cgroup paths, config
//	    exec.fifo                present from create until start: the container is "created"
//
// A container's status is derived, never stored: no live init process (same
// pid and start time) means stopped; the fifo present means created; a frozen
// cgroup means paused; otherwise running.
package runtime
