package process

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// verifyCwd checks that the working directory is inside the root the
// process now sees. A directory reached through a file descriptor leaked
// from the host (CVE-2024-21626: cwd "/proc/self/fd/7") lies outside it,
// and getcwd(2) then answers "(unreachable)/...", which unix.Getwd turns
// into ENOENT. The reported path is not compared with process.cwd: a cwd
// under a symlink (/home -> /var/home) legitimately resolves elsewhere.
func verifyCwd(cwd string) error {
	wd, err := unix.Getwd()
	if errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("process.cwd: %q is outside the container's root filesystem (a leaked host directory?); refusing to run the process there", cwd)
	}
	if err != nil {
		return fmt.Errorf("process.cwd: check %q is inside the container: %w", cwd, err)
	}
	if !filepath.IsAbs(wd) {
		return fmt.Errorf("process.cwd: %q resolved to %q, which is not inside the container's root filesystem", cwd, wd)
	}
	return nil
}

// isPermission reports the errors a chdir may clear up once the process
// runs as the container's user (a directory only that user may enter).
func isPermission(err error) bool {
	return errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)
}

// lookPath resolves args[0] as execvp(3) would, against the PATH in env
// (the container's, not the runtime's), and as the process's own user:
// it runs after the identity change, and access is checked with the
// effective ids. Errors are *exec.Error so callers can tell not found
// (errors.Is exec.ErrNotFound: exit 127) from not executable
// (fs.ErrPermission: exit 126).
func lookPath(file string, env []string) (string, error) {
	if file == "" {
		return "", &exec.Error{Name: file, Err: exec.ErrNotFound}
	}
	if strings.Contains(file, "/") {
		if err := checkExecutable(file); err != nil {
			return "", &exec.Error{Name: file, Err: err}
		}
		return file, nil
	}
	path, _ := envLookup(env, "PATH")
	var denied bool
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "." // an empty PATH entry means the working directory
		}
		p := dir + "/" + file
		err := checkExecutable(p)
		if err == nil {
			return p, nil
		}
		if errors.Is(err, fs.ErrPermission) {
			denied = true
		}
	}
	if denied {
		return "", &exec.Error{Name: file, Err: fs.ErrPermission}
	}
	return "", &exec.Error{Name: file, Err: exec.ErrNotFound}
}

// checkExecutable returns nil for a file the process may execute,
// fs.ErrPermission for one it may not (or a directory), and the stat error
// otherwise.
func checkExecutable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return fs.ErrNotExist
		}
		return err
	}
	if st.IsDir() {
		return fs.ErrPermission
	}
	if err := unix.Faccessat(unix.AT_FDCWD, p, unix.X_OK, unix.AT_EACCESS); err != nil {
		if isPermission(err) {
			return fs.ErrPermission
		}
		return err
	}
	return nil
}
