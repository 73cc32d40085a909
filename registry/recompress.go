package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/errdefs"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Compression names a push's layer compression.
type Compression string

const (
	AsStored   Compression = ""
	GzipLayers Compression = "gzip"
	ZstdLayers Compression = "zstd"
)

// ParseCompression reads --compression-format.
func ParseCompression(s string) (Compression, error) {
	switch Compression(s) {
	case AsStored, GzipLayers, ZstdLayers:
		return Compression(s), nil
	}
	return "", fmt.Errorf("--compression-format %q: gzip or zstd: %w", s, errdefs.ErrInvalidArgument)
}

func layerCompression(mt string) Compression {
	switch {
	case strings.HasSuffix(mt, "+zstd"):
		return ZstdLayers
	case strings.HasSuffix(mt, "+gzip") || mt == "application/vnd.docker.image.rootfs.diff.tar.gzip":
		return GzipLayers
	}
	return AsStored
}

// recompress makes the image's layers c-compressed (those that are not),
// into temporary files, and the OCI manifest that names them: the config
// is the same bytes, so the image keeps its ID; its manifest digest is a
// new one. The returned cleanup removes the files.
func recompress(ctx context.Context, si *storeImage, m ocispec.Manifest, c Compression, jobs int) ([]byte, func(), error) {
	files := map[string]string{}
	var mu sync.Mutex
	cleanup := func() {
		for _, f := range files {
			os.Remove(f)
		}
	}
	out := m
	out.MediaType = ocispec.MediaTypeImageManifest
	out.Config.MediaType = ocispec.MediaTypeImageConfig
	out.Layers = make([]ocispec.Descriptor, len(m.Layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for i, l := range m.Layers {
		i, l := i, l
		if layerCompression(l.MediaType) == c {
			out.Layers[i] = l
			if strings.HasPrefix(l.MediaType, "application/vnd.docker.") {
				out.Layers[i].MediaType = ocispec.MediaTypeImageLayerGzip
			}
			continue
		}
		g.Go(func() error {
			d, size, path, err := recompressLayer(gctx, si.cs, l, c)
			if err != nil {
				return fmt.Errorf("layer %s: %w", l.Digest, err)
			}
			mu.Lock()
			files[d.String()] = path
			mu.Unlock()
			mt := ocispec.MediaTypeImageLayerZstd
			if c == GzipLayers {
				mt = ocispec.MediaTypeImageLayerGzip
			}
			out.Layers[i] = ocispec.Descriptor{MediaType: mt, Digest: d, Size: size, Annotations: l.Annotations}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		cleanup()
		return nil, nil, err
	}
	mb, err := json.Marshal(out)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	si.manifest, si.mediaType = mb, types.OCIManifestSchema1
	si.files = files
	si.layers = map[string]ocispec.Descriptor{}
	for _, l := range out.Layers {
		si.layers[l.Digest.String()] = l
	}
	return mb, cleanup, nil
}

// recompressLayer writes layer l, decompressed and compressed with c, to
// a temporary file, hashing it on the way.
func recompressLayer(ctx context.Context, cs content.Store, l ocispec.Descriptor, c Compression) (digest.Digest, int64, string, error) {
	rc, err := content.Open(ctx, cs, l) // verified as it is read
	if err != nil {
		return "", 0, "", err
	}
	defer rc.Close()
	dr, _, err := archive.DecompressStream(rc)
	if err != nil {
		return "", 0, "", err
	}
	defer dr.Close()
	f, err := os.CreateTemp("", "berth-layer-")
	if err != nil {
		return "", 0, "", err
	}
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(f, h)}
	to := archive.Zstd
	if c == GzipLayers {
		to = archive.Gzip
	}
	zw, err := archive.CompressStream(cw, to)
	if err == nil {
		_, err = io.Copy(zw, dr)
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, "", err
	}
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil))), cw.n, f.Name(), nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
