package rootfs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/cyphar/filepath-securejoin/pathrs-lite/procfs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// idmapTree turns the detached bind mount tree into an idmapped mount with
// the entry's uidMappings/gidMappings.
func idmapTree(tree *os.File, e *entry) error {
	ns, err := userns(e.m.UIDMappings, e.m.GIDMappings)
	if err != nil {
		return e.errorf("idmapped mount: user namespace for uidMappings/gidMappings: %w", err)
	}
	defer ns.Close()
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
	if err := setattr(tree, e.o.recIdmap, &attr); err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
			return e.errorf("idmapped mount refused by the kernel or the source filesystem (needs Linux 5.12+ and a filesystem that supports idmapping): %w", err)
		}
		return e.errorf("idmapped mount: %w", err)
	}
	return nil
}

// userns returns a handle on a new user namespace with the given maps. A
// namespace only lives as long as something holds it, and the only way to
// make one with maps from a multi-threaded Go program is a child process: it
// is started with CLONE_NEWUSER under PTRACE_TRACEME, so it stops at its
// execve before running a single instruction of the program, its maps are
// written, the namespace is opened, and it is killed.
//
// The maps are written through a procfs instance of our own (pathrs) rather
// than /proc: before pivot_root /proc is the host's, whose pid numbers are
// not ours when the container has its own pid namespace.
func userns(uidMap, gidMap []specs.LinuxIDMapping) (_ *os.File, err error) {
	// The tracer is the thread that started the child.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	cmd := &exec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{"berth-idmap-userns"},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: unix.CLONE_NEWUSER,
			Ptrace:     true,
			Pdeathsig:  unix.SIGKILL,
		},
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start holder process: %w", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open: %w", err)
	}
	defer unix.Close(pidfd)

	proc, err := procfs.OpenProcRoot()
	if err != nil {
		return nil, fmt.Errorf("open procfs: %w", err)
	}
	defer proc.Close()
	pid, err := pidfdPid(proc, pidfd)
	if err != nil {
		return nil, err
	}
	if err := writeProcFile(proc, pid+"/uid_map", idMapText(uidMap)); err != nil {
		return nil, fmt.Errorf("uid_map: %w", err)
	}
	if err := writeProcFile(proc, pid+"/gid_map", idMapText(gidMap)); err != nil {
		return nil, fmt.Errorf("gid_map: %w", err)
	}
	nsDir, err := proc.OpenRoot(pid + "/ns")
	if err != nil {
		return nil, err
	}
	defer nsDir.Close()
	dir, err := pathrs.Reopen(nsDir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	fd, err := unix.Openat(int(dir.Fd()), "user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open ns/user: %w", err)
	}
	ns := os.NewFile(uintptr(fd), "userns")
	// The child must still be the one we started (not a recycled pid) for
	// the namespace we opened to be ours.
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		ns.Close()
		return nil, fmt.Errorf("holder process vanished: %w", err)
	}
	return ns, nil
}

// pidfdPid is the pid of the process behind pidfd as numbered by proc's pid
// namespace (fdinfo shows it so).
func pidfdPid(proc *procfs.Handle, pidfd int) (string, error) {
	h, err := proc.OpenSelf("fdinfo/" + strconv.Itoa(pidfd))
	if err != nil {
		return "", err
	}
	defer h.Close()
	f, err := pathrs.Reopen(h, unix.O_RDONLY)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pid:"); ok {
			v = strings.TrimSpace(v)
			if n, err := strconv.Atoi(v); err != nil || n <= 0 {
				return "", fmt.Errorf("holder process not visible in procfs (Pid: %s)", v)
			}
			return v, nil
		}
	}
	return "", errors.New("no Pid in pidfd fdinfo")
}

func writeProcFile(proc *procfs.Handle, sub, content string) error {
	h, err := proc.OpenRoot(sub)
	if err != nil {
		return err
	}
	defer h.Close()
	f, err := pathrs.Reopen(h, unix.O_WRONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write([]byte(content))
	return err
}

func idMapText(m []specs.LinuxIDMapping) string {
	var b strings.Builder
	for _, e := range m {
		fmt.Fprintf(&b, "%d %d %d\n", e.ContainerID, e.HostID, e.Size)
	}
	return b.String()
}
