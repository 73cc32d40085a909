package runtime

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	goruntime "runtime"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/runtime/nsenter"
	"github.com/berthproject/berth/runtime/process"
	"github.com/berthproject/berth/runtime/rootfs"
	"github.com/berthproject/berth/seccomp"
)

func init() {
	// The container's init sets up and execs from the main thread: the
	// namespaces the nsenter constructor joined belong to it, and execve
	// keeps only the calling thread. Lock it before main runs.
	if os.Getenv(nsenter.EnvInitPipe) != "" {
		goruntime.LockOSThread()
	}
}

// IsInit reports whether this process was started by the runtime as a
// container's init or exec'd process, in which case main must call InitMain
// and nothing else.
func IsInit() bool { return os.Getenv(nsenter.EnvInitPipe) != "" }

// InitMain runs the container side of create or exec. It never returns: it
// either execs the container's program or exits non-zero after telling the
// runtime why.
func InitMain() {
	syncFd, err1 := strconv.Atoi(os.Getenv(nsenter.EnvInitPipe))
	cfgFd, err2 := strconv.Atoi(os.Getenv(envConfigPipe))
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "berth-runtime: init: bad environment")
		os.Exit(1)
	}
	os.Clearenv()
	sock := &syncSocket{os.NewFile(uintptr(syncFd), "sync")}
	var ic initConfig
	cfgFile := os.NewFile(uintptr(cfgFd), "config")
	err := json.NewDecoder(cfgFile).Decode(&ic)
	cfgFile.Close()
	if err == nil {
		if ic.Exec {
			err = execInit(&ic, sock)
		} else {
			err = containerInit(&ic, sock)
		}
	} else {
		err = fmt.Errorf("read init config: %w", err)
	}
	if sock.send(message{Type: msgError, Error: err.Error()}) != nil {
		// The runtime is gone (the failure came after ready): the
		// container's stderr is the only place left to say it.
		fmt.Fprintln(os.Stderr, "berth-runtime: init:", err)
	}
	os.Exit(1)
}

func containerInit(ic *initConfig, sock *syncSocket) error {
	spec := ic.Spec
	if ic.NewNetNS {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("bring up lo in the new network namespace: %w", err)
		}
	}
	// The seccomp listener lives on the host: connect before pivot_root
	// hides it.
	var listener *net.UnixConn
	if spec.Linux.Seccomp != nil && spec.Linux.Seccomp.ListenerPath != "" {
		c, err := net.Dial("unix", spec.Linux.Seccomp.ListenerPath)
		if err != nil {
			return fmt.Errorf("linux.seccomp.listenerPath %s: %w", spec.Linux.Seccomp.ListenerPath, err)
		}
		listener = c.(*net.UnixConn)
		defer listener.Close()
	}
	// Compile the filter before the runtime sets our rlimits (at the hooks
	// step): a small RLIMIT_AS leaves libseccomp no room.
	loadSeccomp := seccompLoader(spec, ic, listener)
	rc := &rootfs.Config{
		Spec:       spec,
		Rootfs:     ic.Rootfs,
		Bundle:     ic.Bundle,
		NoPivot:    ic.NoPivot,
		MountLabel: spec.Linux.MountLabel,
		UserNS:     ic.NewUserNS,
	}
	if ic.NewMountNS {
		if err := rootfs.Prepare(rc); err != nil {
			return err
		}
	}
	if err := sock.send(message{Type: msgHooks}); err != nil {
		return err
	}
	if m, _, err := sock.recv(); err != nil || m.Type != msgHooksDone {
		return fmt.Errorf("waiting for the runtime's hooks: %v", err)
	}
	state := &specs.State{
		Version:     specs.Version,
		ID:          ic.ID,
		Status:      specs.StateCreating,
		Pid:         ic.HostPid,
		Bundle:      ic.Bundle,
		Annotations: spec.Annotations,
	}
	if spec.Hooks != nil {
		if err := runHooks("createContainer", spec.Hooks.CreateContainer, state); err != nil {
			return err
		}
	}
	// A handle on the host's /proc, for a root without one of its own (a
	// joined mount namespace, or a spec that mounts no proc): the exec fifo
	// is reopened through it below.
	hostProc, _ := unix.Open("/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if hostProc >= 0 {
		defer unix.Close(hostProc)
	}
	if ic.NewMountNS {
		if err := rootfs.Pivot(rc); err != nil {
			return err
		}
	} else if err := unix.Chroot(ic.Rootfs); err != nil {
		return fmt.Errorf("chroot %s: %w", ic.Rootfs, err)
	}
	if ic.Process.Terminal {
		if err := setupConsole(sock, ic.NewMountNS); err != nil {
			return err
		}
	}
	// Sysctls before readonlyPaths make /proc/sys read-only.
	if err := process.ApplySysctls(spec); err != nil {
		return err
	}
	if ic.NewMountNS {
		if err := rootfs.Finalize(rc); err != nil {
			return err
		}
	}
	// The runtime set the rlimits from outside at the hooks step (see
	// driveInit): setting them here would need them raised again first.
	proc := *ic.Process
	proc.Rlimits = nil
	pr, err := process.Prepare(spec, &proc, process.Options{
		Init:           true,
		LoadSeccomp:    loadSeccomp,
		SysctlsApplied: true,
	})
	if err != nil {
		return err
	}
	if err := sock.send(message{Type: msgReady}); err != nil {
		return err
	}
	sock.Close()

	// Block until start opens the fifo for reading. The fd is an O_PATH
	// handle opened before pivot_root; reopening it through /proc keeps it
	// the very fifo create made.
	fifoPath := "self/fd/" + strconv.Itoa(ic.FifoFd)
	fifoFd, err := unix.Open("/proc/"+fifoPath, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT && hostProc >= 0 {
		fifoFd, err = unix.Openat(hostProc, fifoPath, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	fifo := os.NewFile(uintptr(fifoFd), "exec.fifo")
	if _, err := fifo.Write([]byte("0")); err != nil {
		return fmt.Errorf("write exec fifo: %w", err)
	}
	fifo.Close()
	unix.Close(ic.FifoFd)

	if spec.Hooks != nil {
		state.Status = specs.StateCreated
		if err := runHooks("startContainer", spec.Hooks.StartContainer, state); err != nil {
			// Nobody is listening any more: say it on the container's stderr.
			fmt.Fprintln(os.Stderr, "berth-runtime:", err)
			os.Exit(1)
		}
	}
	err = pr.Exec(preserved(ic.PreserveFDs))
	fmt.Fprintln(os.Stderr, "berth-runtime:", err)
	os.Exit(127)
	return nil
}

func preserved(n int) []int {
	keep := make([]int, 0, n)
	for i := 0; i < n; i++ {
		keep = append(keep, 3+i)
	}
	return keep
}

// seccompLoader returns the callback that process.Prepare calls at the
// right moment to load the filter; nil when the spec has none.
func seccompLoader(spec *specs.Spec, ic *initConfig, listener *net.UnixConn) func() error {
	var cfg *specs.LinuxSeccomp
	if spec.Linux != nil {
		cfg = spec.Linux.Seccomp
	}
	if data, ok := spec.Annotations[seccomp.BPFAnnotation]; ok {
		// A precompiled program (crun's annotation): loaded instead of
		// compiling linux.seccomp, whose flags still apply.
		prog, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			err = fmt.Errorf("annotations[%q]: not base64: %w", seccomp.BPFAnnotation, err)
		} else if cfg != nil && !seccomp.Cacheable(cfg) {
			err = fmt.Errorf("annotations[%q]: cannot stand for a linux.seccomp with SCMP_ACT_NOTIFY or flags other than TSYNC, LOG and SPEC_ALLOW", seccomp.BPFAnnotation)
		}
		var flags []specs.LinuxSeccompFlag
		if cfg != nil {
			flags = cfg.Flags
		}
		return func() error {
			if err != nil {
				return err
			}
			return seccomp.LoadProgram(prog, flags)
		}
	}
	if cfg == nil {
		return nil
	}
	// Compile now, before process.Prepare applies the rlimits: a small
	// RLIMIT_AS would leave libseccomp no memory to build the filter.
	f, compileErr := seccomp.Compile(cfg)
	return func() error {
		if compileErr != nil {
			return compileErr
		}
		defer f.Close()
		fd, err := f.Load()
		if err != nil {
			return fmt.Errorf("linux.seccomp: load filter: %w", err)
		}
		if fd < 0 {
			return nil
		}
		defer unix.Close(fd)
		if listener == nil {
			return fmt.Errorf("linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")
		}
		st := specs.ContainerProcessState{
			Version:  specs.Version,
			Fds:      []string{specs.SeccompFdName},
			Pid:      ic.HostPid,
			Metadata: cfg.ListenerMetadata,
			State: specs.State{
				Version:     specs.Version,
				ID:          ic.ID,
				Status:      specs.StateCreating,
				Pid:         ic.HostPid,
				Bundle:      ic.Bundle,
				Annotations: spec.Annotations,
			},
		}
		if err := seccomp.SendListenerConn(listener, &st, fd); err != nil {
			return fmt.Errorf("linux.seccomp.listenerPath: %w", err)
		}
		return nil
	}
}

// setupConsole opens a pty in the container's devpts, hands the master to
// the runtime and makes the slave the process's controlling terminal and
// stdio (and /dev/console).
func setupConsole(sock *syncSocket, bindConsole bool) error {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("process.terminal: open /dev/ptmx: %w", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("process.terminal: unlockpt: %w", err)
	}
	// TIOCGPTPEER opens the slave through the master, so no path in the
	// container can swap it.
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, master.Fd(), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		return fmt.Errorf("process.terminal: open pty slave: %w", errno)
	}
	slave := os.NewFile(sfd, "pty-slave")
	defer slave.Close()
	if err := sock.send(message{Type: msgConsole}, int(master.Fd())); err != nil {
		return err
	}
	if bindConsole {
		if err := rootfs.BindConsole(slave); err != nil {
			return err
		}
	}
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("process.terminal: setsid: %w", err)
	}
	if err := unix.IoctlSetInt(int(slave.Fd()), unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("process.terminal: set controlling terminal: %w", err)
	}
	for i := 0; i < 3; i++ {
		if err := unix.Dup3(int(slave.Fd()), i, 0); err != nil {
			return fmt.Errorf("process.terminal: dup: %w", err)
		}
	}
	return nil
}

// loopbackUp sets lo up in a new network namespace, as runc does, so that
// 127.0.0.1 works in a container without networking.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// execInit is the container side of exec: the nsenter constructor has
// joined the init's namespaces (and the mount namespace's root is the
// container's root); apply the process and exec it.
func execInit(ic *initConfig, sock *syncSocket) error {
	if ic.Process.Terminal {
		if err := setupConsole(sock, false); err != nil {
			return err
		}
	}
	pr, err := process.Prepare(ic.Spec, ic.Process, process.Options{
		LoadSeccomp: seccompLoader(ic.Spec, ic, nil),
	})
	if err != nil {
		return err
	}
	if err := sock.send(message{Type: msgReady, Pid: ic.HostPid}); err != nil {
		return err
	}
	sock.Close()
	err = pr.Exec(preserved(ic.PreserveFDs))
	fmt.Fprintln(os.Stderr, "berth-runtime exec:", err)
	os.Exit(127)
	return nil
}
