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
// (berth commit), or by a change of config alone (a build step that makes
// no layer).
type DeriveOptions struct {
	// Base is the image the new one is built on; "" is scratch (no
	// layers, the host platform).
	Base digest.Digest
	// Layer is the new layer, an uncompressed tar; nil adds no layer (the
	// history entry is then an empty layer's).
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
	// Created fixes the creation time of the config and the history entry
	// (SOURCE_DATE_EPOCH); nil is now.
	Created *time.Time
	// NoHistory adds no history entry (a change of config that is not a
	// step of its own, such as build --label; allowed only without Layer).
	NoHistory bool
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

// Derive stores an image that is Base plus one layer (or none), and
// unpacks it (only the new layer is unpacked: the base's are there). The
// new image records Base as its parent.
func (s *Store) Derive(ctx context.Context, o DeriveOptions) (Image, error) {
	var name string
	if o.Ref != "" {
		n, err := ParseReference(o.Ref)
		if err != nil {
			return Image{}, err
		}
		name = n.String()
	}
	cfg := &dockerspec.DockerOCIImage{}
	var m ocispec.Manifest
	if o.Base != "" {
		base, err := s.Get(ctx, o.Base.String())
		if err != nil {
			return Image{}, err
		}
		if cfg, err = s.Config(ctx, base); err != nil {
			return Image{}, err
		}
		if m, err = s.Manifest(ctx, base); err != nil {
			return Image{}, err
		}
	} else {
		p := HostPlatform()
		cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
		cfg.RootFS.DiffIDs = []digest.Digest{}
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

	var layer *ocispec.Descriptor
	var diffID digest.Digest
	if o.Layer != nil {
		desc, d, err := s.writeLayer(ctx, o.Layer)
		if err != nil {
			return Image{}, err
		}
		layer, diffID = &desc, d
	}

	now := time.Now().UTC()
	if o.Created != nil {
		now = o.Created.UTC()
	}
	cfg.Created = &now
	if o.Author != "" {
		cfg.Author = o.Author
	}
	cfg.RootFS.Type = "layers"
	if layer != nil {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
	}
	if o.NoHistory && layer != nil {
		return Image{}, fmt.Errorf("derive: a layer needs a history entry: %w", errdefs.ErrInvalidArgument)
	}
	if !o.NoHistory {
		cfg.History = append(cfg.History, ocispec.History{Created: &now, CreatedBy: o.CreatedBy, Author: o.Author, Comment: o.Comment, EmptyLayer: layer == nil})
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return Image{}, err
	}
	cd, err := content.WriteBytes(ctx, s.content, ocispec.MediaTypeImageConfig, cb)
	if err != nil {
		return Image{}, err
	}
	nm := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: []ocispec.Descriptor{}}
	nm.SchemaVersion = 2
	for _, l := range m.Layers {
		l.MediaType = ociLayerType(l.MediaType)
		nm.Layers = append(nm.Layers, l)
	}
	if layer != nil {
		nm.Layers = append(nm.Layers, *layer)
	}
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
	loaded, err := s.store(ctx, []pendingImage{{desc: md, names: names, parent: o.Base}}, LoadOptions{})
	if err != nil {
		return Image{}, err
	}
	return s.Get(ctx, loaded[0].ID.String())
}

// writeLayer stores an uncompressed layer tar gzip-compressed and returns
// its descriptor and diff ID. klauspost's gzip writes no time or name in
// its header, so equal tars give equal blobs (reproducible builds).
func (s *Store) writeLayer(ctx context.Context, r io.Reader) (ocispec.Descriptor, digest.Digest, error) {
	w, err := s.content.Writer(ctx, "derive-"+randomHex(8), ocispec.Descriptor{})
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer w.Close()
	gz, err := archive.CompressStream(w, archive.Gzip)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	diff := digest.Canonical.Digester()
	if _, err := io.Copy(io.MultiWriter(gz, diff.Hash()), r); err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("write the new layer: %w", err)
	}
	if err := gz.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: w.Digest(), Size: w.Offset()}
	if err := w.Commit(ctx, layer.Size, layer.Digest); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		return ocispec.Descriptor{}, "", err
	}
	return layer, diff.Digest(), nil
}
