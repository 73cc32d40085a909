package flock

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestExclusiveExcludes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "lock")
	l, err := Exclusive(p)
	if err != nil {
		t.Fatal(err)
	}
	// flock conflicts between open file descriptions, so a second open in
	// the same process stands in for another process.
	if _, err := TryExclusive(p); !errors.Is(err, ErrLocked) {
		t.Fatalf("second exclusive lock: %v, want ErrLocked", err)
	}
	if _, err := TryShared(p); !errors.Is(err, ErrLocked) {
		t.Fatalf("shared lock under an exclusive one: %v, want ErrLocked", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatalf("second unlock: %v", err)
	}
	l2, err := TryExclusive(p)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	l2.Unlock()
}

func TestSharedLocksCoexist(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	a, err := Shared(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Unlock()
	b, err := TryShared(p)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	defer b.Unlock()
	if _, err := TryExclusive(p); !errors.Is(err, ErrLocked) {
		t.Fatalf("exclusive lock under shared ones: %v, want ErrLocked", err)
	}
}
