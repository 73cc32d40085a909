package image

import (
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

// DeriveOptions describe an image made from another by one more layer
// (berth commit).
type DeriveOptions struct {
	// Base is the image the new one is built on.
	Base digest.Digest
	// Layer is the new layer, an uncompressed tar.
	Layer io.Reader
	// Config, when set, edits the new image's config (the base's, to
	// begin with).
	Config func(*dockerspec.DockerOCIImageConfig)
	// Changes are Dockerfile instructions applied after Config.
	Changes []string
	// Author, CreatedBy and Comment go into the config and its history.
	Author    string
	CreatedBy string
	Comment   string
	// Ref names the new image (optional).
	Ref string
}

// ociLayerType is a layer media type as an OCI manifest names it.
func ociLayerType(mt string) string {
	switch mt {
	case MediaTypeDockerLayerGzip, MediaTypeDockerLayerForeign:
		return ocispec.MediaTypeImageLayerGzip
	case MediaTypeDockerLayer:
		return ocispec.MediaTypeImageLayer
	}
	return mt
}

// Derive stores an image that is Base plus one layer, and unpacks it (only
// the new layer is unpacked: the base's are there).
func (s *Store) Derive(ctx context.Context, o DeriveOptions) (Image, error) {
	var name string
	if o.Ref != "" {
		n, err := ParseReference(o.Ref)
		if err != nil {
			return Image{}, err
		}
		name = n.String()
	}
	base, err := s.Get(ctx, o.Base.String())
	if err != nil {
		return Image{}, err
	}
	cfg, err := s.Config(ctx, base)
	if err != nil {
		return Image{}, err
	}
	m, err := s.Manifest(ctx, base)
	if err != nil {
		return Image{}, err
	}
	if o.Config != nil {
		o.Config(&cfg.Config)
	}
	if err := ApplyChanges(&cfg.Config, o.Changes); err != nil {
		return Image{}, err
	}
	release, err := s.writing(ctx)
	if err != nil {
		return Image{}, err
	}
	defer release()

	w, err := s.content.Writer(ctx, "derive-"+randomHex(8), ocispec.Descriptor{})
	if err != nil {
		return Image{}, err
	}
	defer w.Close()
	gz, err := archive.CompressStream(w, archive.Gzip)
	if err != nil {
		return Image{}, err
	}
	diff := digest.Canonical.Digester()
	if _, err := io.Copy(io.MultiWriter(gz, diff.Hash()), o.Layer); err != nil {
		return Image{}, fmt.Errorf("write the new layer: %w", err)
	}
	if err := gz.Close(); err != nil {
		return Image{}, err
	}
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: w.Digest(), Size: w.Offset()}
	if err := w.Commit(ctx, layer.Size, layer.Digest); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		return Image{}, err
	}

	now := time.Now().UTC()
	cfg.Created = &now
	if o.Author != "" {
		cfg.Author = o.Author
	}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diff.Digest())
	cfg.History = append(cfg.History, ocispec.History{Created: &now, CreatedBy: o.CreatedBy, Author: o.Author, Comment: o.Comment})
	cb, err := json.Marshal(cfg)
	if err != nil {
		return Image{}, err
	}
	cd, err := content.WriteBytes(ctx, s.content, ocispec.MediaTypeImageConfig, cb)
	if err != nil {
		return Image{}, err
	}
	nm := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cd}
	nm.SchemaVersion = 2
	for _, l := range m.Layers {
		l.MediaType = ociLayerType(l.MediaType)
		nm.Layers = append(nm.Layers, l)
	}
	nm.Layers = append(nm.Layers, layer)
	mb, err := json.Marshal(nm)
	if err != nil {
		return Image{}, err
	}
	md, err := content.WriteBytes(ctx, s.content, ocispec.MediaTypeImageManifest, mb)
	if err != nil {
		return Image{}, err
	}
	var names []string
	if name != "" {
		names = []string{name}
	}
	loaded, err := s.store(ctx, []pendingImage{{desc: md, names: names}}, LoadOptions{})
	if err != nil {
		return Image{}, err
	}
	return s.Get(ctx, loaded[0].ID.String())
}
