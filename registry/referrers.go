package registry

import (
	"context"
	"fmt"

	"github.com/berthproject/berth/errdefs"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Referrers lists what names subject (a manifest digest in repository) as
// its subject: signatures, custody records, SBOMs. It asks the referrers
// API, and where the registry has none reads the tag schema's fallback
// index (<alg>-<hex>), as OCI distribution 1.1 says. artifactType, when
// set, keeps only those of that type.
func (cl *Client) Referrers(ctx context.Context, repository string, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	if err := subject.Validate(); err != nil {
		return nil, fmt.Errorf("referrers: subject %q: %v: %w", subject, err, errdefs.ErrInvalidArgument)
	}
	ref, err := cl.Reference(repository + "@" + subject.String())
	if err != nil {
		return nil, err
	}
	repo := ref.Context()
	base, err := cl.base(repo.RegistryStr())
	if err != nil {
		return nil, err
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(base), remote.WithAuthFromKeychain(cl.creds)}
	if artifactType != "" {
		opts = append(opts, remote.WithFilter("artifactType", artifactType))
	}
	idx, err := remote.Referrers(repo.Digest(subject.String()), opts...)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s@%s: %w", repo, subject, classify(repo.RegistryStr(), err))
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("referrers of %s@%s: %v: %w", repo, subject, err, errdefs.ErrInvalidArgument)
	}
	out := []ocispec.Descriptor{}
	for _, m := range im.Manifests {
		if artifactType != "" && m.ArtifactType != artifactType {
			continue // a registry that ignored the filter
		}
		out = append(out, ocispec.Descriptor{MediaType: string(m.MediaType), Digest: digest.Digest(m.Digest.String()), Size: m.Size, ArtifactType: m.ArtifactType, Annotations: m.Annotations})
	}
	return out, nil
}
