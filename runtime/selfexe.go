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
	// sendfile keeps the copy in the kernel (page cache to shmem); io.Copy
	// would bounce the whole binary through user space in 32 KiB pieces.
	if err := sendAll(mf, self); err != nil {
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

func sendAll(dst, src *os.File) error {
	st, err := src.Stat()
	if err != nil {
		return err
	}
	for left := st.Size(); left > 0; {
		n, err := unix.Sendfile(int(dst.Fd()), int(src.Fd()), nil, int(left))
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err == unix.EINVAL || err == unix.ENOSYS {
			_, err = io.Copy(dst, src)
			return err
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		left -= int64(n)
	}
	return nil
}
