package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/berthproject/berth/errdefs"
	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// WhiteoutMode says how a layer's deletions are represented in the target.
type WhiteoutMode int

const (
	// WhiteoutDelete applies onto a full copy of the layers below: a
	// whiteout removes what it names, an opaque directory loses what the
	// layers below put in it.
	WhiteoutDelete WhiteoutMode = iota
	// WhiteoutOverlay applies into an empty overlayfs upper directory.
	WhiteoutOverlay
)

// Options control Apply.
type Options struct {
	Whiteouts WhiteoutMode
	// Lower is the merged view of the layers below (WhiteoutOverlay only;
	// nil when there are none).
	Lower Lower
	// IgnoreOwner leaves files owned by the applying user (an unprivileged
	// apply cannot chown) instead of failing.
	IgnoreOwner bool
	// MaxBytes bounds the file content one layer may write; 0 means no
	// bound beyond the caller's decompression bound.
	MaxBytes int64
}

// Result describes an applied layer.
type Result struct {
	// Entries is the number of tar entries applied.
	Entries int
	// Bytes is the file content written.
	Bytes int64
	// Skipped names entries an unprivileged apply could not create
	// (device nodes), so the caller can warn.
	Skipped []string
	// RootSet: the layer gave the root directory's own attributes (a "./"
	// entry). In overlay mode a layer that does not inherits them from
	// the layer below; the unpacker copies them.
	RootSet bool
}

// ErrInvalidArchive marks a layer refused for what it contains (a whiteout
// of "..", an entry type that is not a file system object, a hard link to a
// directory). It wraps errdefs.ErrInvalidArgument.
var ErrInvalidArchive = fmt.Errorf("invalid layer archive: %w", errdefs.ErrInvalidArgument)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	opaqueMarker   = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
)

// Apply applies the layer tar read from r onto the directory dir and
// returns what it did. It reads r up to the tar's end-of-archive marker;
// callers that hash the stream drain the rest themselves.
func Apply(ctx context.Context, dir string, r io.Reader, opts Options) (Result, error) {
	root, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Result{}, fmt.Errorf("apply layer: %w", err)
	}
	a := &applier{
		ctx:       ctx,
		root:      root,
		dir:       dir,
		opts:      opts,
		created:   map[string]struct{}{},
		dirMeta:   map[string]*tar.Header{},
		keepTimes: map[string][2]unix.Timespec{},
		umask:     processUmask(),
		euid:      os.Geteuid(),
		egid:      os.Getegid(),
	}
	defer a.close()
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return a.res, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return a.res, fmt.Errorf("apply layer: read tar: %w: %w", errdefs.ErrInvalidArgument, err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return a.res, fmt.Errorf("apply layer: %q: %w", hdr.Name, err)
		}
		a.res.Entries++
	}
	if err := a.finishDirs(); err != nil {
		return a.res, fmt.Errorf("apply layer: %w", err)
	}
	return a.res, nil
}

type applier struct {
	ctx  context.Context
	root *os.File
	dir  string
	opts Options
	res  Result

	// created holds the paths this layer made, for opaque directories in
	// WhiteoutDelete mode (they keep what the layer itself added).
	created map[string]struct{}
	// dirMeta holds directories whose mode and times are set at the end:
	// adding children changes a directory's mtime, and a read-only mode set
	// early would stop an unprivileged apply from adding them.
	dirMeta  map[string]*tar.Header
	dirOrder []string
	// keepTimes holds the times of directories this layer changes
	// without listing them (a whiteout or a new child in a directory of
	// the layers below): only what the layer lists may change, so their
	// times are put back at the end, as umoci does.
	keepTimes map[string][2]unix.Timespec

	// The parent directory of the previous entry: layers list a
	// directory's entries together, so most lookups hit. Any removal makes
	// it stale (it may have been under what was removed, or reached through
	// a symlink that was); a stale handle is closed only at the next
	// lookup, since the entry being applied may still be using it.
	cacheRel   string
	cacheDir   *os.File
	cacheStale bool

	umask int
	euid  int
	egid  int
}

func (a *applier) close() {
	a.dropCache()
	a.root.Close()
}

func (a *applier) dropCache() {
	if a.cacheDir != nil {
		a.cacheDir.Close()
		a.cacheDir = nil
	}
	a.cacheRel = ""
	a.cacheStale = false
}

// openDir returns an O_PATH handle on the directory rel inside the root
// ("." is the root itself), symlinks resolved inside the root.
func (a *applier) openDir(rel string) (*os.File, error) {
	if rel == "." || rel == "" {
		return pathrs.Reopen(a.root, unix.O_PATH|unix.O_DIRECTORY)
	}
	return pathrs.OpenatInRoot(a.root, rel)
}

// cleanName maps an entry name to a path relative to the root: every ".."
// and leading "/" is resolved lexically against the root first, so names
// can only ever address something inside it.
func cleanName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func (a *applier) entry(hdr *tar.Header, tr io.Reader) error {
	rel := cleanName(hdr.Name)
	base := path.Base(rel)
	parentRel := path.Dir(rel)
	if rel == "" {
		base, parentRel = ".", "."
	}

	switch {
	case base == opaqueMarker:
		return a.opaque(parentRel)
	case strings.HasPrefix(base, whiteoutMeta):
		return nil // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): nothing in the tree
	case strings.HasPrefix(base, whiteoutPrefix):
		name := base[len(whiteoutPrefix):]
		if name == "" || name == "." || name == ".." {
			return fmt.Errorf("whiteout of %q: %w", name, ErrInvalidArchive)
		}
		return a.whiteout(parentRel, name)
	}

	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeReg, tar.TypeRegA, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo, tar.TypeGNUSparse:
	default:
		return fmt.Errorf("entry type %q is not a file system object: %w", hdr.Typeflag, ErrInvalidArchive)
	}

	if rel == "" {
		// The root itself: only a directory can describe it, and it is
		// never replaced, only given the layer's attributes.
		if hdr.Typeflag != tar.TypeDir {
			return nil
		}
		if err := a.setOwnerXattrs(a.root, hdr, true); err != nil {
			return err
		}
		a.deferDir(".", hdr)
		a.res.RootSet = true
		return nil
	}

	parent, err := a.parent(parentRel)
	if err != nil {
		return err
	}
	pfd := int(parent.Fd())

	switch hdr.Typeflag {
	case tar.TypeDir:
		err = a.mkdir(pfd, base, rel, hdr)
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		err = a.file(pfd, base, rel, hdr, tr)
	case tar.TypeSymlink:
		err = a.symlink(pfd, base, rel, hdr)
	case tar.TypeLink:
		err = a.hardlink(pfd, base, rel, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		err = a.node(pfd, base, rel, hdr)
	}
	if err != nil {
		return err
	}
	a.markCreated(rel)
	return nil
}

// markCreated records a path this layer made; only WhiteoutDelete needs to
// know (for opaque directories).
func (a *applier) markCreated(rel string) {
	if a.opts.Whiteouts == WhiteoutDelete {
		a.created[rel] = struct{}{}
	}
}

// parent returns a handle on the directory rel (relative to the root,
// symlinks resolved inside it), creating what is missing.
func (a *applier) parent(rel string) (*os.File, error) {
	if a.cacheDir != nil && a.cacheRel == rel && !a.cacheStale {
		return a.cacheDir, nil
	}
	a.dropCache()
	var f *os.File
	var err error
	if rel == "." {
		f, err = a.openDir(rel)
	} else {
		f, err = pathrs.OpenatInRoot(a.root, rel)
		if errors.Is(err, fs.ErrNotExist) {
			// Missing, or reached through a dangling symlink: resolve
			// the symlinks lexically inside the root and create what
			// they lead to there, as a container would see it.
			var lex string
			if lex, err = a.lexical(rel); err == nil {
				f, err = a.mkdirAll(lex)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("parent directory %q: %w", rel, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		f.Close()
		return nil, fmt.Errorf("parent %q is not a directory: %w", rel, ErrInvalidArchive)
	}
	a.keepTimesOf(rel, &st)
	a.cacheRel, a.cacheDir = rel, f
	return f, nil
}

// keepTimesOf remembers the times of an existing directory the layer is
// about to change, unless the layer itself made or lists it.
func (a *applier) keepTimesOf(rel string, st *unix.Stat_t) {
	if _, ok := a.keepTimes[rel]; ok {
		return
	}
	if _, ok := a.dirMeta[rel]; ok {
		return
	}
	if _, ok := a.created[rel]; ok {
		return
	}
	a.keepTimes[rel] = [2]unix.Timespec{st.Atim, st.Mtim}
}

// lexical resolves rel's symlinks inside the root by name, treating
// missing components as directories to be (securejoin's rule). The result
// is only ever used as a name for pathrs, which stays inside the root
// whatever the tree does in the meantime.
func (a *applier) lexical(rel string) (string, error) {
	full, err := securejoin.SecureJoin(a.dir, rel)
	if err != nil {
		return "", err
	}
	out, err := filepath.Rel(a.dir, full)
	if err != nil {
		return "", err
	}
	if out == "." || strings.HasPrefix(out, "../") || out == ".." {
		return "", fmt.Errorf("%q resolves to the root itself: %w", rel, ErrInvalidArchive)
	}
	return out, nil
}

// mkdirAll creates the missing directories of rel. In overlay mode each one
// the layers below already have is created with their attributes: in the
// merged view the upper directory's attributes win, so a plain 0755 root
// directory would silently change the image.
func (a *applier) mkdirAll(rel string) (*os.File, error) {
	comps := strings.Split(rel, "/")
	var missing []string
	for i := len(comps); i > 0; i-- {
		prefix := strings.Join(comps[:i], "/")
		f, err := pathrs.OpenatInRoot(a.root, prefix)
		if err == nil {
			f.Close()
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, prefix)
	}
	f, err := pathrs.MkdirAllHandle(a.root, rel, 0o755)
	if err != nil {
		return nil, err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		p := missing[i]
		a.markCreated(p)
		if a.opts.Whiteouts != WhiteoutOverlay || a.opts.Lower == nil {
			continue
		}
		low, err := a.opts.Lower.Lookup(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lower layers: %q: %w", p, err)
		}
		err = a.copyDirAttrs(p, low)
		low.Close()
		if err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// copyDirAttrs gives the new upper directory p the attributes of the same
// directory below.
func (a *applier) copyDirAttrs(p string, low *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(low.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	hdr := &tar.Header{
		Typeflag:   tar.TypeDir,
		Mode:       int64(st.Mode & 0o7777),
		Uid:        int(st.Uid),
		Gid:        int(st.Gid),
		ModTime:    time.Unix(st.Mtim.Unix()),
		AccessTime: time.Unix(st.Atim.Unix()),
		PAXRecords: readXattrs(procPath(low)),
	}
	d, err := pathrs.OpenatInRoot(a.root, p)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := a.setOwnerXattrs(d, hdr, true); err != nil {
		return err
	}
	a.deferDir(p, hdr)
	return nil
}

func (a *applier) deferDir(rel string, hdr *tar.Header) {
	if _, ok := a.dirMeta[rel]; !ok {
		a.dirOrder = append(a.dirOrder, rel)
	}
	a.dirMeta[rel] = hdr
}

// forget drops deferred metadata for rel and everything below it, after
// rel was removed or replaced.
func (a *applier) forget(rel string) {
	a.cacheStale = true
	prefix := rel + "/"
	for k := range a.dirMeta {
		if k == rel || strings.HasPrefix(k, prefix) {
			delete(a.dirMeta, k)
		}
	}
}

// finishDirs sets the deferred modes and times, deepest first, so a
// parent's mtime is set after its children stopped changing it.
func (a *applier) finishDirs() error {
	for i := len(a.dirOrder) - 1; i >= 0; i-- {
		rel := a.dirOrder[i]
		hdr, ok := a.dirMeta[rel]
		if !ok {
			continue
		}
		d, err := a.openDir(rel)
		if err != nil {
			return fmt.Errorf("directory %q: %w", rel, err)
		}
		err = a.setModeTimes(d, hdr)
		d.Close()
		if err != nil {
			return fmt.Errorf("directory %q: %w", rel, err)
		}
	}
	for rel, ts := range a.keepTimes {
		if _, ok := a.dirMeta[rel]; ok {
			continue
		}
		d, err := a.openDir(rel)
		if err != nil {
			continue // removed by a later entry
		}
		err = unix.UtimesNanoAt(unix.AT_FDCWD, procPath(d), ts[:], 0)
		d.Close()
		if err != nil {
			return fmt.Errorf("directory %q: restore times: %w", rel, err)
		}
	}
	return nil
}

// clear removes whatever is at (pfd, base) so an entry can take its place.
func (a *applier) clear(pfd int, base, rel string) error {
	a.forget(rel)
	return removeAllAt(pfd, base)
}

func (a *applier) mkdir(pfd int, base, rel string, hdr *tar.Header) error {
	for attempt := 0; ; attempt++ {
		err := unix.Mkdirat(pfd, base, 0o700)
		if err == nil {
			break
		}
		if err != unix.EEXIST || attempt > 0 {
			return fmt.Errorf("mkdir: %w", err)
		}
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			break // an existing directory is merged into, not replaced
		}
		if err := a.clear(pfd, base, rel); err != nil {
			return err
		}
	}
	d, err := openNoFollow(pfd, base, unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := a.setOwnerXattrs(d, hdr, true); err != nil {
		return err
	}
	a.deferDir(rel, hdr)
	return nil
}

// earlyWriteback is the size from which a file's writeback starts as soon
// as it is written.
const earlyWriteback = 256 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

func (a *applier) file(pfd int, base, rel string, hdr *tar.Header, r io.Reader) error {
	if a.opts.MaxBytes > 0 && a.res.Bytes+hdr.Size > a.opts.MaxBytes {
		return &LimitError{Limit: a.opts.MaxBytes}
	}
	perm := uint32(hdr.Mode & 0o777)
	fd, err := a.create(pfd, base, rel, func() (int, error) {
		return unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	})
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	bp := copyBufs.Get().(*[]byte)
	// Hide ReadFrom so that the large buffer is used: the tar reader is no
	// file that copy_file_range could help with.
	n, err := io.CopyBuffer(struct{ io.Writer }{f}, r, *bp)
	copyBufs.Put(bp)
	a.res.Bytes += n
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if n >= earlyWriteback {
		// Start writing it out now: the commit's syncfs then finds less
		// to wait for, and the disk works while the CPU unpacks the rest.
		unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	if err := a.setOwnerXattrs(f, hdr, false); err != nil {
		return err
	}
	if perm&^uint32(a.umask) != perm || hdr.Mode&0o7000 != 0 || !a.ownedByUs(hdr) {
		if err := unix.Fchmod(fd, uint32(tarMode(hdr))); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	return futimens(fd, hdr)
}

// create runs mk, and when the name is taken, clears it and runs mk once
// more: an entry replaces what was there, never writes through it.
func (a *applier) create(pfd int, base, rel string, mk func() (int, error)) (int, error) {
	fd, err := mk()
	if err == unix.EEXIST {
		if err := a.clear(pfd, base, rel); err != nil {
			return -1, err
		}
		fd, err = mk()
	}
	if err != nil {
		return -1, err
	}
	return fd, nil
}

func (a *applier) symlink(pfd int, base, rel string, hdr *tar.Header) error {
	_, err := a.create(pfd, base, rel, func() (int, error) {
		return -1, unix.Symlinkat(hdr.Linkname, pfd, base)
	})
	if err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	if !a.opts.IgnoreOwner && !a.ownedByUs(hdr) {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("lchown: %w", err)
		}
	}
	if err := setXattrsAt(pfd, base, hdr); err != nil {
		return err
	}
	return unix.UtimesNanoAt(pfd, base, timespecs(hdr), unix.AT_SYMLINK_NOFOLLOW)
}

func (a *applier) hardlink(pfd int, base, rel string, hdr *tar.Header) error {
	target := cleanName(hdr.Linkname)
	if target == "" {
		return fmt.Errorf("hard link to the root directory: %w", ErrInvalidArchive)
	}
	if target == rel {
		return nil // a link to itself is already there, or names nothing
	}
	src, err := a.linkTarget(target)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	defer src.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("hard link to directory %q: %w", hdr.Linkname, ErrInvalidArchive)
	}
	// linkat through /proc/self/fd links the very inode we resolved, also
	// when it is a symlink (which is linked, not followed), and needs no
	// CAP_DAC_READ_SEARCH as AT_EMPTY_PATH would.
	_, err = a.create(pfd, base, rel, func() (int, error) {
		return -1, unix.Linkat(unix.AT_FDCWD, procPath(src), pfd, base, unix.AT_SYMLINK_FOLLOW)
	})
	if err != nil {
		return fmt.Errorf("hard link: %w", err)
	}
	return nil
}

// linkTarget opens (O_PATH, final component not followed) the file a hard
// link names: in the target directory, or in overlay mode in the layers
// below, copied up so that the link shares an inode with it.
func (a *applier) linkTarget(target string) (*os.File, error) {
	tbase, tparent := path.Base(target), path.Dir(target)
	open := func() (*os.File, error) {
		dir, err := a.openDir(tparent)
		if errors.Is(err, fs.ErrNotExist) && tparent != "." {
			if lex, lerr := a.lexical(tparent); lerr == nil {
				dir, err = pathrs.OpenatInRoot(a.root, lex)
			}
		}
		if err != nil {
			return nil, err
		}
		defer dir.Close()
		return openNoFollow(int(dir.Fd()), tbase, 0)
	}
	f, err := open()
	if err == nil || !errors.Is(err, fs.ErrNotExist) || a.opts.Whiteouts != WhiteoutOverlay || a.opts.Lower == nil {
		return f, err
	}
	low, lerr := a.opts.Lower.Lookup(target)
	if lerr != nil {
		return nil, err
	}
	defer low.Close()
	parent, err := a.parent(tparent)
	if err != nil {
		return nil, err
	}
	if err := copyUp(low, int(parent.Fd()), tbase, a.opts.IgnoreOwner); err != nil {
		return nil, fmt.Errorf("copy up from the layers below: %w", err)
	}
	a.markCreated(target)
	return open()
}

func (a *applier) node(pfd int, base, rel string, hdr *tar.Header) error {
	mode := uint32(hdr.Mode & 0o7777)
	dev := 0
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
		dev = int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
		dev = int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	default:
		mode |= unix.S_IFIFO
	}
	_, err := a.create(pfd, base, rel, func() (int, error) {
		return -1, unix.Mknodat(pfd, base, mode, dev)
	})
	if err == unix.EPERM && hdr.Typeflag != tar.TypeFifo && a.euid != 0 {
		a.res.Skipped = append(a.res.Skipped, rel)
		return nil
	}
	if err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	f, err := openNoFollow(pfd, base, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := a.setOwnerXattrs(f, hdr, false); err != nil {
		return err
	}
	return a.setModeTimes(f, hdr)
}

func (a *applier) whiteout(parentRel, name string) error {
	rel := path.Join(parentRel, name)
	if a.opts.Whiteouts == WhiteoutOverlay {
		parent, err := a.parent(parentRel)
		if err != nil {
			return err
		}
		pfd := int(parent.Fd())
		_, err = a.create(pfd, name, rel, func() (int, error) {
			return -1, unix.Mknodat(pfd, name, unix.S_IFCHR, 0)
		})
		if err != nil {
			return fmt.Errorf("whiteout: %w", err)
		}
		return nil
	}
	parent, err := a.openDir(parentRel)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil // nothing below to hide
	}
	if err != nil {
		return fmt.Errorf("whiteout: %w", err)
	}
	defer parent.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(parent.Fd()), &st); err == nil {
		a.keepTimesOf(parentRel, &st)
	}
	a.forget(rel)
	if err := removeAllAt(int(parent.Fd()), name); err != nil {
		return fmt.Errorf("whiteout: %w", err)
	}
	return nil
}

func (a *applier) opaque(dirRel string) error {
	var dir *os.File
	var err error
	if dirRel == "." {
		if a.opts.Whiteouts == WhiteoutOverlay {
			return fmt.Errorf("opaque marker for the root directory: %w", ErrInvalidArchive)
		}
		dir, err = a.openDir(".")
	} else {
		var parent *os.File
		parent, err = a.parent(dirRel)
		if err == nil {
			dir, err = pathrs.Reopen(parent, unix.O_PATH|unix.O_DIRECTORY)
		}
	}
	if err != nil {
		return fmt.Errorf("opaque directory: %w", err)
	}
	defer dir.Close()
	if a.opts.Whiteouts == WhiteoutOverlay {
		if err := unix.Setxattr(procPath(dir), opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("opaque directory: set %s: %w", opaqueXattr, err)
		}
		return nil
	}
	// Remove what the layers below put here; keep what this layer added.
	d, err := pathrs.Reopen(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("opaque directory: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("opaque directory: %w", err)
	}
	for _, n := range names {
		child := path.Join(dirRel, n)
		if dirRel == "." {
			child = n
		}
		if _, ok := a.created[child]; ok {
			continue
		}
		a.forget(child)
		if err := removeAllAt(int(d.Fd()), n); err != nil {
			return fmt.Errorf("opaque directory: %w", err)
		}
	}
	return nil
}

func (a *applier) ownedByUs(hdr *tar.Header) bool {
	return a.opts.IgnoreOwner || (hdr.Uid == a.euid && hdr.Gid == a.egid)
}

// setOwnerXattrs sets ownership and then xattrs (chown clears
// security.capability, so it goes first) through f, an open handle.
func (a *applier) setOwnerXattrs(f *os.File, hdr *tar.Header, isPath bool) error {
	if !a.ownedByUs(hdr) {
		var err error
		if isPath {
			err = unix.Fchownat(int(f.Fd()), "", hdr.Uid, hdr.Gid, unix.AT_EMPTY_PATH)
		} else {
			err = unix.Fchown(int(f.Fd()), hdr.Uid, hdr.Gid)
		}
		if err == unix.EBADF {
			err = unix.Fchownat(int(f.Fd()), "", hdr.Uid, hdr.Gid, unix.AT_EMPTY_PATH)
		}
		if err != nil {
			return fmt.Errorf("chown %d:%d: %w", hdr.Uid, hdr.Gid, err)
		}
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || refusedXattr(name) {
			continue
		}
		// setxattr, not lsetxattr: the /proc magic link must be followed
		// to the file; f is never a symlink here.
		if err := unix.Setxattr(procPath(f), name, []byte(v), 0); err != nil {
			if ignorableXattrErr(name, err) {
				continue
			}
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	return nil
}

// setModeTimes sets the mode bits (after ownership, which clears setuid)
// and the times, through an O_PATH handle.
func (a *applier) setModeTimes(f *os.File, hdr *tar.Header) error {
	p := procPath(f)
	if err := unix.Chmod(p, uint32(tarMode(hdr))); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, timespecs(hdr), 0); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// setXattrsAt sets a symlink's xattrs by way of its parent's descriptor:
// a symlink cannot be opened for fsetxattr.
func setXattrsAt(pfd int, base string, hdr *tar.Header) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || refusedXattr(name) {
			continue
		}
		p := fmt.Sprintf("/proc/self/fd/%d/%s", pfd, base)
		if err := unix.Lsetxattr(p, name, []byte(v), 0); err != nil {
			if ignorableXattrErr(name, err) || err == unix.EPERM {
				continue // user.* xattrs are not allowed on symlinks
			}
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	return nil
}

// refusedXattr: overlayfs keeps its own state in these (whiteouts, opaque
// directories, redirects, metacopy); taken from a layer they would let it
// rewire the merged tree.
func refusedXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.")
}

// ignorableXattrErr: some file systems or unprivileged appliers cannot
// store trusted.* or security.selinux; the layer stays usable without them.
func ignorableXattrErr(name string, err error) bool {
	if err == unix.ENOTSUP {
		return true
	}
	if err == unix.EPERM && (strings.HasPrefix(name, "trusted.") || strings.HasPrefix(name, "security.")) && os.Geteuid() != 0 {
		return true
	}
	return false
}

func tarMode(hdr *tar.Header) int64 {
	m := hdr.Mode & 0o777
	if hdr.Mode&0o4000 != 0 {
		m |= unix.S_ISUID
	}
	if hdr.Mode&0o2000 != 0 {
		m |= unix.S_ISGID
	}
	if hdr.Mode&0o1000 != 0 {
		m |= unix.S_ISVTX
	}
	return m
}

func timespecs(hdr *tar.Header) []unix.Timespec {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
}

// futimens sets an open file's times (utimensat with a NULL path, which
// x/sys does not offer).
func futimens(fd int, hdr *tar.Header) error {
	ts := timespecs(hdr)
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("set times: %w", errno)
	}
	return nil
}

func procPath(f *os.File) string {
	return fmt.Sprintf("/proc/self/fd/%d", f.Fd())
}

// openNoFollow opens name in the directory pfd as an O_PATH handle,
// without following a symlink in it.
func openNoFollow(pfd int, name string, flags int) (*os.File, error) {
	fd, err := unix.Openat(pfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// removeAllAt removes name in the directory pfd and, if it is a directory,
// everything in it, never following a symlink.
func removeAllAt(pfd int, name string) error {
	err := unix.Unlinkat(pfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	d := os.NewFile(uintptr(fd), name)
	for {
		names, err := d.Readdirnames(1024)
		for _, n := range names {
			if err := removeAllAt(fd, n); err != nil {
				d.Close()
				return err
			}
		}
		if err == io.EOF || len(names) == 0 {
			break
		}
		if err != nil {
			d.Close()
			return fmt.Errorf("remove %q: %w", name, err)
		}
	}
	d.Close()
	if err := unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	return nil
}

var (
	umaskOnce sync.Once
	umaskVal  int
)

// processUmask reads the umask without changing it (umask(2) can only be
// read by setting it, which would race with other goroutines creating
// files).
func processUmask() int {
	umaskOnce.Do(func() {
		umaskVal = 0o022
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				var m int
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%o", &m); err == nil {
					umaskVal = m
				}
			}
		}
	})
	return umaskVal
}
