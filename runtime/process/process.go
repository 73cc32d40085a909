package process

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Options says which process is being prepared and how seccomp is loaded.
type Options struct {
	// Init is true for the container's first process: it also applies the
	// container-level hostname, domainname and linux.sysctl. A process
	// started by `exec` joins a container where they are already set.
	Init bool
	// LoadSeccomp installs the seccomp filter on the calling thread; nil
	// means none. It runs before the identity change when
	// process.noNewPrivileges is off (installing a filter then needs
	// CAP_SYS_ADMIN, still held), and as the last step of Exec otherwise,
	// so that the filter need not allow what the runtime does until execve.
	LoadSeccomp func() error
	// SysctlsApplied says the caller already wrote linux.sysctl (with
	// ApplySysctls, before /proc/sys went read-only).
	SysctlsApplied bool
}

// Prepared is a process whose attributes are applied and whose program is
// resolved; only Exec remains.
type Prepared struct {
	// Path is process.args[0] resolved against the container's PATH.
	Path string
	// Args and Env are passed to execve unchanged. Env is process.env, with
	// HOME added from the container's /etc/passwd when missing, as runc does.
	Args []string
	Env  []string

	seccompAtExec func() error
}

// Prepare applies p (and, for the init, the container-level attributes of
// spec) to the calling process, in runc's order, and resolves the program.
// It must run on the goroutine that will call Exec, which it locks to its
// OS thread for good: most of what it sets belongs to the thread.
//
// Everything is checked before anything is changed where that can be done
// without side effects; an error part way leaves the process half prepared,
// and the caller is expected to report it and exit.
func Prepare(spec *specs.Spec, p *specs.Process, o Options) (*Prepared, error) {
	if spec == nil {
		return nil, errors.New("config: missing")
	}
	if p == nil {
		return nil, errors.New("process: missing")
	}
	if len(p.Args) == 0 {
		return nil, errors.New("process.args: must name the program to run")
	}
	if !filepath.IsAbs(p.Cwd) {
		return nil, fmt.Errorf("process.cwd: must be an absolute path inside the container, not %q", p.Cwd)
	}
	rlimits, err := parseRlimits(p.Rlimits)
	if err != nil {
		return nil, err
	}
	if p.Scheduler != nil {
		if _, err := schedAttr(p.Scheduler); err != nil {
			return nil, err
		}
	}
	if p.IOPriority != nil {
		if _, err := ioprioValue(p.IOPriority); err != nil {
			return nil, err
		}
	}
	var personality *specs.LinuxPersonality
	if spec.Linux != nil {
		personality = spec.Linux.Personality
	}
	if personality != nil {
		if _, err := personalityValue(personality); err != nil {
			return nil, err
		}
	}
	umask := 0o022
	if p.User.Umask != nil {
		if *p.User.Umask > 0o777 {
			return nil, fmt.Errorf("process.user.umask: %#o is not a permission mask", *p.User.Umask)
		}
		umask = int(*p.User.Umask)
	}

	runtime.LockOSThread()

	if o.Init {
		if err := applyUTS(spec); err != nil {
			return nil, err
		}
		if !o.SysctlsApplied {
			if err := applySysctls(spec); err != nil {
				return nil, err
			}
		}
	}
	// Every process gets the personality, not just the init: an exec'd
	// process does not descend from the init and would otherwise run with
	// the runtime's (runc does the same).
	if err := applyPersonality(personality); err != nil {
		return nil, err
	}
	if err := applyRlimits(rlimits); err != nil {
		return nil, err
	}
	if err := applyOOMScoreAdj(p.OOMScoreAdj); err != nil {
		return nil, err
	}
	if err := applyIOPriority(p.IOPriority); err != nil {
		return nil, err
	}
	if err := applyScheduler(p.Scheduler); err != nil {
		return nil, err
	}
	if !o.Init {
		// The spec applies execCPUAffinity to exec'd processes only; the
		// initial affinity is the runtime parent's business.
		if err := applyFinalAffinity(p.ExecCPUAffinity); err != nil {
			return nil, err
		}
	}
	if err := applyAppArmor(p.ApparmorProfile); err != nil {
		return nil, err
	}
	if err := applySELinux(p.SelinuxLabel); err != nil {
		return nil, err
	}
	// Read the capability sets before seccomp: a filter may refuse capget.
	caps, err := newCapApplier(p.Capabilities)
	if err != nil {
		return nil, err
	}
	env := p.Env
	if _, ok := envLookup(env, "HOME"); !ok {
		env = append(slices.Clip(env), "HOME="+homeDir(p.User.UID))
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("process.noNewPrivileges: %w", err)
		}
	}

	if err := caps.applyBounding(); err != nil {
		return nil, err
	}
	// As root first: the directory may be one only root can reach the
	// parent of. On EACCES, try again as the container's user below.
	// The check runs before seccomp is loaded: a profile may refuse getcwd.
	chdirLater := false
	if err := unix.Chdir(p.Cwd); err != nil {
		if !isPermission(err) {
			return nil, fmt.Errorf("process.cwd: chdir %q: %w", p.Cwd, err)
		}
		chdirLater = true
	} else if err := verifyCwd(p.Cwd); err != nil {
		return nil, err
	}
	// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
	// now, before the identity change drops it.
	if !p.NoNewPrivileges && o.LoadSeccomp != nil {
		if err := o.LoadSeccomp(); err != nil {
			return nil, fmt.Errorf("linux.seccomp: load filter: %w", err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("process.user: keep capabilities across the uid change: %w", err)
	}
	if err := changeIdentity(p.User); err != nil {
		return nil, err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("process.user: %w", err)
	}
	if err := caps.applySets(); err != nil {
		return nil, err
	}
	unix.Umask(umask)
	if chdirLater {
		if err := unix.Chdir(p.Cwd); err != nil {
			return nil, fmt.Errorf("process.cwd: chdir %q as uid %d: %w", p.Cwd, p.User.UID, err)
		}
		if err := verifyCwd(p.Cwd); err != nil {
			return nil, err
		}
	}
	path, err := lookPath(p.Args[0], env)
	if err != nil {
		return nil, fmt.Errorf("process.args[0]: %w", err)
	}
	pr := &Prepared{Path: path, Args: p.Args, Env: env}
	if p.NoNewPrivileges {
		pr.seccompAtExec = o.LoadSeccomp
	}
	return pr, nil
}

// Exec makes every file descriptor from 3 up close-on-exec except those in
// keep (whose close-on-exec flag it clears, so they do reach the program),
// so nothing the runtime holds leaks into the container; then loads the
// seccomp filter when process.noNewPrivileges deferred it, and execs. It
// returns only on failure. Call it from the goroutine that ran Prepare.
func (pr *Prepared) Exec(keep []int) error {
	if err := markCloseOnExec(keep); err != nil {
		return err
	}
	if pr.seccompAtExec != nil {
		if err := pr.seccompAtExec(); err != nil {
			return fmt.Errorf("linux.seccomp: load filter: %w", err)
		}
	}
	err := unix.Exec(pr.Path, pr.Args, pr.Env)
	return fmt.Errorf("process.args[0]: exec %q: %w", pr.Path, err)
}

// markCloseOnExec sets FD_CLOEXEC on every descriptor >= 3 not in keep and
// clears it on those in keep.
func markCloseOnExec(keep []int) error {
	keep = slices.Clone(keep)
	slices.Sort(keep)
	keep = slices.Compact(keep)
	for _, fd := range keep {
		if fd < 3 {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("keep file descriptor %d open across exec: %w", fd, err)
		}
	}
	// close_range(2) over the gaps between kept descriptors; /proc for
	// kernels older than 5.11.
	lo := uint(3)
	ranged := true
	for _, fd := range append(keep, -1) {
		hi := ^uint(0)
		if fd >= 0 {
			if uint(fd) < lo {
				continue
			}
			hi = uint(fd) - 1
		}
		if hi >= lo {
			if err := unix.CloseRange(lo, hi, unix.CLOSE_RANGE_CLOEXEC); err != nil {
				ranged = false
				break
			}
		}
		if fd >= 0 {
			lo = uint(fd) + 1
		}
	}
	if ranged {
		return nil
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list open file descriptors: %w", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 || slices.Contains(keep, fd) {
			continue
		}
		// EBADF: the descriptor ReadDir itself used, closed by now.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && !errors.Is(err, unix.EBADF) {
			return fmt.Errorf("mark file descriptor %d close-on-exec: %w", fd, err)
		}
	}
	return nil
}
