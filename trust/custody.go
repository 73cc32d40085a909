package trust

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/berthproject/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// The custody record format (docs/custody.md): an in-toto v1 Statement,
// in a DSSE envelope signed by the team's key, with berth's predicate.
const (
	StatementType     = "https://in-toto.io/Statement/v1"
	PayloadTypeInToto = "application/vnd.in-toto+json"
	// PredicateType is version 1 of berth's custody predicate; a record
	// of another type or version is refused, never half read.
	PredicateType    = "https://berth.dev/custody/v1"
	PredicateVersion = 1
)

// maxRecord bounds a DSSE envelope read.
const maxRecord = 1 << 20

// Statement is an in-toto v1 Statement with berth's custody predicate.
type Statement struct {
	Type          string             `json:"_type"`
	Subject       []StatementSubject `json:"subject"`
	PredicateType string             `json:"predicateType"`
	Predicate     Predicate          `json:"predicate"`
}

// StatementSubject is an in-toto resource descriptor.
type StatementSubject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Predicate is what a team vouches for.
type Predicate struct {
	Version int    `json:"version"`
	Team    string `json:"team"`
	// Image is the image the record is for (its manifest is the subject).
	Image ImageClaim `json:"image"`
	// Base is the image the team built on and checked; nil for the first
	// team, whose layers start at the bottom.
	Base *BaseClaim `json:"base,omitempty"`
	// Previous is the record of the team below, which this team checked.
	Previous *RecordRef `json:"previousRecord,omitempty"`
	// Verified lists what this team checked of its base: signatures and
	// custody records, by digest and key.
	Verified []VerifiedClaim `json:"verified,omitempty"`
	// Layers are the layers this team added, bottom first.
	Layers  []LayerClaim `json:"layers"`
	Created time.Time    `json:"created"`
}

// ImageClaim names the image a record is for.
type ImageClaim struct {
	Name         string        `json:"name,omitempty"`
	ConfigDigest digest.Digest `json:"configDigest"`
	LayerCount   int           `json:"layerCount"`
}

// BaseClaim names the base image.
type BaseClaim struct {
	Name           string        `json:"name"`
	ManifestDigest digest.Digest `json:"manifestDigest"`
	ConfigDigest   digest.Digest `json:"configDigest"`
	LayerCount     int           `json:"layerCount"`
}

// RecordRef names a custody record.
type RecordRef struct {
	Digest digest.Digest `json:"digest"`
	Team   string        `json:"team"`
	KeyID  string        `json:"keyID"`
}

// VerifiedClaim is a signature or record a team checked.
type VerifiedClaim struct {
	Kind   string        `json:"kind"` // "signature" or "custody"
	Digest digest.Digest `json:"digest"`
	KeyID  string        `json:"keyID"`
	Team   string        `json:"team,omitempty"`
}

// LayerClaim is one layer a team added.
type LayerClaim struct {
	Index     int           `json:"index"`
	Digest    digest.Digest `json:"digest"`
	DiffID    digest.Digest `json:"diffID"`
	Size      int64         `json:"size"`
	CreatedBy string        `json:"createdBy,omitempty"`
}

// Subject is an image as verification and signing see it.
type Subject struct {
	// Name is the full reference it is known by (for policy scopes and
	// signature identities).
	Name     string
	Manifest ocispec.Descriptor
	Parsed   ocispec.Manifest
	Config   ocispec.Image
}

// createdBy is the history's created_by of each layer (empty layers'
// entries skipped).
func (s Subject) createdBy() []string {
	out := make([]string, len(s.Parsed.Layers))
	i := 0
	for _, h := range s.Config.History {
		if h.EmptyLayer {
			continue
		}
		if i >= len(out) {
			break
		}
		out[i] = h.CreatedBy
		i++
	}
	return out
}

// signer and verifier adapt berth's keys to DSSE.
type signer struct{ k *PrivateKey }

func (s signer) Sign(_ context.Context, data []byte) ([]byte, error) { return s.k.sign(data) }
func (s signer) KeyID() (string, error)                              { return s.k.id, nil }

type verifier struct{ k *PublicKey }

func (v verifier) Verify(_ context.Context, data, sig []byte) error {
	if !v.k.verify(data, sig) {
		return fmt.Errorf("bad signature")
	}
	return nil
}
func (v verifier) KeyID() (string, error)   { return v.k.id, nil }
func (v verifier) Public() crypto.PublicKey { return v.k.key }

// signRecord wraps st in a DSSE envelope signed with key.
func signRecord(ctx context.Context, key *PrivateKey, st Statement) ([]byte, error) {
	body, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	es, err := dsse.NewEnvelopeSigner(signer{key})
	if err != nil {
		return nil, err
	}
	env, err := es.SignPayload(ctx, PayloadTypeInToto, body)
	if err != nil {
		return nil, fmt.Errorf("sign the custody record: %w", err)
	}
	return json.Marshal(env)
}

// record is a parsed, not yet verified custody record.
type record struct {
	digest    digest.Digest
	env       dsse.Envelope
	statement Statement
	subject   digest.Digest
}

// decodeRecord parses a DSSE envelope and its statement, checking the
// format (types, predicate version) but no signature.
func decodeRecord(b []byte) (*Statement, error) {
	r, err := parseRecord(b)
	if err != nil {
		return nil, err
	}
	return &r.statement, nil
}

func parseRecord(b []byte) (*record, error) {
	d := digest.FromBytes(b)
	bad := func(format string, a ...any) error {
		return fmt.Errorf("custody record %s: %s: %w", short(d), fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
	}
	if len(b) > maxRecord {
		return nil, bad("%d bytes, at most %d are read", len(b), maxRecord)
	}
	r := &record{digest: d}
	if err := json.Unmarshal(b, &r.env); err != nil {
		return nil, bad("not a DSSE envelope: %v", err)
	}
	if r.env.PayloadType != PayloadTypeInToto {
		return nil, bad("payload type %q, not %q", r.env.PayloadType, PayloadTypeInToto)
	}
	body, err := base64.StdEncoding.DecodeString(r.env.Payload)
	if err != nil {
		return nil, bad("the payload is not base64")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&r.statement); err != nil {
		return nil, bad("the payload is not an in-toto statement: %v", err)
	}
	st := &r.statement
	if st.Type != StatementType {
		return nil, bad("statement type %q, not %q", st.Type, StatementType)
	}
	if st.PredicateType != PredicateType {
		return nil, bad("predicate type %q is not one berth knows (%s)", st.PredicateType, PredicateType)
	}
	if st.Predicate.Version != PredicateVersion {
		return nil, bad("predicate version %d is not one berth knows (%d)", st.Predicate.Version, PredicateVersion)
	}
	if len(st.Subject) != 1 || st.Subject[0].Digest["sha256"] == "" {
		return nil, bad("the statement must have one subject with a sha256 digest")
	}
	r.subject = digest.NewDigestFromEncoded(digest.SHA256, st.Subject[0].Digest["sha256"])
	if r.subject.Validate() != nil {
		return nil, bad("subject digest %q is not valid", st.Subject[0].Digest["sha256"])
	}
	if st.Predicate.Team == "" {
		return nil, bad("no team")
	}
	if len(st.Predicate.Layers) == 0 {
		return nil, bad("team %s vouches for no layer", st.Predicate.Team)
	}
	return r, nil
}

// verifyWith checks the envelope's signature against keys; the key that
// signed it, or nil.
func (r *record) verifyWith(ctx context.Context, keys []*PublicKey) *PublicKey {
	for _, k := range keys {
		ev, err := dsse.NewEnvelopeVerifier(verifier{k})
		if err != nil {
			continue
		}
		if _, err := ev.Verify(ctx, &r.env); err == nil {
			return k
		}
	}
	return nil
}

// layerClaims describe layers [from, len) of img.
func layerClaims(img Subject, from int) ([]LayerClaim, error) {
	diffIDs := img.Config.RootFS.DiffIDs
	if len(diffIDs) != len(img.Parsed.Layers) {
		return nil, fmt.Errorf("image %s: %d layers but %d diff_ids: %w", img.Name, len(img.Parsed.Layers), len(diffIDs), errdefs.ErrInvalidArgument)
	}
	cb := img.createdBy()
	var out []LayerClaim
	for i := from; i < len(img.Parsed.Layers); i++ {
		l := img.Parsed.Layers[i]
		out = append(out, LayerClaim{Index: i, Digest: l.Digest, DiffID: diffIDs[i], Size: l.Size, CreatedBy: cb[i]})
	}
	return out, nil
}
