// Package rootfs builds a container's root filesystem inside the container's
// own mount namespace, from the OCI spec: the mounts[] list, /dev, pivot_root,
// and the read-only and masked paths. It runs in the container's init process
// (the main goroutine locked to its thread, already in a new mount
// namespace), in three steps the caller interleaves with its hooks:
//
//	Prepare   (host view)   / made rslave (or linux.rootfsPropagation),
//	                        root.path bound onto itself,
//	                        mounts[] in order, then /dev: nodes, ptmx, fd links
//	          ... createRuntime / createContainer hooks ...
//	Pivot                   pivot_root (or MS_MOVE + chroot), old root detached
//	          ... caller opens /dev/ptmx; BindConsole(slave) when terminal ...
//	Finalize  (container)   readonlyPaths, maskedPaths, /dev read-only,
//	                        root.readonly, linux.rootfsPropagation, stdio /dev/null
//
// Every path that comes from the spec is resolved inside the root through
// file descriptors (filepath-securejoin's pathrs-lite: symlinks and ".." are
// confined to the root), mounts are made on those descriptors (move_mount,
// or mount(2) on /proc/self/fd/N while /proc is still the host's), and each
// mount is checked afterwards to sit exactly where it was aimed. A
// destination symlink pointing at a host path therefore lands inside the
// root; the host is never touched. After pivot_root nothing relies on the
// container's /proc: open_tree/move_mount/mount_setattr/fsopen work on
// descriptors, and pathrs uses a private procfs instance.
//
// It does not own cgroup management (package cgroup), processes, namespaces
// other than using the mount namespace it is given, or the console pty
// itself.
package rootfs
