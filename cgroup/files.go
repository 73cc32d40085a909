package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// writeFile writes one value to a cgroup control file. The file must exist:
// cgroupfs never creates files, and O_CREAT would hide a missing controller
// behind a confusing EACCES.
func writeFile(dir, name, value string) error {
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	return nil
}

func readFile(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}

func exists(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

// readUint reads a single number; "max" (v2) reads as the largest value so a
// limit of "unlimited" compares as one.
func readUint(dir, name string) (uint64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return 0, err
	}
	return parseUint(s)
}

func parseUint(s string) (uint64, error) {
	if s == "max" {
		return ^uint64(0), nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		// v1 prints some "unlimited" values as negative numbers.
		if i, ierr := strconv.ParseInt(s, 10, 64); ierr == nil && i < 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("parse %q: %w", s, err)
	}
	return v, nil
}

// readKeyValues reads "key value" lines (memory.stat, cpu.stat, ...).
func readKeyValues(dir, name string) (map[string]uint64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, err := parseUint(f[1])
		if err != nil {
			continue
		}
		out[f[0]] = v
	}
	return out, nil
}

// writeProcs moves pid into dir. EINVAL can mean the task is still being
// forked (TASK_NEW); the kernel accepts it a moment later.
func writeProcs(dir string, pid int) error {
	var err error
	for range 5 {
		err = writeFile(dir, "cgroup.procs", strconv.Itoa(pid))
		if !errors.Is(err, unix.EINVAL) {
			return err
		}
		sleepBrief(30)
	}
	return err
}

func isNotExist(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT)
}
