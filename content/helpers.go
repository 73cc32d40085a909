package content

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/berthproject/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Verifier wraps a reader of a blob described by desc: it hashes and counts
// every byte and turns EOF into an errdefs.ErrDataLoss error when the bytes
// were not exactly the ones the descriptor names. A reader that yields more
// than desc.Size bytes fails as soon as it does.
type Verifier struct {
	r    io.Reader
	desc ocispec.Descriptor
	h    hash.Hash
	n    int64
	err  error
}

// NewVerifier returns a Verifier over r. The descriptor's digest must be
// valid and of an available algorithm.
func NewVerifier(r io.Reader, desc ocispec.Descriptor) (*Verifier, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: %w: %w", desc.Digest, errdefs.ErrInvalidArgument, err)
	}
	return &Verifier{r: r, desc: desc, h: desc.Digest.Algorithm().Hash()}, nil
}

func (v *Verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.desc.Size >= 0 && v.n > v.desc.Size {
		v.err = fmt.Errorf("blob %s: more than the expected %d bytes: %w", v.desc.Digest, v.desc.Size, errdefs.ErrDataLoss)
		return n, v.err
	}
	if err == io.EOF {
		if v.n != v.desc.Size {
			v.err = fmt.Errorf("blob %s: %d bytes, expected %d: %w", v.desc.Digest, v.n, v.desc.Size, errdefs.ErrDataLoss)
			return n, v.err
		}
		if got := digest.NewDigestFromBytes(v.desc.Digest.Algorithm(), v.h.Sum(nil)); got != v.desc.Digest {
			v.err = fmt.Errorf("blob %s: content has digest %s: %w", v.desc.Digest, got, errdefs.ErrDataLoss)
			return n, v.err
		}
		v.err = io.EOF
	} else if err != nil {
		v.err = err
	}
	return n, err
}

// Count is the number of bytes read so far.
func (v *Verifier) Count() int64 { return v.n }

// verifiedReader is a verified sequential read of a stored blob.
type verifiedReader struct {
	*Verifier
	ra ReaderAt
}

func (r *verifiedReader) Close() error { return r.ra.Close() }

// Open returns a sequential reader of a committed blob that fails at EOF
// (with errdefs.ErrDataLoss) if the stored bytes do not match desc.
func Open(ctx context.Context, s Store, desc ocispec.Descriptor) (io.ReadCloser, error) {
	ra, err := s.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	size := desc.Size
	if size < 0 {
		size = ra.Size()
	}
	v, err := NewVerifier(io.NewSectionReader(ra, 0, size+1), ocispec.Descriptor{Digest: desc.Digest, Size: size})
	if err != nil {
		ra.Close()
		return nil, err
	}
	return &verifiedReader{Verifier: v, ra: ra}, nil
}

// ReadBlob reads a whole committed blob, verified, refusing blobs larger
// than max bytes (manifests and configs are read this way; max keeps a
// hostile descriptor from making berth allocate gigabytes).
func ReadBlob(ctx context.Context, s Store, desc ocispec.Descriptor, max int64) ([]byte, error) {
	if desc.Size > max {
		return nil, fmt.Errorf("blob %s: %d bytes is more than the %d allowed for %s: %w", desc.Digest, desc.Size, max, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	rc, err := Open(ctx, s, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// WriteBlob copies r into the store as the blob desc (desc.Digest
// required), verifying digest and size before it counts. An already stored
// blob is not written again, and r is then left unread. It returns whether
// the blob was written by this call.
func WriteBlob(ctx context.Context, s Store, ref string, r io.Reader, desc ocispec.Descriptor) (bool, error) {
	w, err := s.Writer(ctx, ref, desc)
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer w.Close()
	// A resumed ingest is restarted: r is a plain stream that cannot seek.
	if w.Offset() != 0 {
		if err := w.Truncate(0); err != nil {
			return false, err
		}
	}
	bp := copyBufs.Get().(*[]byte)
	_, err = io.CopyBuffer(w, r, *bp)
	copyBufs.Put(bp)
	if err != nil {
		return false, fmt.Errorf("write blob %s: %w", desc.Digest, err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// copyBufs are the buffers blobs are copied through: large, so that a
// layer is written in few system calls.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// WriteBytes stores b as a blob and returns its descriptor (with mediaType
// set), for the small documents berth writes itself.
func WriteBytes(ctx context.Context, s Store, mediaType string, b []byte) (ocispec.Descriptor, error) {
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	_, err := WriteBlob(ctx, s, "write-"+desc.Digest.String(), bytes.NewReader(b), desc)
	return desc, err
}
