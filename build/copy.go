package build

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/errdefs"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// CopySpec is one COPY or ADD after variable expansion.
type CopySpec struct {
	// SrcRoot is the host directory the sources are relative to: the
	// context directory, or the mounted root file system of another stage
	// or image (COPY --from).
	SrcRoot string
	// Ignore, when set (context sources), hides excluded paths (rel is
	// slash-separated, relative to SrcRoot): Context.Excluded.
	Ignore func(rel string) bool
	// IgnoreDir, when set with Ignore, reports that an excluded directory
	// can be skipped whole (Context.SkipDir). Without it an excluded
	// directory is still walked, for what a "!" pattern re-includes; the
	// result is the same, only slower.
	IgnoreDir func(rel string) bool
	// Sources as written in the Dockerfile (after variable expansion); they
	// may contain wildcards (filepath.Match syntax, as Docker).
	Sources []string
	// Inline are heredoc sources (COPY <<EOF /dest): a file name and its
	// data, written with mode 0644 (or Mode).
	Inline []InlineFile
	// DestRoot is the host directory where the target root file system is
	// mounted (read-write).
	DestRoot string
	// Dest is the destination inside the target, already made absolute
	// against WORKDIR by the caller; a trailing "/" is significant.
	Dest string
	// UID and GID are --chown, resolved to numbers by the caller. nil
	// means 0:0 for context and inline sources and the source's own owner
	// for COPY --from (as BuildKit does).
	UID, GID *int
	// Mode is --chmod (permission bits, and setuid/setgid/sticky either as
	// os.ModeSetuid... or as the octal 0o4000... bits); nil keeps the
	// source's mode.
	Mode *os.FileMode
	// Unpack (ADD): a source file that is a tar, plain or gzip, bzip2 or
	// zstd compressed (told by content, not name, as Docker does), is
	// extracted into Dest instead of being copied.
	Unpack bool
	// FromContext: the sources are the build context. Relative sources
	// must not leave it; an absolute source is relative to its root.
	FromContext bool
}

// InlineFile is a heredoc source: the file Name gets Data.
type InlineFile struct {
	Name, Data string
}

// copyError is an error a user caused, with Docker's wording, that still
// tests as its kinds with errors.Is.
type copyError struct {
	msg   string
	kinds []error
}

func (e *copyError) Error() string   { return e.msg }
func (e *copyError) Unwrap() []error { return e.kinds }

func (s *CopySpec) verb() string {
	if s.Unpack {
		return "ADD"
	}
	return "COPY"
}

func (s *CopySpec) notFound(name string) error {
	where := ""
	if s.FromContext {
		where = "file not found in build context or excluded by .dockerignore: "
	}
	return &copyError{
		msg:   fmt.Sprintf("%s failed: %sstat %s: file does not exist", s.verb(), where, name),
		kinds: []error{errdefs.ErrNotFound, fs.ErrNotExist},
	}
}

// source is one selected source: a file or directory to copy.
type source struct {
	// name is the path as selected (wildcards expanded), relative to
	// SrcRoot and lexical: a symlink named as a source keeps its own name
	// at the destination.
	name string
	// path is the host path with every symlink resolved inside SrcRoot,
	// and rel the same relative to SrcRoot ("" for the root), which is
	// what .dockerignore is matched against below it.
	path string
	rel  string
	st   *syscall.Stat_t
}

func (src *source) isDir() bool { return src.st.Mode&unix.S_IFMT == unix.S_IFDIR }

func (s *CopySpec) ignored(rel string) bool {
	return s.Ignore != nil && rel != "" && s.Ignore(rel)
}

// sources selects what s.Sources name, in order, wildcards expanded.
func (s *CopySpec) sources() ([]source, error) {
	if s.SrcRoot == "" {
		return nil, fmt.Errorf("%s: no source root: %w", s.verb(), errdefs.ErrInvalidArgument)
	}
	root, err := filepath.Abs(s.SrcRoot)
	if err != nil {
		return nil, fmt.Errorf("%s: source root: %w", s.verb(), err)
	}
	var out []source
	for _, raw := range s.Sources {
		name, err := s.sourceName(raw)
		if err != nil {
			return nil, err
		}
		if !hasWildcard(name) {
			src, err := s.resolve(root, name)
			if err != nil {
				return nil, err
			}
			if src == nil {
				return nil, s.notFound(raw)
			}
			out = append(out, *src)
			continue
		}
		names, err := s.expand(root, name)
		if err != nil {
			return nil, fmt.Errorf("%s failed: %s: %w", s.verb(), raw, err)
		}
		n := len(out)
		for _, m := range names {
			src, err := s.resolve(root, m)
			if err != nil {
				return nil, err
			}
			if src != nil { // a candidate under a non-wildcard component may be missing
				out = append(out, *src)
			}
		}
		if len(out) == n {
			// BuildKit refuses a wildcard that selects nothing.
			return nil, &copyError{
				msg:   fmt.Sprintf("%s failed: no source files were specified: %s matches no file in the %s", s.verb(), raw, s.rootWord()),
				kinds: []error{errdefs.ErrNotFound, fs.ErrNotExist},
			}
		}
	}
	return out, nil
}

func (s *CopySpec) rootWord() string {
	if s.FromContext {
		return "build context (or all matches are excluded by .dockerignore)"
	}
	return "source stage"
}

// sourceName makes raw a clean path relative to the source root.
func (s *CopySpec) sourceName(raw string) (string, error) {
	p := filepath.ToSlash(raw)
	if s.FromContext && !path.IsAbs(p) {
		c := path.Clean(p)
		if c == ".." || strings.HasPrefix(c, "../") {
			return "", &copyError{
				msg:   fmt.Sprintf("%s failed: forbidden path outside the build context: %s", s.verb(), raw),
				kinds: []error{errdefs.ErrInvalidArgument},
			}
		}
	}
	// An absolute path is relative to the root (the context's, as Docker
	// does, or the stage's); in a stage ".." stops at the root, as in a
	// chroot.
	return cleanRel(p), nil
}

func hasWildcard(p string) bool { return strings.ContainsAny(p, "*?[") }

// expand lists the paths (relative to root, lexical) that the wildcard
// pattern name selects, component by component, skipping ignored ones.
func (s *CopySpec) expand(root, name string) ([]string, error) {
	cands := []string{""}
	for _, comp := range strings.Split(name, "/") {
		if !hasWildcard(comp) {
			for i := range cands {
				cands[i] = path.Join(cands[i], comp)
			}
			continue
		}
		if _, err := path.Match(comp, ""); err != nil {
			return nil, fmt.Errorf("bad pattern %q: %w: %w", comp, errdefs.ErrInvalidArgument, err)
		}
		var next []string
		for _, base := range cands {
			dir, err := securejoin.SecureJoin(root, base)
			if err != nil {
				return nil, err
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				continue // missing, or not a directory: nothing matches below it
			}
			for _, e := range ents {
				if ok, _ := path.Match(comp, e.Name()); !ok {
					continue
				}
				p := path.Join(base, e.Name())
				if !s.ignored(p) {
					next = append(next, p)
				}
			}
		}
		cands = next
	}
	return cands, nil
}

// resolve finds name inside root, following symlinks inside it; nil when
// it does not exist or is excluded (itself, or what a symlink leads to:
// the excluded file is not in the context, so the link dangles there).
func (s *CopySpec) resolve(root, name string) (*source, error) {
	if s.ignored(name) {
		return nil, nil
	}
	p, err := securejoin.SecureJoin(root, name)
	if err != nil {
		return nil, fmt.Errorf("%s failed: %s: %w", s.verb(), name, err)
	}
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return nil, fmt.Errorf("%s failed: %s: %w", s.verb(), name, err)
	}
	rel = filepath.ToSlash(rel)
	if rel == "." {
		rel = ""
	}
	if s.ignored(rel) {
		return nil, nil
	}
	// p has no symlink left (SecureJoin resolved them all), so Lstat is
	// what Stat would say without following anything that changed since.
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s failed: %w", s.verb(), err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&fs.ModeSymlink != 0 {
		// Only when the links loop or nest too deep.
		return nil, &copyError{
			msg:   fmt.Sprintf("%s failed: %s: too many levels of symbolic links", s.verb(), name),
			kinds: []error{errdefs.ErrInvalidArgument},
		}
	}
	return &source{name: name, path: p, rel: rel, st: st}, nil
}

// walker visits a source the same way for Copy and SourceDigest, so that
// the digest covers exactly what is copied. Directories are entered in
// sorted order; an excluded directory is entered only when something
// below it is not excluded (a "!" pattern), just before that.
type walker struct {
	ctx   context.Context
	s     *CopySpec
	src   *source
	enter func(rel, path string, st *syscall.Stat_t) error
	leave func(rel string, st *syscall.Stat_t) error
	leaf  func(rel, path string, st *syscall.Stat_t) error
}

type dirFrame struct {
	rel, path string
	st        *syscall.Stat_t
	entered   bool
	parent    *dirFrame
}

func (w *walker) run() error {
	if !w.src.isDir() {
		// A fifo or a device named as a source would block the open or
		// read without end: refused, as inside a directory.
		if t := w.src.st.Mode & syscall.S_IFMT; t != syscall.S_IFREG && t != syscall.S_IFLNK {
			return &copyError{
				msg:   fmt.Sprintf("%s failed: %s is neither a regular file, a directory nor a symlink", w.s.verb(), w.src.name),
				kinds: []error{errdefs.ErrInvalidArgument},
			}
		}
		return w.leaf("", w.src.path, w.src.st)
	}
	top := &dirFrame{path: w.src.path, st: w.src.st, entered: true}
	if err := w.enter("", top.path, top.st); err != nil {
		return err
	}
	if err := w.dir(top); err != nil {
		return err
	}
	return w.leave("", top.st)
}

// ignoreRel is rel (below the source) relative to the source root.
func (w *walker) ignoreRel(rel string) string { return path.Join(w.src.rel, rel) }

func (w *walker) ensure(f *dirFrame) error {
	if f == nil || f.entered {
		return nil
	}
	if err := w.ensure(f.parent); err != nil {
		return err
	}
	f.entered = true
	return w.enter(f.rel, f.path, f.st)
}

func (w *walker) dir(f *dirFrame) error {
	ents, err := os.ReadDir(f.path)
	if err != nil {
		return fmt.Errorf("%s failed: %w", w.s.verb(), err)
	}
	for _, e := range ents {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		rel := path.Join(f.rel, e.Name())
		p := filepath.Join(f.path, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("%s failed: %w", w.s.verb(), err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		ign := w.s.ignored(w.ignoreRel(rel))
		switch fi.Mode().Type() {
		case fs.ModeDir:
			if ign && w.s.IgnoreDir != nil && w.s.IgnoreDir(w.ignoreRel(rel)) {
				continue
			}
			child := &dirFrame{rel: rel, path: p, st: st, parent: f}
			if !ign {
				if err := w.ensure(child); err != nil {
					return err
				}
			}
			if err := w.dir(child); err != nil {
				return err
			}
			if child.entered {
				if err := w.leave(rel, st); err != nil {
					return err
				}
			}
		case 0, fs.ModeSymlink:
			if ign {
				continue
			}
			if err := w.ensure(f); err != nil {
				return err
			}
			if err := w.leaf(rel, p, st); err != nil {
				return err
			}
		default:
			if ign {
				continue
			}
			return &copyError{
				msg:   fmt.Sprintf("%s failed: %s: %s is neither a regular file, a directory nor a symlink", w.s.verb(), path.Join(w.src.name, rel), fi.Mode().Type()),
				kinds: []error{errdefs.ErrInvalidArgument},
			}
		}
	}
	return nil
}

// Copy runs one COPY or ADD: it copies what s selects from s.SrcRoot into
// the target root file system at s.DestRoot.
//
// Every destination path is resolved through file descriptors with
// symlinks confined to DestRoot, and entries are created relative to their
// parent directory's descriptor without following a symlink in their own
// name: a target image's /app -> /etc puts files in DestRoot/etc, never in
// the host's /etc. Regular files, directories and symlinks are copied, with
// mode, owner (see UID) and access and modification times. Hard links
// within a copied tree are copied as separate files (BuildKit keeps them as
// links; keeping them would need an inode map, for a rare case).
func Copy(ctx context.Context, s CopySpec) error {
	srcs, err := s.sources()
	if err != nil {
		return err
	}
	if s.DestRoot == "" {
		return fmt.Errorf("%s: no destination root: %w", s.verb(), errdefs.ErrInvalidArgument)
	}
	destRoot, err := filepath.Abs(s.DestRoot)
	if err != nil {
		return fmt.Errorf("%s: destination root: %w", s.verb(), err)
	}
	inline, err := s.inlineNames()
	if err != nil {
		return err
	}
	total := len(srcs) + len(inline)
	if total == 0 {
		return fmt.Errorf("%s: no source files were specified: %w", s.verb(), errdefs.ErrInvalidArgument)
	}
	rootFd, err := unix.Open(destRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: open destination root %s: %w", s.verb(), destRoot, err)
	}
	c := &copier{ctx: ctx, s: &s, destRoot: destRoot, root: os.NewFile(uintptr(rootFd), destRoot), euid: os.Geteuid()}
	defer c.root.Close()

	d := s.Dest
	if d == "" {
		d = "/"
	}
	slash := strings.HasSuffix(d, "/") || strings.HasSuffix(d, "/.") || d == "."
	destRel := cleanRel(d)
	if total > 1 && !slash {
		return &copyError{
			// Docker's wording, word for word.
			msg:   fmt.Sprintf("When using %s with more than one source file, the destination must be a directory and end with a /", s.verb()),
			kinds: []error{errdefs.ErrInvalidArgument},
		}
	}
	isDir := slash || destRel == ""
	archives := make([]bool, len(srcs))
	for i := range srcs {
		if s.Unpack && !srcs[i].isDir() {
			if archives[i], err = isArchive(srcs[i].path); err != nil {
				return fmt.Errorf("%s failed: %s: %w", s.verb(), srcs[i].name, err)
			}
		}
	}
	if !isDir && len(srcs) == 1 && (srcs[0].isDir() || archives[0]) {
		isDir = true
	}
	if !isDir {
		// One file into a path that may already be a directory, maybe
		// through symlinks: this only decides where the file goes, the
		// write itself is confined.
		if p, err := securejoin.SecureJoin(destRoot, destRel); err == nil {
			if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
				isDir = true
			}
		}
	}

	if !isDir {
		parent, _, err := c.mkdirAll(path.Dir(destRel))
		if err != nil {
			return err
		}
		defer parent.Close()
		name := path.Base(destRel)
		if len(srcs) == 1 {
			return c.copyFile(parent, name, "/"+destRel, srcs[0].path, srcs[0].st)
		}
		return c.writeInline(parent, name, "/"+destRel, s.Inline[0].Data)
	}

	dir, created, err := c.mkdirAll(destRel)
	if err != nil {
		return err
	}
	defer dir.Close()
	for i := range srcs {
		if err := ctx.Err(); err != nil {
			return err
		}
		src := &srcs[i]
		switch {
		case src.isDir():
			// The destination takes the directory's own attributes only
			// when this copy made it for that directory alone.
			err = c.copyTree(src, dir, destRel, created && total == 1)
		case archives[i]:
			err = c.unpack(src, dir)
		default:
			name := path.Base(src.name)
			err = c.copyFile(dir, name, "/"+path.Join(destRel, name), src.path, src.st)
		}
		if err != nil {
			return err
		}
	}
	for i, name := range inline {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.writeInline(dir, name, "/"+path.Join(destRel, name), s.Inline[i].Data); err != nil {
			return err
		}
	}
	return nil
}

// inlineNames checks the heredoc file names: each one is a single file
// name, as the Dockerfile parser makes them.
func (s *CopySpec) inlineNames() ([]string, error) {
	names := make([]string, len(s.Inline))
	for i, f := range s.Inline {
		n := f.Name
		if n == "" || n == "." || n == ".." || strings.ContainsRune(n, '/') {
			return nil, fmt.Errorf("%s: heredoc file name %q is not a file name: %w", s.verb(), f.Name, errdefs.ErrInvalidArgument)
		}
		names[i] = n
	}
	return names, nil
}

type copier struct {
	ctx      context.Context
	s        *CopySpec
	destRoot string
	root     *os.File
	euid     int
}

// owner is who a copied entry belongs to (st is the source's, nil for
// heredoc files), and whether the user asked for it (--chown).
func (c *copier) owner(st *syscall.Stat_t) (uid, gid int, explicit bool) {
	if st != nil && !c.s.FromContext {
		uid, gid = int(st.Uid), int(st.Gid)
	}
	if c.s.UID != nil {
		uid, explicit = *c.s.UID, true
	}
	if c.s.GID != nil {
		gid, explicit = *c.s.GID, true
	}
	return uid, gid, explicit
}

// parentOwner is who the missing parents of the destination belong to:
// the --chown user (as BuildKit does), else root.
func (c *copier) parentOwner() (uid, gid int, explicit bool) {
	return c.owner(nil)
}

// chown runs fn and tolerates its EPERM (or EINVAL, for an ID the user
// namespace does not map) when not root and the owner is only the default:
// an unprivileged build cannot give files away, and they stay the builder's.
// An explicit --chown that cannot be honored is an error.
func (c *copier) chown(what string, explicit bool, fn func() error) error {
	err := fn()
	if err == nil {
		return nil
	}
	if !explicit && c.euid != 0 && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL)) {
		return nil
	}
	return fmt.Errorf("%s failed: chown %s: %w", c.s.verb(), what, err)
}

// mode is the permission bits an entry gets: --chmod, or the source's.
func (c *copier) mode(st *syscall.Stat_t, def uint32) uint32 {
	if m := c.s.Mode; m != nil {
		bits := uint32(*m) & 0o7777
		if *m&os.ModeSetuid != 0 {
			bits |= unix.S_ISUID
		}
		if *m&os.ModeSetgid != 0 {
			bits |= unix.S_ISGID
		}
		if *m&os.ModeSticky != 0 {
			bits |= unix.S_ISVTX
		}
		return bits
	}
	if st == nil {
		return def
	}
	return st.Mode & 0o7777
}

func times(st *syscall.Stat_t) []unix.Timespec {
	return []unix.Timespec{
		{Sec: st.Atim.Sec, Nsec: st.Atim.Nsec},
		{Sec: st.Mtim.Sec, Nsec: st.Mtim.Nsec},
	}
}

func procPath(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}

// openDirAt opens the directory name in dir as an O_PATH handle, never
// following a symlink in name.
func openDirAt(dir *os.File, name string) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// mkdirAll returns a handle on the directory rel of the target, creating
// what is missing (0755, owned by the --chown user or root; existing
// directories are left as they are), and whether it created rel itself.
// Symlinks on the way are resolved inside DestRoot first (by name, with
// securejoin), then the resolved path is walked by descriptors without
// following any symlink, so a symlink swapped in meanwhile fails the walk
// instead of leading out.
func (c *copier) mkdirAll(rel string) (*os.File, bool, error) {
	full, err := securejoin.SecureJoin(c.destRoot, rel)
	if err != nil {
		return nil, false, fmt.Errorf("%s failed: destination /%s: %w", c.s.verb(), rel, err)
	}
	lex, err := filepath.Rel(c.destRoot, full)
	if err != nil {
		return nil, false, fmt.Errorf("%s failed: destination /%s: %w", c.s.verb(), rel, err)
	}
	cur, err := openDirAt(c.root, ".")
	if err != nil {
		return nil, false, fmt.Errorf("%s failed: destination root: %w", c.s.verb(), err)
	}
	if lex == "." {
		return cur, false, nil
	}
	uid, gid, explicit := c.parentOwner()
	created := false
	done := ""
	for _, comp := range strings.Split(filepath.ToSlash(lex), "/") {
		done = path.Join(done, comp)
		next, err := openDirAt(cur, comp)
		created = false
		if errors.Is(err, unix.ENOENT) {
			err = unix.Mkdirat(int(cur.Fd()), comp, 0o755)
			if err == nil {
				created = true
			}
			if err == nil || errors.Is(err, unix.EEXIST) {
				next, err = openDirAt(cur, comp)
			}
			if err == nil && created {
				err = c.chown("/"+done, explicit, func() error {
					return unix.Fchownat(int(next.Fd()), "", uid, gid, unix.AT_EMPTY_PATH)
				})
				if err == nil {
					// Mkdirat's mode went through the umask.
					err = unix.Chmod(procPath(next), 0o755)
				}
				if err != nil {
					next.Close()
				}
			}
		}
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			err = &copyError{
				msg:   fmt.Sprintf("%s failed: destination /%s: /%s is not a directory", c.s.verb(), rel, done),
				kinds: []error{errdefs.ErrInvalidArgument},
			}
		}
		cur.Close()
		if err != nil {
			var ce *copyError
			if errors.As(err, &ce) {
				return nil, false, err
			}
			return nil, false, fmt.Errorf("%s failed: destination /%s: %w", c.s.verb(), done, err)
		}
		cur = next
	}
	return cur, created, nil
}

// tempName is a name for an entry being written in a directory before it
// is renamed over its real name.
func tempName() string {
	return ".berth-copy-" + strconv.FormatUint(rand.Uint64(), 36)
}

// place renames the finished temporary entry tmp in dir over name: a file
// or symlink there is replaced in one step, a directory is refused.
func (c *copier) place(dir *os.File, tmp, name, dest string) error {
	err := unix.Renameat(int(dir.Fd()), tmp, int(dir.Fd()), name)
	if err == nil {
		return nil
	}
	unix.Unlinkat(int(dir.Fd()), tmp, 0)
	if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
		return &copyError{
			msg:   fmt.Sprintf("%s failed: cannot replace directory %s with a file", c.s.verb(), dest),
			kinds: []error{errdefs.ErrInvalidArgument},
		}
	}
	return fmt.Errorf("%s failed: %s: %w", c.s.verb(), dest, err)
}

// createTemp creates an empty file with a fresh name in dir.
func createTemp(dir *os.File) (*os.File, string, error) {
	for range 100 {
		tmp := tempName()
		fd, err := unix.Openat(int(dir.Fd()), tmp, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		return os.NewFile(uintptr(fd), tmp), tmp, nil
	}
	return nil, "", fmt.Errorf("no free temporary name: %w", unix.EEXIST)
}

// writeFile writes a regular file name in dir from r, with its owner, mode
// and (when st is set) times, under a temporary name renamed over name at
// the end, so that the name never holds a partial file.
func (c *copier) writeFile(dir *os.File, name, dest string, r io.Reader, st *syscall.Stat_t, defMode uint32) error {
	f, tmp, err := createTemp(dir)
	if err != nil {
		return fmt.Errorf("%s failed: %s: %w", c.s.verb(), dest, err)
	}
	err = func() error {
		defer f.Close()
		if _, err := io.Copy(f, r); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		uid, gid, explicit := c.owner(st)
		if err := c.chown(dest, explicit, func() error { return f.Chown(uid, gid) }); err != nil {
			return err
		}
		// After chown, which clears setuid and setgid.
		if err := unix.Fchmod(int(f.Fd()), c.mode(st, defMode)); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
		if st != nil {
			if err := unix.UtimesNanoAt(int(dir.Fd()), tmp, times(st), unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("set times: %w", err)
			}
		}
		return f.Close()
	}()
	if err != nil {
		unix.Unlinkat(int(dir.Fd()), tmp, 0)
		var ce *copyError
		if errors.As(err, &ce) {
			return err
		}
		return fmt.Errorf("%s failed: %s: %w", c.s.verb(), dest, err)
	}
	return c.place(dir, tmp, name, dest)
}

// copyFile copies the source file or symlink at p (st its Lstat) to name
// in dir.
func (c *copier) copyFile(dir *os.File, name, dest, p string, st *syscall.Stat_t) error {
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return c.copySymlink(dir, name, dest, p, st)
	}
	in, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("%s failed: %w", c.s.verb(), err)
	}
	defer in.Close()
	return c.writeFile(dir, name, dest, in, st, 0o644)
}

func (c *copier) copySymlink(dir *os.File, name, dest, p string, st *syscall.Stat_t) error {
	target, err := os.Readlink(p)
	if err != nil {
		return fmt.Errorf("%s failed: %w", c.s.verb(), err)
	}
	dfd := int(dir.Fd())
	var tmp string
	for range 100 {
		tmp = tempName()
		if err = unix.Symlinkat(target, dfd, tmp); !errors.Is(err, unix.EEXIST) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("%s failed: %s: symlink: %w", c.s.verb(), dest, err)
	}
	uid, gid, explicit := c.owner(st)
	err = c.chown(dest, explicit, func() error {
		return unix.Fchownat(dfd, tmp, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err == nil {
		if err = unix.UtimesNanoAt(dfd, tmp, times(st), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			err = fmt.Errorf("%s failed: %s: set times: %w", c.s.verb(), dest, err)
		}
	}
	if err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return err
	}
	return c.place(dir, tmp, name, dest)
}

func (c *copier) writeInline(dir *os.File, name, dest, data string) error {
	return c.writeFile(dir, name, dest, strings.NewReader(data), nil, 0o644)
}

// copyTree copies the contents of the directory source into dir (the
// target's destRel). own: the copy made dir for this source, so dir takes
// the source directory's mode, owner and times too.
func (c *copier) copyTree(src *source, dir *os.File, destRel string, own bool) error {
	// stack[i] is the target directory for the walk's directory at depth
	// i; made says which of them the copy created (only those get the
	// source's attributes: existing directories keep theirs).
	stack := []*os.File{dir}
	made := []bool{own}
	defer func() {
		for _, d := range stack[1:] {
			d.Close()
		}
	}()
	dest := func(rel string) string { return "/" + path.Join(destRel, rel) }
	w := &walker{ctx: c.ctx, s: c.s, src: src}
	w.enter = func(rel, p string, st *syscall.Stat_t) error {
		if rel == "" {
			if own {
				return c.setDirOwner(dir, dest(rel), st)
			}
			return nil
		}
		parent := stack[len(stack)-1]
		name := path.Base(rel)
		created := false
		err := unix.Mkdirat(int(parent.Fd()), name, 0o700)
		if err == nil {
			created = true
		} else if !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%s failed: %s: mkdir: %w", c.s.verb(), dest(rel), err)
		}
		d, err := openDirAt(parent, name)
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			// A file or a symlink is there; BuildKit refuses as well
			// rather than replace it or write through it.
			return &copyError{
				msg:   fmt.Sprintf("%s failed: cannot copy directory %s onto non-directory %s", c.s.verb(), path.Join(src.name, rel), dest(rel)),
				kinds: []error{errdefs.ErrInvalidArgument},
			}
		}
		if err != nil {
			return fmt.Errorf("%s failed: %s: %w", c.s.verb(), dest(rel), err)
		}
		stack = append(stack, d)
		made = append(made, created)
		if created {
			return c.setDirOwner(d, dest(rel), st)
		}
		return nil
	}
	w.leave = func(rel string, st *syscall.Stat_t) error {
		i := len(stack) - 1
		d, m := stack[i], made[i]
		var err error
		if m {
			// Mode and times last: the children are in (a read-only
			// mode would have stopped an unprivileged copy from adding
			// them) and no longer change the mtime.
			if err = unix.Chmod(procPath(d), c.mode(st, 0o755)); err == nil {
				err = unix.UtimesNanoAt(unix.AT_FDCWD, procPath(d), times(st), 0)
			}
			if err != nil {
				err = fmt.Errorf("%s failed: %s: %w", c.s.verb(), dest(rel), err)
			}
		}
		if i > 0 {
			d.Close()
			stack, made = stack[:i], made[:i]
		}
		return err
	}
	w.leaf = func(rel, p string, st *syscall.Stat_t) error {
		return c.copyFile(stack[len(stack)-1], path.Base(rel), dest(rel), p, st)
	}
	return w.run()
}

func (c *copier) setDirOwner(d *os.File, dest string, st *syscall.Stat_t) error {
	uid, gid, explicit := c.owner(st)
	return c.chown(dest, explicit, func() error {
		return unix.Fchownat(int(d.Fd()), "", uid, gid, unix.AT_EMPTY_PATH)
	})
}

// isArchive tells whether the file at p is a tar, plain or compressed, by
// its content, as Docker's ADD does: the (decompressed) stream must start
// with a valid tar header. An xz-compressed file cannot be told apart (the
// archive package does not read xz), so it is an error rather than being
// silently copied as it is.
func isArchive(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	rc, comp, err := archive.DecompressStream(f)
	if err != nil {
		if comp == archive.Xz {
			return false, fmt.Errorf("cannot extract xz-compressed files: decompress it first: %w", errdefs.ErrNotImplemented)
		}
		return false, nil // not the compressed stream its magic says: a plain file
	}
	defer rc.Close()
	_, err = tar.NewReader(rc).Next()
	return err == nil, nil
}

// unpack extracts the archive src into dir with the archive package, which
// keeps every entry inside dir however the tar is made ("../", absolute
// names, symlinks or hard links out) and keeps the tar's owners (when root).
// --chown and --chmod do not apply to what an archive holds.
func (c *copier) unpack(src *source, dir *os.File) error {
	f, err := os.Open(src.path)
	if err != nil {
		return fmt.Errorf("%s failed: %w", c.s.verb(), err)
	}
	defer f.Close()
	rc, _, err := archive.DecompressStream(f)
	if err != nil {
		return fmt.Errorf("%s failed: %s: %w", c.s.verb(), src.name, err)
	}
	defer rc.Close()
	var r io.Reader = rc
	if c.s.UID != nil || c.s.GID != nil {
		r = chownTar(rc, c.s.UID, c.s.GID)
	}
	// Apply opens the path itself; through /proc/self/fd it is the
	// directory already resolved, not a name that could be swapped.
	_, err = archive.Apply(c.ctx, procPath(dir), r, archive.Options{
		Whiteouts:   archive.WhiteoutDelete,
		IgnoreOwner: c.euid != 0,
	})
	if err != nil {
		return fmt.Errorf("%s failed: extract %s: %w", c.s.verb(), src.name, err)
	}
	return nil
}

// SourceDigest digests what s selects, for the build cache: for each
// selected source its name, and for every file below it (directories
// walked in sorted order) its relative path, type, mode bits, owner (only
// when the sources are not the context, whose owners Copy does not keep),
// size, symlink target and content sha256, but not its times; heredoc
// files by name and content. Wildcards and Ignore are applied as Copy
// applies them (the same code selects and walks), so two sources Copy
// would copy alike digest alike, and a change Copy would reflect changes
// the digest.
func SourceDigest(ctx context.Context, s CopySpec) (digest.Digest, error) {
	srcs, err := s.sources()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	line := func(rel, typ string, st *syscall.Stat_t) {
		fmt.Fprintf(h, "%q %s %o", rel, typ, st.Mode&0o7777)
		if !s.FromContext {
			fmt.Fprintf(h, " %d:%d", st.Uid, st.Gid)
		}
	}
	for i := range srcs {
		src := &srcs[i]
		fmt.Fprintf(h, "source %q\n", src.name)
		w := &walker{ctx: ctx, s: &s, src: src}
		w.enter = func(rel, _ string, st *syscall.Stat_t) error {
			line(rel, "dir", st)
			_, err := io.WriteString(h, "\n")
			return err
		}
		w.leave = func(string, *syscall.Stat_t) error { return nil }
		w.leaf = func(rel, p string, st *syscall.Stat_t) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if st.Mode&unix.S_IFMT == unix.S_IFLNK {
				target, err := os.Readlink(p)
				if err != nil {
					return fmt.Errorf("%s: digest: %w", s.verb(), err)
				}
				line(rel, "symlink", st)
				fmt.Fprintf(h, " %q\n", target)
				return nil
			}
			sum, err := fileSHA256(p)
			if err != nil {
				return fmt.Errorf("%s: digest: %w", s.verb(), err)
			}
			line(rel, "file", st)
			fmt.Fprintf(h, " %d %s\n", st.Size, sum)
			return nil
		}
		if err := w.run(); err != nil {
			return "", err
		}
	}
	for _, f := range s.Inline {
		sum := sha256.Sum256([]byte(f.Data))
		fmt.Fprintf(h, "inline %q %d %s\n", f.Name, len(f.Data), hex.EncodeToString(sum[:]))
	}
	return digest.NewDigest(digest.SHA256, h), nil
}

func fileSHA256(p string) (string, error) {
	// O_NONBLOCK: a fifo swapped in for the file must not block the open.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file: %w", p, errdefs.ErrInvalidArgument)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// chownTar rewrites the owner of every entry of a tar stream (ADD --chown
// of an archive).
func chownTar(r io.Reader, uid, gid *int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		tr := tar.NewReader(r)
		tw := tar.NewWriter(pw)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				pw.CloseWithError(tw.Close())
				return
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if uid != nil {
				h.Uid, h.Uname = *uid, ""
			}
			if gid != nil {
				h.Gid, h.Gname = *gid, ""
			}
			if err := tw.WriteHeader(h); err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := io.Copy(tw, tr); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr
}
