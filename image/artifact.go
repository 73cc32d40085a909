package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxArtifactBlob bounds each blob of an artifact: signatures and custody
// records are a few kilobytes, and anything bigger is refused unread.
const MaxArtifactBlob = 1 << 20

// An Artifact is a small OCI manifest that travels with an image without
// being one (a signature, a custody record): its manifest and blobs held
// in memory. The image store keeps none; it carries them through OCI
// layouts, listed in index.json with their artifactType, for the package
// that owns them (trust) to read and check.
type Artifact struct {
	// Tag, if set, is a tag it is kept under in a registry as well as by
	// digest (cosign's sha256-<hex>.sig).
	Tag string
	// MediaType and ArtifactType are the manifest's.
	MediaType    string
	ArtifactType string
	Manifest     []byte
	// Blobs are the config's and layers' bytes, by digest.
	Blobs map[digest.Digest][]byte
}

// Descriptor describes the artifact's manifest.
func (a Artifact) Descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: a.MediaType, ArtifactType: a.ArtifactType, Digest: digest.FromBytes(a.Manifest), Size: int64(len(a.Manifest))}
}

// Candidate is an image about to be stored (by a load or a pull), its
// documents read and checked against their digests and its layers not yet
// unpacked: what a LoadOptions.Check decides on.
type Candidate struct {
	// Names and Digests are what it would be stored under.
	Names   []string
	Digests []string
	// Manifest is the image manifest's descriptor (for this platform).
	Manifest ocispec.Descriptor
	Parsed   ocispec.Manifest
	Config   ocispec.Image
}

// readSmall reads a blob of at most MaxArtifactBlob bytes from src (or
// from the store when src is nil or lacks it), checked against its digest.
func (s *Store) readSmall(ctx context.Context, src layerSource, d ocispec.Descriptor) ([]byte, error) {
	if err := validDescriptor(d, "artifact blob"); err != nil {
		return nil, err
	}
	if d.Size > MaxArtifactBlob {
		return nil, fmt.Errorf("artifact blob %s is %d bytes: at most %d are read: %w", d.Digest, d.Size, MaxArtifactBlob, errdefs.ErrInvalidArgument)
	}
	if src != nil {
		if _, open, ok := src.blob(d); ok {
			rc, err := open()
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			b, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
			if err != nil {
				return nil, err
			}
			if int64(len(b)) != d.Size || digest.FromBytes(b) != d.Digest {
				return nil, fmt.Errorf("artifact blob %s does not match its digest: %w", d.Digest, errdefs.ErrDataLoss)
			}
			return b, nil
		}
	}
	return content.ReadBlob(ctx, s.content, d, MaxArtifactBlob)
}

// artifactOf reads the artifact desc names, and its blobs.
func (s *Store) artifactOf(ctx context.Context, src layerSource, desc ocispec.Descriptor) (Artifact, error) {
	mb, err := s.readSmall(ctx, src, desc)
	if err != nil {
		return Artifact{}, fmt.Errorf("artifact %s: %w", desc.Digest, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return Artifact{}, fmt.Errorf("artifact %s: not an OCI manifest: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	a := Artifact{MediaType: desc.MediaType, ArtifactType: desc.ArtifactType, Manifest: mb, Blobs: map[digest.Digest][]byte{}}
	if len(m.Layers) > 1000 {
		return Artifact{}, fmt.Errorf("artifact %s has %d layers: %w", desc.Digest, len(m.Layers), errdefs.ErrInvalidArgument)
	}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if d.Size == 0 && d.Digest == "" {
			continue
		}
		if _, ok := a.Blobs[d.Digest]; ok {
			continue
		}
		if d.Size == 2 && d.Digest == ocispec.DescriptorEmptyJSON.Digest {
			a.Blobs[d.Digest] = []byte("{}")
			continue
		}
		b, err := s.readSmall(ctx, src, d)
		if err != nil {
			return Artifact{}, fmt.Errorf("artifact %s: %w", desc.Digest, err)
		}
		a.Blobs[d.Digest] = b
	}
	return a, nil
}

// writeArtifacts adds artifacts to a layout being written.
func writeArtifacts(sk sink, arts []Artifact, index []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	for _, a := range arts {
		for d, b := range a.Blobs {
			if err := putBytes(sk, d, b); err != nil {
				return nil, err
			}
		}
		desc := a.Descriptor()
		if err := putBytes(sk, desc.Digest, a.Manifest); err != nil {
			return nil, err
		}
		dup := false
		for _, e := range index {
			dup = dup || e.Digest == desc.Digest
		}
		if !dup {
			index = append(index, desc)
		}
	}
	return index, nil
}

func putBytes(sk sink, d digest.Digest, b []byte) error {
	name := blobName(d)
	if sk.has(name) {
		return nil
	}
	if err := sk.put(name, int64(len(b)), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}
