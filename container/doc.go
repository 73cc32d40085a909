// Package container is berth's container engine: container records, the
// OCI bundle made from an image and the user's flags, the per-container
// monitor that runs it (package container/monitor), logs, exec, copy,
// diff, commit and export.
//
// A container is a record in the store, a read-write snapshot on its
// image's layers, and, while it runs, a monitor process and a runtime's
// state. The record is the truth about what the user asked for; what runs
// is checked against the monitor and the runtime whenever the record is
// read, so that after a reboot or a killed monitor `berth ps -a` shows the
// container exited, with its code when it is known.
//
// It does not own images, snapshots or volumes (packages image, snapshot,
// volume) or the runtime (reached only through package ocirt).
//
// Layout on disk:
//
//	<root>/containers/
//	  lock                  held while names are reserved or released
//	  names/<name>          the ID a name belongs to (created exclusively)
//	  <id>/
//	    container.json      the record: config and state, replaced atomically
//	    lock                held while the container's state changes
//	    hostname, hosts, resolv.conf   bind-mounted into the container
//	    ctr-json.log        the log (json-file), rotated .1, .2, ...
//	<runroot>/containers/<id>/   gone after a reboot, as is what ran
//	    bundle/config.json  the OCI bundle the runtime starts
//	    rootfs/             the container's mounted root file system
//	    monitor.json, attach.sock, init.pid, exit.json   see container/monitor
package container
