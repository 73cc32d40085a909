package image

import (
	"encoding/json"
	"fmt"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's media types (image manifest v2 schema 2).
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerForeign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	MediaTypeDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeDockerSchema1JWS   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// Size limits for documents read whole into memory: a hostile descriptor
// must not make berth allocate gigabytes.
const (
	maxManifestSize = 4 << 20
	maxConfigSize   = 32 << 20
)

func isManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

func isIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

func isConfig(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == MediaTypeDockerConfig
}

// layerCompression tells a layer media type's compression, or an error
// naming the media type when it is none berth can unpack.
func layerCompression(mt string) (archive.Compression, error) {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerNonDistributable, MediaTypeDockerLayer: //nolint:staticcheck // still in use
		return archive.Uncompressed, nil
	case ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerNonDistributableGzip, MediaTypeDockerLayerGzip, MediaTypeDockerLayerForeign: //nolint:staticcheck
		return archive.Gzip, nil
	case ocispec.MediaTypeImageLayerZstd, ocispec.MediaTypeImageLayerNonDistributableZstd: //nolint:staticcheck
		return archive.Zstd, nil
	}
	return 0, fmt.Errorf("unknown layer media type %q: %w", mt, errdefs.ErrInvalidArgument)
}

// sniff reads just the media type fields of a manifest-like document.
type sniff struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        json.RawMessage `json:"config"`
	Manifests     json.RawMessage `json:"manifests"`
	Layers        json.RawMessage `json:"layers"`
	FSLayers      json.RawMessage `json:"fsLayers"`
}

// documentType tells what a manifest-like document is, from its declared
// media type or, where the descriptor does not say, from its shape.
func documentType(declared string, b []byte) (string, error) {
	var s sniff
	if err := json.Unmarshal(b, &s); err != nil {
		return "", fmt.Errorf("manifest is not valid JSON: %w: %w", errdefs.ErrInvalidArgument, err)
	}
	mt := s.MediaType
	if mt == "" {
		mt = declared
	}
	if mt == MediaTypeDockerSchema1 || mt == MediaTypeDockerSchema1JWS || s.SchemaVersion == 1 || s.FSLayers != nil {
		return "", fmt.Errorf("Docker image manifest schema 1 is not supported (it was retired in 2017; re-push the image with a current tool): %w", errdefs.ErrNotImplemented)
	}
	if declared != "" && s.MediaType != "" && declared != s.MediaType {
		return "", fmt.Errorf("manifest says media type %q but its descriptor says %q: %w", s.MediaType, declared, errdefs.ErrInvalidArgument)
	}
	if mt == "" {
		switch {
		case s.Manifests != nil:
			mt = ocispec.MediaTypeImageIndex
		case s.Config != nil:
			mt = ocispec.MediaTypeImageManifest
		}
	}
	if !isManifest(mt) && !isIndex(mt) {
		return "", fmt.Errorf("unknown manifest media type %q: %w", mt, errdefs.ErrInvalidArgument)
	}
	return mt, nil
}
