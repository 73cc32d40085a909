package trust

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Artifact types and tags under which signatures and custody records are
// attached to an image in a registry and in an OCI layout.
const (
	// ArtifactTypeSignature is cosign's for signatures given as referrers.
	ArtifactTypeSignature = "application/vnd.dev.cosign.artifact.sig.v1+json"
	// ArtifactTypeCustody is berth's for custody records given as referrers.
	ArtifactTypeCustody = "application/vnd.berth.custody.v1+json"
	// MediaTypeDSSE is a layer holding a DSSE envelope, as cosign's
	// attestations have.
	MediaTypeDSSE = "application/vnd.dsse.envelope.v1+json"
	// AnnotationPredicateType names an attestation layer's predicate.
	AnnotationPredicateType = "predicateType"
)

// SignatureTag and AttestationTag are the tags cosign (and containers/image
// with use-sigstore-attachments) keep a manifest's signatures and
// attestations under: sha256-<hex>.sig and sha256-<hex>.att.
func SignatureTag(m digest.Digest) string {
	return m.Algorithm().String() + "-" + m.Encoded() + ".sig"
}

// AttestationTag: see SignatureTag.
func AttestationTag(m digest.Digest) string {
	return m.Algorithm().String() + "-" + m.Encoded() + ".att"
}

// TagSubject is the manifest digest a sha256-<hex>.sig or .att tag names.
func TagSubject(tag string) (digest.Digest, bool) {
	base, ok := strings.CutSuffix(tag, ".sig")
	if !ok {
		if base, ok = strings.CutSuffix(tag, ".att"); !ok {
			return "", false
		}
	}
	alg, hex, ok := strings.Cut(base, "-")
	if !ok {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
	return d, d.Validate() == nil
}

// Artifacts is what is attached to subject as OCI artifacts. With tagged,
// each kind comes twice: cosign's tagged form (no subject, tag
// sha256-<hex>.sig or .att, which cosign and containers/image read) and a
// referrer (with subject and artifactType, for the referrers API);
// without, only referrers (for an OCI layout).
func Artifacts(subject ocispec.Descriptor, a Attached, tagged bool) ([]image.Artifact, error) {
	subj := &ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	var out []image.Artifact
	add := func(layers []ocispec.Descriptor, blobs map[digest.Digest][]byte, artifactType, tag string) error {
		if len(layers) == 0 {
			return nil
		}
		if tag != "" {
			cfg := cosignConfig(layers)
			blobs[digest.FromBytes(cfg)] = cfg
			a, err := artifact(ocispec.Manifest{Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}, Layers: layers}, blobs, "")
			if err != nil {
				return err
			}
			a.Tag = tag
			out = append(out, a)
		}
		blobs2 := map[digest.Digest][]byte{}
		for d, b := range blobs {
			blobs2[d] = b
		}
		a, err := artifact(ocispec.Manifest{ArtifactType: artifactType, Config: ocispec.DescriptorEmptyJSON, Layers: layers, Subject: subj}, blobs2, artifactType)
		if err != nil {
			return err
		}
		out = append(out, a)
		return nil
	}
	var layers []ocispec.Descriptor
	blobs := map[digest.Digest][]byte{}
	for _, s := range a.Signatures {
		d := digest.FromBytes(s.Payload)
		blobs[d] = s.Payload
		layers = append(layers, ocispec.Descriptor{MediaType: MediaTypeSimpleSigning, Digest: d, Size: int64(len(s.Payload)),
			Annotations: map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(s.Signature)}})
	}
	tag := ""
	if tagged {
		tag = SignatureTag(subject.Digest)
	}
	if err := add(layers, blobs, ArtifactTypeSignature, tag); err != nil {
		return nil, err
	}
	layers, blobs = nil, map[digest.Digest][]byte{}
	for _, r := range a.Records {
		d := digest.FromBytes(r)
		blobs[d] = r
		layers = append(layers, ocispec.Descriptor{MediaType: MediaTypeDSSE, Digest: d, Size: int64(len(r)),
			Annotations: map[string]string{AnnotationPredicateType: PredicateType}})
	}
	if tagged {
		tag = AttestationTag(subject.Digest)
	}
	if err := add(layers, blobs, ArtifactTypeCustody, tag); err != nil {
		return nil, err
	}
	return out, nil
}

// cosignConfig is the image config cosign gives a signature manifest:
// its layers as diff_ids, nothing else.
func cosignConfig(layers []ocispec.Descriptor) []byte {
	ids := make([]string, len(layers))
	for i, l := range layers {
		ids[i] = l.Digest.String()
	}
	b, _ := json.Marshal(map[string]any{
		"architecture": "", "os": "", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": ids},
	})
	return b
}

func artifact(m ocispec.Manifest, blobs map[digest.Digest][]byte, artifactType string) (image.Artifact, error) {
	m.SchemaVersion = 2
	m.MediaType = ocispec.MediaTypeImageManifest
	if m.Config.Digest == ocispec.DescriptorEmptyJSON.Digest {
		blobs[m.Config.Digest] = []byte("{}")
	}
	b, err := json.Marshal(m)
	if err != nil {
		return image.Artifact{}, err
	}
	return image.Artifact{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType, Manifest: b, Blobs: blobs}, nil
}

// FromArtifact reads the signatures and custody records an artifact holds,
// and the manifest they are attached to: its subject, or for cosign's
// tagged form the digest its tag names. Layers of other kinds are
// skipped; nothing is verified here.
func FromArtifact(a image.Artifact) (digest.Digest, Attached, error) {
	desc := a.Descriptor()
	var m ocispec.Manifest
	if err := json.Unmarshal(a.Manifest, &m); err != nil {
		return "", Attached{}, fmt.Errorf("artifact %s: not an OCI manifest: %v: %w", short(desc.Digest), err, errdefs.ErrInvalidArgument)
	}
	var subject digest.Digest
	if m.Subject != nil {
		subject = m.Subject.Digest
	} else if d, ok := TagSubject(a.Tag); ok {
		subject = d
	}
	if subject.Validate() != nil {
		return "", Attached{}, fmt.Errorf("artifact %s names no manifest it is attached to: %w", short(desc.Digest), errdefs.ErrInvalidArgument)
	}
	var out Attached
	for i, l := range m.Layers {
		b, ok := a.Blobs[l.Digest]
		if !ok {
			return "", Attached{}, fmt.Errorf("artifact %s: layer %d (%s) is missing: %w", short(desc.Digest), i, short(l.Digest), errdefs.ErrNotFound)
		}
		if digest.FromBytes(b) != l.Digest {
			return "", Attached{}, fmt.Errorf("artifact %s: layer %d does not match its digest %s: %w", short(desc.Digest), i, short(l.Digest), errdefs.ErrDataLoss)
		}
		switch l.MediaType {
		case MediaTypeSimpleSigning:
			sig, err := base64.StdEncoding.DecodeString(l.Annotations[AnnotationSignature])
			if err != nil || len(sig) == 0 {
				return "", Attached{}, fmt.Errorf("artifact %s: signature %d has no valid %s annotation: %w", short(desc.Digest), i, AnnotationSignature, errdefs.ErrInvalidArgument)
			}
			out.Signatures = append(out.Signatures, Signature{Payload: b, Signature: sig})
		case MediaTypeDSSE:
			out.Records = append(out.Records, b)
		}
	}
	return subject, out, nil
}

// Collect reads artifacts into collected evidence, by subject.
func Collect(arts []image.Artifact) (Collected, error) {
	c := Collected{}
	for _, a := range arts {
		subject, att, err := FromArtifact(a)
		if err != nil {
			return nil, err
		}
		c.Add(subject, att)
	}
	return c, nil
}

// Chain is everything the local store holds that verifying subject may
// need: what is attached to it and, through the custody records, to the
// images it was built on. It is what a save carries beside the image.
func (s *Store) Chain(subject digest.Digest) (map[digest.Digest]Attached, error) {
	out := map[digest.Digest]Attached{}
	todo := []digest.Digest{subject}
	for len(todo) > 0 && len(out) < 64 {
		d := todo[0]
		todo = todo[1:]
		if _, done := out[d]; done {
			continue
		}
		a, err := s.Attached("", d)
		if err != nil {
			return nil, err
		}
		out[d] = a
		for _, r := range a.Records {
			if st, err := decodeRecord(r); err == nil && st.Predicate.Base != nil {
				todo = append(todo, st.Predicate.Base.ManifestDigest)
			}
		}
	}
	for d, a := range out {
		if a.Empty() {
			delete(out, d)
		}
	}
	return out, nil
}

// ChainArtifacts is Chain as OCI artifacts for a layout, in a stable order.
func (s *Store) ChainArtifacts(subject ocispec.Descriptor) ([]image.Artifact, error) {
	chain, err := s.Chain(subject.Digest)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(chain))
	for d := range chain {
		keys = append(keys, d.String())
	}
	sort.Strings(keys)
	var out []image.Artifact
	for _, k := range keys {
		d := digest.Digest(k)
		subj := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d}
		if d == subject.Digest {
			subj = subject
		}
		arts, err := Artifacts(subj, chain[d], false)
		if err != nil {
			return nil, err
		}
		out = append(out, arts...)
	}
	return out, nil
}
