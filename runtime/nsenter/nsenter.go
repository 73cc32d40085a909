// Package nsenter is the small C piece of berth-runtime that runs before the
// Go runtime starts any thread.
//
// Joining a mount, user or pid namespace with setns(2), unsharing a cgroup or
// time namespace for the whole process, and entering a new pid namespace all
// need a single-threaded process, which a Go program never is once main()
// runs. So a process the runtime starts for a container (its init, or an
// exec'd process) carries a constructor that, when the environment variable
// _BERTH_INITPIPE names a file descriptor, reads a short bootstrap message
// from it, does the namespace work, forks when a new or joined pid namespace
// (or time namespace) requires it, reports the resulting pid, and only then
// lets the Go runtime start. A process without that variable, such as the
// berth-runtime command itself, is untouched.
//
// The bootstrap message is one SOCK_SEQPACKET packet of text, one directive
// a line, ending with "end":
//
//	join <type> <path>     setns(2) into the namespace at path (user first, mnt last)
//	unshare-pid            unshare(CLONE_NEWPID): the forked child is pid 1 of a new namespace
//	unshare-cgroup         unshare(CLONE_NEWCGROUP) after the parent placed us in our cgroup
//	timens <mono-s> <mono-ns> <boot-s> <boot-ns>   unshare(CLONE_NEWTIME) with those offsets
//	end
//
// The reply is one line: "pid N\n" (N is the pid, in the parent's pid
// namespace, of the process that continues into Go; the intermediate exits),
// or "error <message>\n". It owns nothing else; the runtime package speaks
// the rest of the protocol.
package nsenter

/*
#cgo CFLAGS: -Wall -O2
extern void berth_nsenter(void);
void __attribute__((constructor)) berth_nsenter_init(void) { berth_nsenter(); }
*/
import "C"

// EnvInitPipe names the environment variable that carries the bootstrap
// socket's file descriptor number.
const EnvInitPipe = "_BERTH_INITPIPE"
