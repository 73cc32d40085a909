package archive

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"

	"github.com/berthproject/berth/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression is a layer's compression, detected from its first bytes.
type Compression int

const (
	Uncompressed Compression = iota
	Gzip
	Zstd
	Bzip2
	Xz
)

func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	case Bzip2:
		return "bzip2"
	case Xz:
		return "xz"
	}
	return "uncompressed"
}

var magics = []struct {
	c     Compression
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b, 0x08}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{Bzip2, []byte{0x42, 0x5a, 0x68}},
	{Xz, []byte{0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00}},
}

// DetectCompression tells the compression from a stream's first bytes
// (at least 6 of them, when the stream has that many).
func DetectCompression(head []byte) Compression {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.c
		}
	}
	return Uncompressed
}

// zstdMaxWindow bounds the memory a zstd stream can make the decoder
// allocate: the format allows windows of terabytes, encoders use at most
// 128 MiB (--long=27).
const zstdMaxWindow = 1 << 27

// DecompressStream returns the decompressed content of r and the
// compression it found. Only what OCI layers use (gzip, zstd, none) and
// bzip2 (which docker import accepts) are read; xz gets a clear error.
func DecompressStream(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(6)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, Uncompressed, err
	}
	c := DetectCompression(head)
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("gzip: %w", err)
		}
		return zr, c, nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderLowmem(false))
		if err != nil {
			return nil, c, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), c, nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(br)), c, nil
	case Xz:
		return nil, c, fmt.Errorf("xz-compressed data is not supported (decompress it first, with xz -d): %w", errdefs.ErrNotImplemented)
	}
	return io.NopCloser(br), c, nil
}

// LimitError is returned when a stream expands past its bound.
type LimitError struct {
	Limit int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("expands to more than %d bytes (a decompression bomb, or a layer past the size limit)", e.Limit)
}

func (e *LimitError) Unwrap() error { return errdefs.ErrInvalidArgument }

// Bounded returns a reader that fails with a *LimitError once more than
// limit bytes have been read from r. Decompressed layers are read through
// it so that a small blob cannot fill the disk.
func Bounded(r io.Reader, limit int64) io.Reader {
	return &bounded{r: r, left: limit, limit: limit}
}

type bounded struct {
	r     io.Reader
	left  int64
	limit int64
}

func (b *bounded) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, &LimitError{Limit: b.limit}
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, &LimitError{Limit: b.limit}
	}
	return n, err
}

// CompressStream returns a writer that compresses into w. Gzip uses the
// default level (what registries and other tools expect to be fast to
// decompress), zstd its default level.
func CompressStream(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case Uncompressed:
		return nopWriteCloser{w}, nil
	case Gzip:
		return gzip.NewWriterLevel(w, gzip.DefaultCompression)
	case Zstd:
		return zstd.NewWriter(w)
	}
	return nil, fmt.Errorf("compress with %s: %w", c, errdefs.ErrNotImplemented)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
