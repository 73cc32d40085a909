package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/cgroup"
	"github.com/berthproject/berth/runtime/bundle"
	"github.com/berthproject/berth/runtime/nsenter"
	"github.com/berthproject/berth/runtime/process"
)

// Runtime is berth-runtime's view of one state directory.
type Runtime struct {
	// Root holds one directory per container (runc's --root).
	Root string
	// Log receives diagnostics; nil means slog.Default().
	Log *slog.Logger
}

func (r *Runtime) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// CreateOptions are create's and run's flags.
type CreateOptions struct {
	ID            string
	Bundle        string
	ConsoleSocket string // unix socket that receives the pty master (process.terminal)
	PidFile       string
	NoPivot       bool
	PreserveFDs   int // pass fds 3..3+N-1 to the container

	// foreground is set by Run when it proxies a terminal itself.
	foreground bool
	// stdio overrides the init's stdin/stdout/stderr (tests); nil inherits.
	stdio []*os.File
}

// initConfig is what the runtime sends the container's init (or an exec'd
// process) through the config pipe before anything else happens.
type initConfig struct {
	Exec          bool           `json:"exec,omitempty"`
	ID            string         `json:"id"`
	Spec          *specs.Spec    `json:"spec"`
	Process       *specs.Process `json:"process"`
	Bundle        string         `json:"bundle"`
	Rootfs        string         `json:"rootfs"`
	NoPivot       bool           `json:"noPivot,omitempty"`
	HostPid       int            `json:"hostPid"`
	NewMountNS    bool           `json:"newMountNS,omitempty"`
	NewUserNS     bool           `json:"newUserNS,omitempty"`
	NewNetNS      bool           `json:"newNetNS,omitempty"`
	PreserveFDs   int            `json:"preserveFDs,omitempty"`
	FifoFd        int            `json:"fifoFd,omitempty"`
	SyncFd        int            `json:"syncFd"`
	ConfigFd      int            `json:"configFd"`
	ListenerConn  int            `json:"-"`
	OCIStateOwner string         `json:"-"`
}

const (
	envConfigPipe = "_BERTH_CONFIGPIPE"
	envInitMode   = "_BERTH_INITMODE"
)

// started is a container's init as create leaves it: running, waiting on
// the exec fifo.
type started struct {
	st      *containerState
	console *os.File // pty master when the runtime itself proxies the terminal
}

// Create creates a container from a bundle and leaves its init waiting for
// start. On failure nothing is left behind: no state directory, no cgroup,
// no process.
func (r *Runtime) Create(o CreateOptions) error {
	s, err := r.create(o)
	if err != nil {
		return err
	}
	if s.console != nil {
		s.console.Close()
	}
	return nil
}

func (r *Runtime) create(o CreateOptions) (_ *started, retErr error) {
	if err := checkID(o.ID); err != nil {
		return nil, err
	}
	bdir, err := filepath.Abs(o.Bundle)
	if err != nil {
		return nil, err
	}
	spec, err := bundle.Load(bdir)
	if err != nil {
		return nil, err
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("config.json: process: required to create a container")
	}
	if spec.Linux == nil {
		return nil, fmt.Errorf("config.json: linux: required on Linux")
	}
	rootfsPath, err := bundle.RootfsPath(spec, bdir)
	if err != nil {
		return nil, err
	}
	if spec.Process.Terminal && o.ConsoleSocket == "" && !o.foreground {
		return nil, fmt.Errorf("process.terminal is set but no --console-socket was given: a detached container needs somewhere to send its terminal")
	}
	if !spec.Process.Terminal && o.ConsoleSocket != "" {
		return nil, fmt.Errorf("--console-socket given but process.terminal is false: there is no terminal to send")
	}
	if err := os.MkdirAll(r.Root, 0o700); err != nil {
		return nil, fmt.Errorf("create state root %s: %w", r.Root, err)
	}
	dir := r.dir(o.ID)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if os.IsExist(err) {
			return nil, fmt.Errorf("container %q: %w", o.ID, ErrExist)
		}
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	var cg cgroup.Manager
	var initPid int
	defer func() {
		if retErr == nil {
			return
		}
		if initPid > 0 {
			unix.Kill(initPid, unix.SIGKILL)
		}
		if cg != nil {
			cg.Signal(unix.SIGKILL)
			waitEmpty(cg, 2*time.Second)
			if err := cg.Destroy(); err != nil {
				r.log().Warn("create failed; cgroup not removed", "err", err)
			}
		}
		os.RemoveAll(dir)
	}()

	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	cg, err = cgroup.New(spec.Linux.CgroupsPath, o.ID)
	if err != nil {
		return nil, fmt.Errorf("linux.cgroupsPath: %w", err)
	}

	fifoPath := filepath.Join(dir, fifoName)
	if err := unix.Mkfifo(fifoPath, 0o622); err != nil {
		return nil, fmt.Errorf("create exec fifo: %w", err)
	}
	// Past the umask: an init that is root only in its own user namespace
	// must still be able to open it for writing.
	if err := os.Chmod(fifoPath, 0o622); err != nil {
		return nil, fmt.Errorf("create exec fifo: %w", err)
	}
	fifo, err := os.OpenFile(fifoPath, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open exec fifo: %w", err)
	}
	defer fifo.Close()

	cs := &containerState{
		ID:      o.ID,
		Bundle:  bdir,
		Rootfs:  rootfsPath,
		Created: time.Now().UTC(),
		Owner:   ownerName(),
		Config:  spec,
	}
	ic := &initConfig{
		ID:          o.ID,
		Spec:        spec,
		Process:     spec.Process,
		Bundle:      bdir,
		Rootfs:      rootfsPath,
		NoPivot:     o.NoPivot,
		PreserveFDs: o.PreserveFDs,
	}
	p, err := r.startInit(ic, spec, cg, fifo, o)
	if err != nil {
		return nil, err
	}
	initPid = p.pid
	cs.Pid = p.pid
	cs.CgroupPaths = cg.Paths()
	if start, _, err := procStat(p.pid); err == nil {
		cs.PidStartTime = start
	}

	console, err := r.driveInit(p, cs, o)
	if err != nil {
		return nil, err
	}
	if err := r.save(cs); err != nil {
		if console != nil {
			console.Close()
		}
		return nil, fmt.Errorf("save state: %w", err)
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, p.pid); err != nil {
			if console != nil {
				console.Close()
			}
			return nil, err
		}
	}
	return &started{st: cs, console: console}, nil
}

// initProc is a container init (or exec'd process) between its start and
// its report that it is ready.
type initProc struct {
	pid  int
	sync *syncSocket
	cmd  *exec.Cmd
}

// namespaceFlags maps the spec's namespace types to clone flags.
var namespaceFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

// startInit starts the sealed copy of the runtime as the container's init,
// places it in its cgroup and walks it through the nsenter bootstrap.
func (r *Runtime) startInit(ic *initConfig, spec *specs.Spec, cg cgroup.Manager, fifo *os.File, o CreateOptions) (*initProc, error) {
	var cloneFlags uintptr
	var boot strings.Builder
	for _, ns := range spec.Linux.Namespaces {
		flag := namespaceFlags[ns.Type]
		if ns.Path != "" {
			fmt.Fprintf(&boot, "join %s %s\n", ns.Type, ns.Path)
			continue
		}
		switch ns.Type {
		case specs.PIDNamespace:
			boot.WriteString("unshare-pid\n")
		case specs.CgroupNamespace:
			boot.WriteString("unshare-cgroup\n")
		case specs.TimeNamespace:
			off := spec.Linux.TimeOffsets
			fmt.Fprintf(&boot, "timens %d %d %d %d\n", off["monotonic"].Secs, off["monotonic"].Nanosecs, off["boottime"].Secs, off["boottime"].Nanosecs)
		default:
			cloneFlags |= flag
		}
		switch ns.Type {
		case specs.MountNamespace:
			ic.NewMountNS = true
		case specs.UserNamespace:
			ic.NewUserNS = true
		case specs.NetworkNamespace:
			ic.NewNetNS = true
		}
	}
	boot.WriteString("end\n")

	self, err := sealedSelf()
	if err != nil {
		return nil, err
	}
	defer self.Close()

	parent, child, err := newSyncPair()
	if err != nil {
		return nil, err
	}
	defer child.Close()
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		parent.Close()
		return nil, err
	}
	defer cfgR.Close()

	// The child execs the memfd through its own fd table: a child in a new
	// user namespace may not look into ours. A high number keeps it clear
	// of the fds the child's stdio and ExtraFiles are moved onto.
	execFd, err := unix.FcntlInt(self.Fd(), unix.F_DUPFD_CLOEXEC, 200+o.PreserveFDs)
	if err != nil {
		return nil, fmt.Errorf("dup sealed binary: %w", err)
	}
	defer unix.Close(execFd)
	cmd := &exec.Cmd{
		Path: fmt.Sprintf("/proc/self/fd/%d", execFd),
		Args: []string{"berth-runtime", "init"},
	}
	if ic.Exec {
		cmd.Args[1] = "exec-init"
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if o.stdio != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = o.stdio[0], o.stdio[1], o.stdio[2]
	}
	for i := 0; i < o.PreserveFDs; i++ {
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(3+i), "preserved"))
	}
	base := 3 + len(cmd.ExtraFiles)
	ic.SyncFd, ic.ConfigFd = base, base+1
	cmd.ExtraFiles = append(cmd.ExtraFiles, child.f, cfgR)
	if fifo != nil {
		ic.FifoFd = base + 2
		cmd.ExtraFiles = append(cmd.ExtraFiles, fifo)
	}
	cmd.Env = []string{
		nsenter.EnvInitPipe + "=" + strconv.Itoa(ic.SyncFd),
		envConfigPipe + "=" + strconv.Itoa(ic.ConfigFd),
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneFlags}
	if cloneFlags&unix.CLONE_NEWUSER != 0 {
		for _, m := range spec.Linux.UIDMappings {
			cmd.SysProcAttr.UidMappings = append(cmd.SysProcAttr.UidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		for _, m := range spec.Linux.GIDMappings {
			cmd.SysProcAttr.GidMappings = append(cmd.SysProcAttr.GidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		cmd.SysProcAttr.GidMappingsEnableSetgroups = true
		// Become root of the new namespace before exec, so the init keeps
		// its capabilities there whatever host id root maps to.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	if err := cmd.Start(); err != nil {
		parent.Close()
		cfgW.Close()
		return nil, fmt.Errorf("start container init: %w", err)
	}
	fail := func(err error) (*initProc, error) {
		cmd.Process.Kill()
		cmd.Wait()
		parent.Close()
		cfgW.Close()
		return nil, err
	}
	// The cgroup first, so that the namespaces unshared next (cgroup) and
	// the forked init inherit it.
	if cg != nil {
		if err := cg.Apply(cmd.Process.Pid); err != nil {
			return fail(fmt.Errorf("linux.cgroupsPath: join cgroup: %w", err))
		}
		if !ic.Exec {
			if err := cg.Set(cgroupResources(spec.Linux)); err != nil {
				return fail(err)
			}
		}
	}
	if err := parent.sendRaw([]byte(boot.String())); err != nil {
		return fail(fmt.Errorf("bootstrap: %w", err))
	}
	reply, _, err := parent.recvRaw()
	if err != nil {
		return fail(fmt.Errorf("bootstrap: init exited before reporting: %w", waitErr(cmd, err)))
	}
	line := strings.TrimSpace(string(reply))
	pidStr, ok := strings.CutPrefix(line, "pid ")
	if !ok {
		return fail(fmt.Errorf("%s", strings.TrimPrefix(line, "error ")))
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil {
		return fail(fmt.Errorf("bootstrap: bad reply %q", line))
	}
	if pid != cmd.Process.Pid {
		// The intermediate forked into the pid namespace and exits.
		cmd.Wait()
	}
	// Otherwise the init is our own child: run and exec reap it, create
	// exits and leaves that to whoever inherits it.
	ic.HostPid = pid
	go func() {
		json.NewEncoder(cfgW).Encode(ic)
		cfgW.Close()
	}()
	return &initProc{pid: pid, sync: parent, cmd: cmd}, nil
}

func waitErr(cmd *exec.Cmd, err error) error {
	if err == io.EOF {
		if werr := cmd.Wait(); werr != nil {
			return werr
		}
	}
	return err
}

// driveInit answers the init's requests until it is ready: it runs the
// runtime-side hooks and hands the terminal on.
func (r *Runtime) driveInit(p *initProc, cs *containerState, o CreateOptions) (console *os.File, err error) {
	defer p.sync.Close()
	defer func() {
		if err != nil && console != nil {
			console.Close()
			console = nil
		}
	}()
	hooks := cs.Config.Hooks
	for {
		m, fds, err := p.sync.recv()
		if err != nil {
			if err == io.EOF {
				return console, fmt.Errorf("container init exited during setup")
			}
			return console, fmt.Errorf("container init: %w", err)
		}
		switch m.Type {
		case msgHooks:
			// The init is still root here: after its uid change, prlimit
			// on it would need CAP_SYS_RESOURCE.
			if cs.Config.Process != nil && len(cs.Config.Process.Rlimits) > 0 {
				if err := process.SetRlimits(p.pid, cs.Config.Process.Rlimits); err != nil {
					return console, err
				}
			}
			if hooks != nil {
				// prestart predates the creating status: runtime-spec 1.0
				// tools expect it to see "created".
				//lint:ignore SA1019 prestart is deprecated but still part of the spec
				if err := runHooks("prestart", hooks.Prestart, specState(cs, Created, p.pid)); err != nil {
					return console, err
				}
				if err := runHooks("createRuntime", hooks.CreateRuntime, specState(cs, Creating, p.pid)); err != nil {
					return console, err
				}
			}
			if err := p.sync.send(message{Type: msgHooksDone}); err != nil {
				return console, err
			}
		case msgConsole:
			if len(fds) != 1 {
				return console, fmt.Errorf("container init sent no terminal")
			}
			master := os.NewFile(uintptr(fds[0]), "pty-master")
			if o.ConsoleSocket != "" {
				err := sendConsole(o.ConsoleSocket, master)
				master.Close()
				if err != nil {
					return console, err
				}
			} else {
				console = master
			}
		case msgReady:
			return console, nil
		case msgError:
			for _, fd := range fds {
				unix.Close(fd)
			}
			return console, errors.New(m.Error)
		default:
			return console, fmt.Errorf("container init: unexpected message %q", m.Type)
		}
	}
}

// sendConsole passes the pty master to the --console-socket listener, as
// runc does: one message whose data is the pty's name and whose rights
// carry the fd.
func sendConsole(path string, master *os.File) error {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return fmt.Errorf("--console-socket %s: %w", path, err)
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("--console-socket %s: not a unix socket", path)
	}
	_, _, err = uc.WriteMsgUnix([]byte(master.Name()), unix.UnixRights(int(master.Fd())), nil)
	if err != nil {
		return fmt.Errorf("--console-socket %s: send terminal: %w", path, err)
	}
	return nil
}

func writePidFile(path string, pid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(abs, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("--pid-file %s: %w", path, err)
	}
	return nil
}

// waitEmpty waits until the cgroup has no process left, or the timeout.
func waitEmpty(cg cgroup.Manager, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		pids, err := cg.Pids()
		if err != nil || len(pids) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}
