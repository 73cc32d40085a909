package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// HostPlatform is the platform images are chosen for by default.
func HostPlatform() ocispec.Platform {
	p := ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// ParsePlatform parses os/arch[/variant] as --platform takes it.
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return ocispec.Platform{}, fmt.Errorf("invalid platform %q: want os/arch or os/arch/variant (for example linux/amd64): %w", s, errdefs.ErrInvalidArgument)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// PlatformString formats a platform as os/arch[/variant].
func PlatformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// platformMatches: os and architecture must be equal; a wanted variant
// must be equal when the candidate names one (arm64 images often omit v8).
func platformMatches(want, have ocispec.Platform) bool {
	if want.OS != have.OS || want.Architecture != have.Architecture {
		return false
	}
	return want.Variant == "" || have.Variant == "" || want.Variant == have.Variant
}

func validDescriptor(d ocispec.Descriptor, what string) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("%s: bad digest %q: %w: %w", what, d.Digest, errdefs.ErrInvalidArgument, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("%s %s: negative size %d: %w", what, d.Digest, d.Size, errdefs.ErrInvalidArgument)
	}
	return nil
}

// readDocument reads a manifest or index blob and tells which it is.
func readDocument(ctx context.Context, cs content.Store, desc ocispec.Descriptor) (string, []byte, error) {
	if err := validDescriptor(desc, "manifest"); err != nil {
		return "", nil, err
	}
	b, err := content.ReadBlob(ctx, cs, desc, maxManifestSize)
	if err != nil {
		return "", nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	mt, err := documentType(desc.MediaType, b)
	if err != nil {
		return "", nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	return mt, b, nil
}

func parseManifest(dgst digest.Digest, b []byte) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest %s: %w: %w", dgst, errdefs.ErrInvalidArgument, err)
	}
	if err := validDescriptor(m.Config, "config"); err != nil {
		return m, fmt.Errorf("manifest %s: %w", dgst, err)
	}
	if !isConfig(m.Config.MediaType) {
		return m, fmt.Errorf("manifest %s: config media type %q is not an image config (an artifact, not an image): %w", dgst, m.Config.MediaType, errdefs.ErrInvalidArgument)
	}
	for i, l := range m.Layers {
		if err := validDescriptor(l, fmt.Sprintf("layer %d", i)); err != nil {
			return m, fmt.Errorf("manifest %s: %w", dgst, err)
		}
		if _, err := layerCompression(l.MediaType); err != nil {
			return m, fmt.Errorf("manifest %s: layer %s: %w", dgst, l.Digest, err)
		}
	}
	return m, nil
}

func parseIndex(dgst digest.Digest, b []byte) (ocispec.Index, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("index %s: %w: %w", dgst, errdefs.ErrInvalidArgument, err)
	}
	for i, m := range idx.Manifests {
		if err := validDescriptor(m, fmt.Sprintf("index %s entry %d", dgst, i)); err != nil {
			return idx, err
		}
	}
	return idx, nil
}

// choosePlatform picks the manifest for platform from an index.
func choosePlatform(idx ocispec.Index, dgst digest.Digest, want ocispec.Platform) (ocispec.Descriptor, error) {
	var have []string
	for _, m := range idx.Manifests {
		if m.Platform == nil {
			continue
		}
		if platformMatches(want, *m.Platform) && (isManifest(m.MediaType) || m.MediaType == "") {
			return m, nil
		}
		have = append(have, PlatformString(*m.Platform))
	}
	if len(have) == 0 {
		return ocispec.Descriptor{}, fmt.Errorf("manifest list %s has no image for %s (it names no platforms): %w", dgst, PlatformString(want), errdefs.ErrNotFound)
	}
	return ocispec.Descriptor{}, fmt.Errorf("manifest list %s has no image for %s (it has %s); choose one with --platform: %w", dgst, PlatformString(want), strings.Join(have, ", "), errdefs.ErrNotFound)
}

// resolved is an image found from a manifest or an index: everything a
// record needs except names.
type resolved struct {
	index    *ocispec.Descriptor
	manifest ocispec.Descriptor
	m        ocispec.Manifest
	config   ocispec.Image
	chain    []digest.Digest
}

// resolve reads desc (a manifest, or an index to choose from) and its
// config from the content store and checks that they describe an image
// berth can unpack.
func resolve(ctx context.Context, cs content.Store, desc ocispec.Descriptor, platform ocispec.Platform) (*resolved, error) {
	mt, b, err := readDocument(ctx, cs, desc)
	if err != nil {
		return nil, err
	}
	res := &resolved{}
	if isIndex(mt) {
		idx, err := parseIndex(desc.Digest, b)
		if err != nil {
			return nil, err
		}
		d := desc
		d.MediaType = mt
		res.index = &d
		if desc, err = choosePlatform(idx, desc.Digest, platform); err != nil {
			return nil, err
		}
		if mt, b, err = readDocument(ctx, cs, desc); err != nil {
			return nil, err
		}
		if !isManifest(mt) {
			return nil, fmt.Errorf("index %s: entry %s is a nested index: %w", res.index.Digest, desc.Digest, errdefs.ErrNotImplemented)
		}
	}
	desc.MediaType = mt
	res.manifest = ocispec.Descriptor{MediaType: mt, Digest: desc.Digest, Size: desc.Size}
	if res.m, err = parseManifest(desc.Digest, b); err != nil {
		return nil, err
	}
	cb, err := content.ReadBlob(ctx, cs, res.m.Config, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", res.m.Config.Digest, err)
	}
	if err := json.Unmarshal(cb, &res.config); err != nil {
		return nil, fmt.Errorf("config %s: %w: %w", res.m.Config.Digest, errdefs.ErrInvalidArgument, err)
	}
	if res.config.RootFS.Type != "" && res.config.RootFS.Type != "layers" {
		return nil, fmt.Errorf("config %s: rootfs type %q is not \"layers\": %w", res.m.Config.Digest, res.config.RootFS.Type, errdefs.ErrInvalidArgument)
	}
	if n, m := len(res.config.RootFS.DiffIDs), len(res.m.Layers); n != m {
		return nil, fmt.Errorf("config %s lists %d diff_ids but manifest %s has %d layers: %w", res.m.Config.Digest, n, desc.Digest, m, errdefs.ErrInvalidArgument)
	}
	for i, d := range res.config.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("config %s: diff_id %d %q: %w: %w", res.m.Config.Digest, i, d, errdefs.ErrInvalidArgument, err)
		}
	}
	res.chain = identityChain(res.config.RootFS.DiffIDs)
	return res, nil
}

func (r *resolved) chainID() digest.Digest {
	if len(r.chain) == 0 {
		return ""
	}
	return r.chain[len(r.chain)-1]
}

// identityChain returns the chain IDs of a list of diff_ids (without
// changing the list).
func identityChain(diffIDs []digest.Digest) []digest.Digest {
	return identity.ChainIDs(append([]digest.Digest(nil), diffIDs...))
}

func specsVersioned() specs.Versioned { return specs.Versioned{SchemaVersion: 2} }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
