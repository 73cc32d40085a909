// Package flock holds advisory file locks (flock(2)) that coordinate
// berth processes working on one state directory. A lock lives as long as
// its open file: a process that dies, even by SIGKILL, releases its locks,
// which is what lets garbage collection tell a live writer from the debris
// of a dead one.
package flock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrLocked is returned by the Try functions when another holder has the lock.
var ErrLocked = errors.New("locked by another process")

// Lock is a held lock on one file.
type Lock struct {
	f *os.File
}

func open(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

func lock(path string, how int) (*Lock, error) {
	f, err := open(path)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Exclusive waits for and takes an exclusive lock on path, creating the file.
func Exclusive(path string) (*Lock, error) { return lock(path, unix.LOCK_EX) }

// Shared waits for and takes a shared lock on path, creating the file.
func Shared(path string) (*Lock, error) { return lock(path, unix.LOCK_SH) }

// TryExclusive takes an exclusive lock if nobody holds one, or fails with
// ErrLocked at once.
func TryExclusive(path string) (*Lock, error) { return lock(path, unix.LOCK_EX|unix.LOCK_NB) }

// TryShared takes a shared lock unless an exclusive one is held.
func TryShared(path string) (*Lock, error) { return lock(path, unix.LOCK_SH|unix.LOCK_NB) }

// File returns the locked file, for holders that keep data in it.
func (l *Lock) File() *os.File { return l.f }

// Unlock releases the lock. It is safe to call on a nil Lock and twice.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
