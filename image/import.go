package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/errdefs"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportOptions control Import.
type ImportOptions struct {
	// Ref names the new image (optional).
	Ref string
	// Changes are Dockerfile instructions applied to the config.
	Changes []string
	// Message is the history comment (default "Imported from SOURCE").
	Message string
	// Source names where the tarball came from, for the default message.
	Source string
	// Platform is the image's platform (default the host's).
	Platform ocispec.Platform
}

// Import makes a one-layer image from a root file system tarball
// (uncompressed, gzip, bzip2 or zstd), as docker import does. The tarball
// is checked to be a tar while it is stored, and unpacked with the same
// safety rules as any layer.
func (s *Store) Import(ctx context.Context, r io.Reader, o ImportOptions) (Image, error) {
	var name string
	if o.Ref != "" {
		n, err := ParseReference(o.Ref)
		if err != nil {
			return Image{}, fmt.Errorf("import: %w", err)
		}
		name = n.String()
	}
	var cfg dockerspec.DockerOCIImageConfig
	if err := ApplyChanges(&cfg, o.Changes); err != nil {
		return Image{}, fmt.Errorf("import: %w", err)
	}
	release, err := s.writing(ctx)
	if err != nil {
		return Image{}, err
	}
	defer release()

	dr, _, err := archive.DecompressStream(r)
	if err != nil {
		return Image{}, fmt.Errorf("import: %w", err)
	}
	defer dr.Close()
	w, err := s.content.Writer(ctx, "import-"+randomHex(8), ocispec.Descriptor{})
	if err != nil {
		return Image{}, fmt.Errorf("import: %w", err)
	}
	defer w.Close()
	gz, err := archive.CompressStream(w, archive.Gzip)
	if err != nil {
		return Image{}, err
	}
	diff := digest.Canonical.Digester()
	tee := io.TeeReader(dr, io.MultiWriter(diff.Hash(), gz))
	tr := tar.NewReader(tee)
	entries := 0
	for {
		_, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Image{}, fmt.Errorf("import: the input is not a tar archive (or is truncated): %w: %w", errdefs.ErrInvalidArgument, err)
		}
		entries++
	}
	if entries == 0 {
		return Image{}, fmt.Errorf("import: the tar archive is empty: %w", errdefs.ErrInvalidArgument)
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return Image{}, fmt.Errorf("import: %w", err)
	}
	if err := gz.Close(); err != nil {
		return Image{}, fmt.Errorf("import: %w", err)
	}
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: w.Digest(), Size: w.Offset()}
	if err := w.Commit(ctx, layer.Size, layer.Digest); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		return Image{}, fmt.Errorf("import: %w", err)
	}

	now := time.Now().UTC()
	platform := platformOr(o.Platform)
	comment := o.Message
	if comment == "" {
		src := o.Source
		if src == "" {
			src = "-"
		}
		comment = "Imported from " + src
	}
	img := dockerspec.DockerOCIImage{
		Image: ocispec.Image{
			Created:  &now,
			Platform: platform,
			RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diff.Digest()}},
			History:  []ocispec.History{{Created: &now, Comment: comment}},
		},
		Config: cfg,
	}
	cb, err := json.Marshal(img)
	if err != nil {
		return Image{}, err
	}
	cd, err := content.WriteBytes(ctx, s.content, ocispec.MediaTypeImageConfig, cb)
	if err != nil {
		return Image{}, fmt.Errorf("import: %w", err)
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: []ocispec.Descriptor{layer}}
	m.SchemaVersion = 2
	mb, err := json.Marshal(m)
	if err != nil {
		return Image{}, err
	}
	md, err := content.WriteBytes(ctx, s.content, ocispec.MediaTypeImageManifest, mb)
	if err != nil {
		return Image{}, fmt.Errorf("import: %w", err)
	}
	var names []string
	if name != "" {
		names = []string{name}
	}
	loaded, err := s.store(ctx, []pendingImage{{desc: md, names: names}}, LoadOptions{Platform: platform})
	if err != nil {
		return Image{}, fmt.Errorf("import: %w", err)
	}
	return s.Get(ctx, loaded[0].ID.String())
}
