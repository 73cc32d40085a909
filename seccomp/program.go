package seccomp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"unsafe"

	"github.com/berthproject/berth/internal/atomicfile"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// BPFAnnotation carries a compiled filter (base64 of the raw program) in a
// bundle's annotations, in crun's name for it: a runtime that honours it
// (crun, berth-runtime) loads the program instead of compiling
// linux.seccomp, which costs more than the rest of a container's start.
const BPFAnnotation = "run.oci.seccomp_bpf_data"

// bpfInsnSize is the size of one struct sock_filter; bpfMaxInsns is the
// kernel's BPF_MAXINSNS.
const (
	bpfInsnSize = 8
	bpfMaxInsns = 4096
)

// Program returns the compiled filter as the kernel takes it: an array of
// struct sock_filter, native byte order.
func (f *Filter) Program() ([]byte, error) {
	if f == nil || f.scmp == nil || !f.scmp.IsValid() {
		return nil, errors.New("linux.seccomp: export: filter is closed or was never compiled")
	}
	fd, err := unix.MemfdCreate("berth-seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: export: %w", err)
	}
	mf := os.NewFile(uintptr(fd), "berth-seccomp")
	defer mf.Close()
	if err := f.scmp.ExportBPF(mf); err != nil {
		return nil, fmt.Errorf("linux.seccomp: export the program: %w", err)
	}
	if _, err := mf.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	prog, err := io.ReadAll(mf)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: export: %w", err)
	}
	if err := checkProgram(prog); err != nil {
		return nil, err
	}
	return prog, nil
}

func checkProgram(prog []byte) error {
	if len(prog) == 0 || len(prog)%bpfInsnSize != 0 || len(prog)/bpfInsnSize > bpfMaxInsns {
		return fmt.Errorf("linux.seccomp: a program of %d bytes is not 1 to %d BPF instructions", len(prog), bpfMaxInsns)
	}
	return nil
}

// Cacheable reports whether a configuration's filter can travel as a raw
// program: no user notification (its listener fd comes from loading through
// libseccomp) and only flags LoadProgram can pass to the kernel itself.
func Cacheable(c *specs.LinuxSeccomp) bool {
	if c == nil {
		return false
	}
	for _, sc := range c.Syscalls {
		if sc.Action == specs.ActNotify {
			return false
		}
	}
	for _, fl := range c.Flags {
		if _, ok := rawFlags[fl]; !ok {
			return false
		}
	}
	return true
}

// rawFlags are the runtime-spec flags with the kernel's filter flag each
// stands for.
var rawFlags = map[specs.LinuxSeccompFlag]uintptr{
	FlagTsync:                       unix.SECCOMP_FILTER_FLAG_TSYNC,
	specs.LinuxSeccompFlagLog:       unix.SECCOMP_FILTER_FLAG_LOG,
	specs.LinuxSeccompFlagSpecAllow: unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
}

// LoadProgram installs a raw program on every thread of the calling
// process (TSYNC, as Load does) with the flags named. The rules on when it
// may be called are Load's: it does not set no_new_privs either.
func LoadProgram(prog []byte, flags []specs.LinuxSeccompFlag) error {
	if err := checkProgram(prog); err != nil {
		return err
	}
	kflags := uintptr(unix.SECCOMP_FILTER_FLAG_TSYNC)
	for _, fl := range flags {
		v, ok := rawFlags[fl]
		if !ok {
			return fmt.Errorf("linux.seccomp.flags: %s cannot be used with a precompiled program", fl)
		}
		kflags |= v
	}
	fprog := unix.SockFprog{Len: uint16(len(prog) / bpfInsnSize), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, kflags, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("linux.seccomp: load the program into the kernel: %w", errno)
	}
	if r != 0 {
		// With TSYNC a positive return is the thread that could not
		// take the filter.
		return fmt.Errorf("linux.seccomp: load the program: thread %d has a conflicting filter", r)
	}
	return nil
}

// Cache keeps compiled programs on disk, one file per configuration (and
// libseccomp version and architecture), so that a profile used again is not
// compiled again. Files are written atomically and checked when read; one
// that is not a program is compiled anew.
type Cache struct {
	Dir string
	// Max is how many programs are kept (the oldest go first); 0 means 64.
	Max int
}

// Program returns the compiled program for c, from the cache or compiled
// (and then kept).
func (k Cache) Program(c *specs.LinuxSeccomp) ([]byte, error) {
	if !Cacheable(c) {
		return nil, errors.New("linux.seccomp: this configuration cannot travel as a raw program")
	}
	key, err := cacheKey(c)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(k.Dir, key+".bpf")
	if prog, err := os.ReadFile(p); err == nil && checkProgram(prog) == nil {
		return prog, nil
	}
	f, err := Compile(c)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	prog, err := f.Program()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(k.Dir, 0o700); err != nil {
		return prog, nil // a cache that cannot be written costs time, not correctness
	}
	if atomicfile.WriteFile(p, prog, 0o600) == nil {
		k.prune()
	}
	return prog, nil
}

func (k Cache) prune() {
	max := k.Max
	if max <= 0 {
		max = 64
	}
	ents, err := os.ReadDir(k.Dir)
	if err != nil || len(ents) <= max {
		return
	}
	type file struct {
		name string
		mod  int64
	}
	var fs []file
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && filepath.Ext(e.Name()) == ".bpf" {
			fs = append(fs, file{e.Name(), fi.ModTime().UnixNano()})
		}
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].mod < fs[j].mod })
	for i := 0; i < len(fs)-max; i++ {
		os.Remove(filepath.Join(k.Dir, fs[i].name))
	}
}

// cacheKey names what decides the program: the configuration, the
// libseccomp that compiles it and the architecture it runs on.
func cacheKey(c *specs.LinuxSeccomp) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	maj, min, mic := libseccomp.GetLibraryVersion()
	h := sha256.New()
	fmt.Fprintf(h, "berth seccomp program v1\nlibseccomp %d.%d.%d\narch %s\n", maj, min, mic, runtime.GOARCH)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}
