// Package content is berth's content-addressed blob store: manifests,
// configs, layers and signatures, each named by its digest.
//
// Nothing becomes visible before it has been verified: a blob is written
// through an ingest (resumable, keyed by a caller-chosen ref, owned by one
// process at a time through a file lock), and Commit checks the size and the
// digest, fsyncs, and renames it into place in one atomic step. Reads are
// verified by default: Open hashes as it streams and fails at EOF when the
// bytes on disk no longer match their name.
//
// It owns blobs only. What refers to them (images, signatures) and when they
// may be deleted (garbage collection) belong to the callers.
//
// Layout on disk:
//
//	<root>/
//	  blobs/<algorithm>/<encoded>   committed blobs, mode 0444, immutable
//	  ingest/<sha256(ref)>/         one write in progress
//	    lock                        flocked by the writing process while it lives
//	    ref                         the ref, so listings can name it
//	    data                        the bytes written so far
package content

import (
	"context"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Info describes a committed blob.
type Info struct {
	Digest    digest.Digest
	Size      int64
	CreatedAt time.Time
}

// ReaderAt reads a committed blob at any offset. It does not verify: use
// Open for a read that checks the digest, or read every byte of a ReaderAt
// through NewVerifier.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Writer is an ingest in progress. Bytes written go to the ingest's data
// file; nothing is visible in the store until Commit succeeds. Close
// without Commit keeps the data so a later Writer for the same ref resumes
// at Offset.
type Writer interface {
	io.Writer
	io.Closer
	// Offset is the number of bytes already in the ingest: a resumed
	// writer starts there.
	Offset() int64
	// Digest is the digest of the bytes written so far.
	Digest() digest.Digest
	// Truncate discards everything after size (only 0 or the current
	// offset keep the running digest cheap; other sizes rehash).
	Truncate(size int64) error
	// Commit verifies that exactly size bytes (size <= 0: any size) with
	// the expected digest (empty: whatever was written) were written, makes
	// them durable and moves them into the store. It fails with
	// errdefs.ErrDataLoss on a digest mismatch and
	// errdefs.ErrFailedPrecondition on a size mismatch, discarding the
	// ingest; a blob already present makes it succeed with
	// errdefs.ErrAlreadyExists.
	Commit(ctx context.Context, size int64, expected digest.Digest) error
}

// WalkFunc is called for each committed blob.
type WalkFunc func(Info) error

// Store is the seam callers depend on: what a blob store naturally has.
// Everything else (verified sequential reads, whole-blob reads, copying a
// stream in) is derived from it once, in this package's helpers.
type Store interface {
	// Info reports a committed blob, or errdefs.ErrNotFound.
	Info(ctx context.Context, dgst digest.Digest) (Info, error)
	// ReaderAt opens a committed blob for random access.
	ReaderAt(ctx context.Context, desc ocispec.Descriptor) (ReaderAt, error)
	// Writer starts or resumes the ingest named ref. When expected names a
	// blob that is already committed it returns errdefs.ErrAlreadyExists
	// and no writer. It waits while another process owns the same ref.
	Writer(ctx context.Context, ref string, expected ocispec.Descriptor) (Writer, error)
	// Walk calls fn for every committed blob.
	Walk(ctx context.Context, fn WalkFunc) error
	// Delete removes a committed blob; a missing blob is errdefs.ErrNotFound.
	Delete(ctx context.Context, dgst digest.Digest) error
}
