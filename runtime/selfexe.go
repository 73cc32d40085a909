package runtime

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// sealedSelf returns a sealed, in-memory copy of the running binary. The
// container's processes execute that copy, so /proc/<pid>/exe inside the
// container points at memory nobody can write, not at the binary on the
// host (CVE-2019-5736: a container overwriting the runtime through
// /proc/self/exe).
func sealedSelf() (*os.File, error) {
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("open self: %w", err)
	}
	defer self.Close()
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING | unix.MFD_EXEC
	fd, err := unix.MemfdCreate("berth-runtime", flags)
	if err == unix.EINVAL {
		// Kernels before 6.3 know no MFD_EXEC; memfds are executable there.
		fd, err = unix.MemfdCreate("berth-runtime", flags&^unix.MFD_EXEC)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	mf := os.NewFile(uintptr(fd), "memfd:berth-runtime")
	// io.Copy between two files uses copy_file_range/sendfile: the copy stays
	// in the kernel.
	if _, err := io.Copy(mf, self); err != nil {
		mf.Close()
		return nil, fmt.Errorf("copy self to memfd: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(mf.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		mf.Close()
		return nil, fmt.Errorf("seal memfd: %w", err)
	}
	return mf, nil
}
