package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// AttachKind is one kind of artifact attached to images: the tag cosign
// keeps it under for a subject, and its artifactType as a referrer.
type AttachKind struct {
	Tag          func(subject digest.Digest) string
	ArtifactType string
}

// Attached fetches what is attached to subject in repository: for each
// kind, the tagged artifact, or where there is none the referrers of that
// artifactType. Every blob is checked against its digest and none may be
// over image.MaxArtifactBlob; what they say is not checked here.
func (cl *Client) Attached(ctx context.Context, repository string, subject digest.Digest, kinds []AttachKind) ([]image.Artifact, error) {
	ref, err := cl.Reference(repository + "@" + subject.String())
	if err != nil {
		return nil, err
	}
	repo := ref.Context()
	rt, err := cl.transport(ctx, repo, transport.PullScope)
	if err != nil {
		return nil, err
	}
	var out []image.Artifact
	var missing []string
	for _, k := range kinds {
		tag := k.Tag(subject)
		m, err := cl.manifest(ctx, repo, tag, rt)
		if errors.Is(err, errdefs.ErrNotFound) {
			missing = append(missing, k.ArtifactType)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%s: %w", repo, tag, err)
		}
		a, err := cl.artifact(ctx, repo, rt, m)
		if err != nil {
			return nil, fmt.Errorf("%s:%s: %w", repo, tag, err)
		}
		a.Tag = tag
		out = append(out, a)
	}
	if len(missing) == 0 {
		return out, nil
	}
	refs, err := cl.Referrers(ctx, repository, subject, "")
	if errors.Is(err, errdefs.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return out, nil // a registry without referrers nor fallback: only tags
	}
	for _, d := range refs {
		want := false
		for _, t := range missing {
			want = want || d.ArtifactType == t || d.ArtifactType == ocispec.MediaTypeEmptyJSON
		}
		if !want {
			continue
		}
		m, err := cl.manifest(ctx, repo, d.Digest.String(), rt)
		if err != nil {
			return nil, fmt.Errorf("%s@%s: %w", repo, d.Digest, err)
		}
		a, err := cl.artifact(ctx, repo, rt, m)
		if err != nil {
			return nil, fmt.Errorf("%s@%s: %w", repo, d.Digest, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func (cl *Client) artifact(ctx context.Context, repo name.Repository, rt http.RoundTripper, m *Manifest) (image.Artifact, error) {
	var om ocispec.Manifest
	if err := json.Unmarshal(m.Bytes, &om); err != nil {
		return image.Artifact{}, fmt.Errorf("not an OCI manifest: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if len(om.Layers) > 1000 {
		return image.Artifact{}, fmt.Errorf("an artifact of %d layers: %w", len(om.Layers), errdefs.ErrInvalidArgument)
	}
	a := image.Artifact{MediaType: m.MediaType, ArtifactType: om.ArtifactType, Manifest: m.Bytes, Blobs: map[digest.Digest][]byte{}}
	for _, d := range append([]ocispec.Descriptor{om.Config}, om.Layers...) {
		if _, ok := a.Blobs[d.Digest]; ok || d.Digest == "" {
			continue
		}
		if d.Digest == ocispec.DescriptorEmptyJSON.Digest {
			a.Blobs[d.Digest] = []byte("{}")
			continue
		}
		if err := d.Digest.Validate(); err != nil {
			return image.Artifact{}, fmt.Errorf("blob %q: %v: %w", d.Digest, err, errdefs.ErrInvalidArgument)
		}
		if d.Size < 0 || d.Size > image.MaxArtifactBlob {
			return image.Artifact{}, fmt.Errorf("blob %s is %d bytes: an attached signature or record is at most %d: %w", short(d.Digest), d.Size, image.MaxArtifactBlob, errdefs.ErrInvalidArgument)
		}
		rc, err := cl.blob(ctx, repo, d, rt)
		if err != nil {
			return image.Artifact{}, fmt.Errorf("blob %s: %w", short(d.Digest), err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
		rc.Close()
		if err != nil {
			return image.Artifact{}, fmt.Errorf("blob %s: %w", short(d.Digest), err)
		}
		if int64(len(b)) != d.Size || d.Digest.Algorithm().FromBytes(b) != d.Digest {
			return image.Artifact{}, fmt.Errorf("blob %s does not match its digest: %w", short(d.Digest), errdefs.ErrDataLoss)
		}
		a.Blobs[d.Digest] = b
	}
	return a, nil
}

// PushArtifacts uploads artifacts to repository: their blobs, then each
// manifest, under its tag if it has one, else by digest.
func (cl *Client) PushArtifacts(ctx context.Context, repository string, arts []image.Artifact) error {
	ref, err := cl.Reference(repository)
	if err != nil {
		return err
	}
	repo := ref.Context()
	base, err := cl.base(repo.RegistryStr())
	if err != nil {
		return err
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(base), remote.WithAuthFromKeychain(cl.creds),
		remote.WithRetryBackoff(backoff(cl.wait, cl.tries)), remote.WithUserAgent(cl.ua)}
	done := map[digest.Digest]bool{}
	for _, a := range arts {
		for d, b := range a.Blobs {
			if done[d] {
				continue
			}
			if err := remote.WriteLayer(repo, static.NewLayer(b, types.MediaType("application/octet-stream")), opts...); err != nil {
				return fmt.Errorf("push %s: blob %s: %w", repo, short(d), classify(repo.RegistryStr(), err))
			}
			done[d] = true
		}
		desc := a.Descriptor()
		id := desc.Digest.String()
		target := repo.Digest(id).String()
		if a.Tag != "" {
			target = repo.Tag(a.Tag).String()
		}
		tref, err := cl.Reference(target)
		if err != nil {
			return err
		}
		if err := remote.Put(tref, rawManifest{b: a.Manifest, mt: types.MediaType(a.MediaType)}, opts...); err != nil {
			return fmt.Errorf("push %s: %w", target, classify(repo.RegistryStr(), err))
		}
	}
	return nil
}

// rawManifest is manifest bytes as go-containerregistry pushes them.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return bytes.Clone(r.b), nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }
