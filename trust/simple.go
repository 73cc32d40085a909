package trust

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/berthproject/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// Media types and annotations of sigstore signatures as cosign and
// containers/image attach them.
const (
	MediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	AnnotationSignature    = "dev.cosignproject.cosign/signature"
	simpleSigningType      = "cosign container image signature"
)

// maxSignature bounds a signature payload: a simple-signing payload is a
// few hundred bytes, and a bigger one is refused unread.
const maxSignature = 64 << 10

// A Signature is a sigstore simple-signing signature: the payload (which
// names a docker reference and a manifest digest) and the ECDSA signature
// of its bytes.
type Signature struct {
	Payload   []byte `json:"payload"`
	Signature []byte `json:"signature"`
}

// Claim is what a simple-signing payload says.
type Claim struct {
	DockerReference string
	ManifestDigest  digest.Digest
}

// Digest names the signature: the digest of its payload blob, the way a
// registry stores it.
func (s Signature) Digest() digest.Digest { return digest.FromBytes(s.Payload) }

type simplePayload struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// Sign makes a simple-signing signature saying that the image named ref
// (a full docker reference, as it is pulled) has the manifest m.
func Sign(key *PrivateKey, ref string, m digest.Digest) (Signature, error) {
	if err := m.Validate(); err != nil {
		return Signature{}, fmt.Errorf("sign %s: manifest digest %q: %v: %w", ref, m, err, errdefs.ErrInvalidArgument)
	}
	var p simplePayload
	p.Critical.Identity.DockerReference = ref
	p.Critical.Image.DockerManifestDigest = m.String()
	p.Critical.Type = simpleSigningType
	p.Optional = map[string]any{"creator": "berth", "timestamp": time.Now().Unix()}
	b, err := json.Marshal(p)
	if err != nil {
		return Signature{}, err
	}
	sig, err := key.sign(b)
	if err != nil {
		return Signature{}, fmt.Errorf("sign %s: %w", ref, err)
	}
	return Signature{Payload: b, Signature: sig}, nil
}

// ParseClaim reads a payload's claim without checking any signature:
// what it says is not to be believed before Verify.
func ParseClaim(payload []byte) (Claim, error) {
	if len(payload) > maxSignature {
		return Claim{}, fmt.Errorf("signature payload of %d bytes: at most %d are read: %w", len(payload), maxSignature, errdefs.ErrInvalidArgument)
	}
	var p simplePayload
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&p); err != nil {
		return Claim{}, fmt.Errorf("signature payload: not simple-signing JSON: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if p.Critical.Type != simpleSigningType {
		return Claim{}, fmt.Errorf("signature payload: type %q, not %q: %w", p.Critical.Type, simpleSigningType, errdefs.ErrInvalidArgument)
	}
	d, err := digest.Parse(p.Critical.Image.DockerManifestDigest)
	if err != nil {
		return Claim{}, fmt.Errorf("signature payload: manifest digest %q: %v: %w", p.Critical.Image.DockerManifestDigest, err, errdefs.ErrInvalidArgument)
	}
	if p.Critical.Identity.DockerReference == "" {
		return Claim{}, fmt.Errorf("signature payload: no docker-reference: %w", errdefs.ErrInvalidArgument)
	}
	return Claim{DockerReference: p.Critical.Identity.DockerReference, ManifestDigest: d}, nil
}

// VerifySignature checks s with key and returns its claim, which holds
// only when the error is nil. It does not check the claim against an
// image: Policy does that.
func VerifySignature(key *PublicKey, s Signature) (Claim, error) {
	if len(s.Payload) > maxSignature {
		return Claim{}, fmt.Errorf("signature %s: a payload of %d bytes: at most %d are read: %w", short(s.Digest()), len(s.Payload), maxSignature, errdefs.ErrInvalidArgument)
	}
	if !key.verify(s.Payload, s.Signature) {
		return Claim{}, fmt.Errorf("signature %s: not made by key %s: %w", short(s.Digest()), key.Short(), ErrUntrusted)
	}
	return ParseClaim(s.Payload)
}

// short is a digest's first 12 hex digits, for messages.
func short(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}
