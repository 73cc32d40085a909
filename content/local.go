package content

import (
	"context"
	"crypto/sha256"
	_ "crypto/sha512" // sha512 digests are valid OCI digests
	"encoding/hex"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/internal/atomicfile"
	"github.com/berthproject/berth/internal/flock"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Local is the Store on a local directory.
type Local struct {
	root string
}

var _ Store = (*Local)(nil)

// NewLocal opens (creating if needed) a store rooted at dir.
func NewLocal(dir string) (*Local, error) {
	for _, d := range []string{"blobs", "ingest"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("content store %s: %w", dir, err)
		}
	}
	return &Local{root: dir}, nil
}

// BlobPath is where a committed blob lives. Callers outside the package use
// it only for fast, read-only copies (sendfile into an archive).
func (s *Local) BlobPath(dgst digest.Digest) (string, error) {
	if err := dgst.Validate(); err != nil {
		return "", fmt.Errorf("blob %q: %w: %w", dgst, errdefs.ErrInvalidArgument, err)
	}
	return filepath.Join(s.root, "blobs", dgst.Algorithm().String(), dgst.Encoded()), nil
}

func (s *Local) Info(ctx context.Context, dgst digest.Digest) (Info, error) {
	p, err := s.BlobPath(dgst)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("blob %s: %w", dgst, errdefs.ErrNotFound)
	}
	if err != nil {
		return Info{}, fmt.Errorf("blob %s: %w", dgst, err)
	}
	return Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime()}, nil
}

type fileReaderAt struct {
	*os.File
	size int64
}

func (f fileReaderAt) Size() int64 { return f.size }

func (s *Local) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (ReaderAt, error) {
	p, err := s.BlobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return fileReaderAt{File: f, size: fi.Size()}, nil
}

func (s *Local) Walk(ctx context.Context, fn WalkFunc) error {
	algs, err := os.ReadDir(filepath.Join(s.root, "blobs"))
	if err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	for _, alg := range algs {
		a := digest.Algorithm(alg.Name())
		if !a.Available() {
			continue
		}
		dir := filepath.Join(s.root, "blobs", alg.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("walk blobs: %w", err)
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			d := digest.NewDigestFromEncoded(a, e.Name())
			if d.Validate() != nil {
				continue // not a blob; system check reports stray files separately
			}
			fi, err := e.Info()
			if err != nil {
				continue // deleted while walking
			}
			if err := fn(Info{Digest: d, Size: fi.Size(), CreatedAt: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Local) Delete(ctx context.Context, dgst digest.Digest) error {
	p, err := s.BlobPath(dgst)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("blob %s: %w", dgst, errdefs.ErrNotFound)
		}
		return fmt.Errorf("delete blob %s: %w", dgst, err)
	}
	return nil
}

func ingestID(ref string) string {
	h := sha256.Sum256([]byte(ref))
	return hex.EncodeToString(h[:])
}

func (s *Local) ingestDir(ref string) string {
	return filepath.Join(s.root, "ingest", ingestID(ref))
}

func (s *Local) Writer(ctx context.Context, ref string, expected ocispec.Descriptor) (Writer, error) {
	if ref == "" {
		return nil, fmt.Errorf("content writer: empty ref: %w", errdefs.ErrInvalidArgument)
	}
	alg := digest.Canonical
	if expected.Digest != "" {
		if err := expected.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("blob %q: %w: %w", expected.Digest, errdefs.ErrInvalidArgument, err)
		}
		alg = expected.Digest.Algorithm()
		if _, err := s.Info(ctx, expected.Digest); err == nil {
			return nil, fmt.Errorf("blob %s: %w", expected.Digest, errdefs.ErrAlreadyExists)
		}
	}
	dir := s.ingestDir(ref)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ingest %s: %w", ref, err)
	}
	lock, err := waitLock(ctx, filepath.Join(dir, "lock"))
	if err != nil {
		return nil, fmt.Errorf("ingest %s: %w", ref, err)
	}
	// Another process may have finished the same blob while we waited.
	if expected.Digest != "" {
		if _, err := s.Info(ctx, expected.Digest); err == nil {
			lock.Unlock()
			return nil, fmt.Errorf("blob %s: %w", expected.Digest, errdefs.ErrAlreadyExists)
		}
	}
	// The directory may have been removed (by a commit or a garbage
	// collection) between MkdirAll and the lock; recreate what we need.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		lock.Unlock()
		return nil, fmt.Errorf("ingest %s: %w", ref, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "ref"), []byte(ref), 0o600); err != nil {
		lock.Unlock()
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		lock.Unlock()
		return nil, fmt.Errorf("ingest %s: %w", ref, err)
	}
	w := &localWriter{s: s, ref: ref, dir: dir, f: f, lock: lock, alg: alg, h: alg.Hash()}
	// Resume: rehash what an earlier writer left, so the digest covers it.
	n, err := io.Copy(w.h, f)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("ingest %s: resume: %w", ref, err)
	}
	w.offset = n
	if expected.Size > 0 && n > expected.Size {
		if err := w.Truncate(0); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// waitLock takes the ingest lock, polling so that a cancelled context ends
// the wait (flock itself cannot be interrupted by a context).
func waitLock(ctx context.Context, path string) (*flock.Lock, error) {
	delay := 5 * time.Millisecond
	for {
		l, err := flock.TryExclusive(path)
		if err == nil {
			// A garbage collection may have removed the ingest between our
			// open and our lock: a lock on an unlinked file guards nothing.
			held, err1 := l.File().Stat()
			now, err2 := os.Stat(path)
			if err1 == nil && err2 == nil && os.SameFile(held, now) {
				return l, nil
			}
			l.Unlock()
			if err2 != nil && !errors.Is(err2, fs.ErrNotExist) {
				return nil, err2
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return nil, err
			}
			continue
		}
		if !errors.Is(err, flock.ErrLocked) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (waiting for another writer: %w)", ctx.Err(), errdefs.ErrUnavailable)
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

type localWriter struct {
	s      *Local
	ref    string
	dir    string
	f      *os.File
	lock   *flock.Lock
	alg    digest.Algorithm
	h      hash.Hash
	offset int64
	synced int64 // writeback started up to here
	done   bool
}

// writebackChunk is how much a blob grows before its writeback is
// started, so that Commit's fsync finds little left to write.
const writebackChunk = 8 << 20

func (w *localWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.offset += int64(n)
	if w.offset-w.synced >= writebackChunk {
		unix.SyncFileRange(int(w.f.Fd()), w.synced, w.offset-w.synced, unix.SYNC_FILE_RANGE_WRITE)
		w.synced = w.offset
	}
	return n, err
}

func (w *localWriter) Offset() int64 { return w.offset }

// Prefix reads the bytes a resumed ingest already holds, so that a reader
// of the whole blob can be given them before the rest is fetched.
func (w *localWriter) Prefix() io.Reader { return io.NewSectionReader(w.f, 0, w.offset) }

func (w *localWriter) Digest() digest.Digest {
	return digest.NewDigestFromBytes(w.alg, w.h.Sum(nil))
}

func (w *localWriter) Truncate(size int64) error {
	if size < 0 || size > w.offset {
		return fmt.Errorf("ingest %s: truncate to %d of %d bytes: %w", w.ref, size, w.offset, errdefs.ErrInvalidArgument)
	}
	if err := w.f.Truncate(size); err != nil {
		return fmt.Errorf("ingest %s: %w", w.ref, err)
	}
	w.h.Reset()
	if size > 0 {
		if _, err := io.Copy(w.h, io.NewSectionReader(w.f, 0, size)); err != nil {
			return fmt.Errorf("ingest %s: %w", w.ref, err)
		}
	}
	if _, err := w.f.Seek(size, io.SeekStart); err != nil {
		return fmt.Errorf("ingest %s: %w", w.ref, err)
	}
	w.offset = size
	if w.synced > size {
		w.synced = size
	}
	return nil
}

func (w *localWriter) Commit(ctx context.Context, size int64, expected digest.Digest) error {
	if w.done {
		return fmt.Errorf("ingest %s: already committed or closed: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	got := w.Digest()
	if size > 0 && w.offset != size {
		w.discard()
		return fmt.Errorf("blob %s: wrote %d bytes, expected %d: %w", orDigest(expected, got), w.offset, size, errdefs.ErrFailedPrecondition)
	}
	if expected != "" && got != expected {
		w.discard()
		return fmt.Errorf("blob %s: content has digest %s: %w", expected, got, errdefs.ErrDataLoss)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("ingest %s: fsync: %w", w.ref, err)
	}
	if err := w.f.Chmod(0o444); err != nil {
		return fmt.Errorf("ingest %s: %w", w.ref, err)
	}
	target, err := w.s.BlobPath(got)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return fmt.Errorf("commit %s: %w", got, err)
	}
	if _, err := os.Stat(target); err == nil {
		w.release()
		return fmt.Errorf("blob %s: %w", got, errdefs.ErrAlreadyExists)
	}
	if err := os.Rename(filepath.Join(w.dir, "data"), target); err != nil {
		return fmt.Errorf("commit %s: %w", got, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(target)); err != nil {
		return err
	}
	w.release()
	return nil
}

func orDigest(a, b digest.Digest) digest.Digest {
	if a != "" {
		return a
	}
	return b
}

// discard empties the ingest after a failed verification, so that a retry
// does not resume from bad bytes.
func (w *localWriter) discard() {
	w.f.Truncate(0)
	w.release()
}

// release removes the ingest directory (its data was committed or is
// worthless) and drops the lock.
func (w *localWriter) release() {
	w.f.Close()
	os.RemoveAll(w.dir)
	w.lock.Unlock()
	w.done = true
}

func (w *localWriter) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	err := w.f.Close()
	w.lock.Unlock()
	return err
}

// Ingest is an ingest found on disk.
type Ingest struct {
	Ref       string
	Size      int64
	UpdatedAt time.Time
	// Active: a live process holds the ingest's lock.
	Active bool
}

// Ingests lists the ingests on disk, telling live ones from the leftovers
// of dead writers.
func (s *Local) Ingests() ([]Ingest, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "ingest"))
	if err != nil {
		return nil, fmt.Errorf("list ingests: %w", err)
	}
	var out []Ingest
	for _, e := range ents {
		dir := filepath.Join(s.root, "ingest", e.Name())
		in := Ingest{Ref: e.Name()}
		if b, err := os.ReadFile(filepath.Join(dir, "ref")); err == nil {
			in.Ref = strings.TrimSpace(string(b))
		}
		if fi, err := os.Stat(filepath.Join(dir, "data")); err == nil {
			in.Size, in.UpdatedAt = fi.Size(), fi.ModTime()
		}
		l, err := flock.TryExclusive(filepath.Join(dir, "lock"))
		if err != nil {
			in.Active = true
		} else {
			l.Unlock()
		}
		out = append(out, in)
	}
	return out, nil
}

// RemoveStaleIngests deletes the ingests no live process owns and returns
// how many bytes that freed. Interrupted writes are kept until then so they
// can be resumed.
func (s *Local) RemoveStaleIngests() (int64, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "ingest"))
	if err != nil {
		return 0, fmt.Errorf("list ingests: %w", err)
	}
	var freed int64
	for _, e := range ents {
		dir := filepath.Join(s.root, "ingest", e.Name())
		l, err := flock.TryExclusive(filepath.Join(dir, "lock"))
		if err != nil {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, "data")); err == nil {
			freed += fi.Size()
		}
		os.RemoveAll(dir)
		l.Unlock()
	}
	return freed, nil
}
