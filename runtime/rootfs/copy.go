package rootfs

import (
	"errors"
	"fmt"
	"io"
	"os"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// copyTree copies what the directory under holds (the image's content that a
// "tmpcopyup" tmpfs now covers) into the tmpfs top, keeping modes and owners.
// Both sides are walked by descriptor with O_NOFOLLOW, so an image symlink is
// copied as a symlink and never followed.
func copyTree(under, top *os.File) error {
	src, err := pathrs.Reopen(under, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := pathrs.Reopen(top, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer dst.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return err
	}
	if err := unix.Fchown(int(dst.Fd()), int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := unix.Fchmod(int(dst.Fd()), st.Mode&0o7777); err != nil {
		return err
	}
	return copyDir(src, dst, 0)
}

func copyDir(src, dst *os.File, depth int) error {
	if depth > 256 {
		return errors.New("directory tree too deep")
	}
	names, err := src.Readdirnames(-1)
	if err != nil {
		return err
	}
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		perm := st.Mode & 0o7777
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := copySubdir(sfd, dfd, name, depth); err != nil {
				return err
			}
		case unix.S_IFREG:
			if err := copyFile(sfd, dfd, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case unix.S_IFLNK:
			target := make([]byte, unix.PathMax)
			n, err := unix.Readlinkat(sfd, name, target)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := unix.Symlinkat(string(target[:n]), dfd, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		default:
			if err := unix.Mknodat(dfd, name, st.Mode, int(st.Rdev)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			if err := unix.Fchmodat(dfd, name, perm, 0); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return nil
}

func copySubdir(sfd, dfd int, name string, depth int) error {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	s, err := unix.Openat(sfd, name, flags, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	d, err := unix.Openat(dfd, name, flags, 0)
	if err != nil {
		unix.Close(s)
		return fmt.Errorf("%s: %w", name, err)
	}
	sf, df := os.NewFile(uintptr(s), name), os.NewFile(uintptr(d), name)
	defer sf.Close()
	defer df.Close()
	if err := copyDir(sf, df, depth+1); err != nil {
		return fmt.Errorf("%s/%w", name, err)
	}
	return nil
}

func copyFile(sfd, dfd int, name string) error {
	s, err := unix.Openat(sfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	sf := os.NewFile(uintptr(s), name)
	defer sf.Close()
	d, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	df := os.NewFile(uintptr(d), name)
	defer df.Close()
	_, err = io.Copy(df, sf)
	return err
}
