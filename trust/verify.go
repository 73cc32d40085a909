package trust

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berthproject/berth/errdefs"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
)

// Policy is what an image must satisfy: policy.json's signature
// requirements and berth's custody rules. Both are required to build one;
// there is no zero policy that accepts everything by accident.
type Policy struct {
	Signatures *SignaturePolicy
	Custody    *CustodyPolicy
}

// NewPolicy joins the two halves; neither may be nil.
func NewPolicy(sig *SignaturePolicy, custody *CustodyPolicy) (*Policy, error) {
	if sig == nil || custody == nil {
		return nil, fmt.Errorf("a trust policy needs its signature and custody halves: %w", errdefs.ErrInvalidArgument)
	}
	return &Policy{Signatures: sig, Custody: custody}, nil
}

// VerifyError is an image the policy refuses: which layer or team, and why.
type VerifyError struct {
	Image string
	// Layer is the first failing layer's index, -1 when the failure is not
	// one layer's.
	Layer       int
	LayerDigest digest.Digest
	Team        string
	Reason      string
}

func (e *VerifyError) Error() string {
	// The image is not named: callers say which (pull NAME: ..., image
	// NAME: ...), so that it is not said twice.
	var parts []string
	if e.Layer >= 0 {
		parts = append(parts, fmt.Sprintf("layer %d (%s)", e.Layer, short(e.LayerDigest)))
	}
	if e.Team != "" {
		parts = append(parts, "team "+e.Team)
	}
	return strings.Join(append(parts, e.Reason), ": ")
}

func (e *VerifyError) Unwrap() error { return ErrUntrusted }

// Result is what verification found: each requirement that held, each
// signature, each team and the layers it vouched for.
type Result struct {
	Image  string        `json:"image"`
	Digest digest.Digest `json:"digest"`
	// SignatureScope is the policy.json scope that applied.
	SignatureScope string            `json:"signatureScope"`
	Requirements   []string          `json:"requirements"`
	Signatures     []SignatureResult `json:"signatures,omitempty"`
	// CustodyScope is the custody policy scope ("" if none applied).
	CustodyScope string        `json:"custodyScope,omitempty"`
	Teams        []TeamResult  `json:"teams,omitempty"`
	Layers       []LayerResult `json:"layers"`
}

// SignatureResult is a signature that verified.
type SignatureResult struct {
	Digest    digest.Digest `json:"digest"`
	KeyID     string        `json:"keyID"`
	Reference string        `json:"dockerReference"`
}

// TeamResult is one team's verified record.
type TeamResult struct {
	Team    string        `json:"team"`
	KeyID   string        `json:"keyID"`
	Record  digest.Digest `json:"record"`
	Subject digest.Digest `json:"subject"`
	// First and Last are the layers it vouched for.
	First    int             `json:"firstLayer"`
	Last     int             `json:"lastLayer"`
	Previous *RecordRef      `json:"previousRecord,omitempty"`
	Verified []VerifiedClaim `json:"verified,omitempty"`
	Created  time.Time       `json:"created"`
}

// LayerResult is one layer and who vouched for it.
type LayerResult struct {
	Index     int           `json:"index"`
	Digest    digest.Digest `json:"digest"`
	DiffID    digest.Digest `json:"diffID"`
	Size      int64         `json:"size"`
	CreatedBy string        `json:"createdBy"`
	Team      string        `json:"team,omitempty"`
	KeyID     string        `json:"keyID,omitempty"`
	Record    digest.Digest `json:"record,omitempty"`
	Verified  bool          `json:"verified"`
}

// Verify checks img against the policy with the evidence at hand. The
// error, when there is one, is a *VerifyError naming the first failing
// layer or team; the result is then nil.
func Verify(ctx context.Context, p *Policy, img Subject, ev Evidence) (*Result, error) {
	if p == nil || ev == nil {
		return nil, fmt.Errorf("verify %s: a policy and evidence are required: %w", img.Name, errdefs.ErrInvalidArgument)
	}
	name := img.Name
	if name == "" {
		name = img.Manifest.Digest.String()
	}
	res := &Result{Image: name, Digest: img.Manifest.Digest}
	fail := func(team string, layer int, format string, a ...any) error {
		e := &VerifyError{Image: name, Layer: layer, Team: team, Reason: fmt.Sprintf(format, a...)}
		if layer >= 0 && layer < len(img.Parsed.Layers) {
			e.LayerDigest = img.Parsed.Layers[layer].Digest
		}
		return e
	}
	if len(img.Config.RootFS.DiffIDs) != len(img.Parsed.Layers) {
		return nil, fail("", -1, "%d layers but %d diff_ids in its config", len(img.Parsed.Layers), len(img.Config.RootFS.DiffIDs))
	}
	att, err := ev.Attached(repositoryOf(img.Name), img.Manifest.Digest)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", name, err)
	}
	if err := verifySignatures(p.Signatures, img, att, res, fail); err != nil {
		return nil, err
	}
	cb := img.createdBy()
	for i, l := range img.Parsed.Layers {
		res.Layers = append(res.Layers, LayerResult{Index: i, Digest: l.Digest, DiffID: img.Config.RootFS.DiffIDs[i], Size: l.Size, CreatedBy: cb[i]})
	}
	rule, scope := p.Custody.For(img.Name)
	if rule == nil {
		return res, nil
	}
	res.CustodyScope = scope
	if err := verifyCustody(ctx, rule, img, att, ev, res, fail); err != nil {
		return nil, err
	}
	return res, nil
}

func repositoryOf(name string) string {
	if n, err := reference.ParseNormalizedNamed(name); err == nil {
		return n.Name()
	}
	return ""
}

type failFunc func(team string, layer int, format string, a ...any) error

func verifySignatures(sp *SignaturePolicy, img Subject, att Attached, res *Result, fail failFunc) error {
	reqs, scope := sp.For(img.Name)
	res.SignatureScope = scope
	for _, r := range reqs {
		switch r.Type {
		case "insecureAcceptAnything":
			res.Requirements = append(res.Requirements, "insecureAcceptAnything")
		case "reject":
			return fail("", -1, "the signature policy rejects every image in scope %s", scope)
		case "signedBy":
			return fail("", -1, "the signature policy (scope %s) requires a GPG signature (signedBy), which berth does not check", scope)
		case "sigstoreSigned":
			if len(r.Fulcio) > 0 {
				return fail("", -1, "the signature policy (scope %s) requires a Fulcio certificate, which berth does not check", scope)
			}
			var why []string
			ok := false
			for _, s := range att.Signatures {
				for _, k := range r.keys {
					claim, err := VerifySignature(k, s)
					if err != nil {
						continue
					}
					if claim.ManifestDigest != img.Manifest.Digest {
						why = append(why, fmt.Sprintf("signature %s by key %s is for manifest %s", short(s.Digest()), k.Short(), short(claim.ManifestDigest)))
						continue
					}
					if !identityMatches(r.SignedIdentity, img.Name, claim.DockerReference) {
						why = append(why, fmt.Sprintf("signature %s by key %s is for %s, not %s", short(s.Digest()), k.Short(), claim.DockerReference, img.Name))
						continue
					}
					ok = true
					res.Signatures = append(res.Signatures, SignatureResult{Digest: s.Digest(), KeyID: k.ID(), Reference: claim.DockerReference})
				}
			}
			if !ok {
				keys := make([]string, len(r.keys))
				for i, k := range r.keys {
					keys[i] = k.Short()
				}
				if len(why) > 0 {
					return fail("", -1, "%s", why[0])
				}
				if len(att.Signatures) == 0 {
					return fail("", -1, "no signature, and the signature policy (scope %s) requires one by key %s", scope, strings.Join(keys, " or "))
				}
				return fail("", -1, "none of its %d signatures is by a key the signature policy (scope %s) trusts (%s)", len(att.Signatures), scope, strings.Join(keys, ", "))
			}
			res.Requirements = append(res.Requirements, "sigstoreSigned")
		}
	}
	return nil
}

// verified is a record whose signature checked out, with the key.
type verified struct {
	*record
	key *PublicKey
}

// checkRecords parses and verifies the records attached to subject
// against the rule's keys for the team each claims, returning those
// that verify and, when none does, why the first failed.
func checkRecords(ctx context.Context, rule *CustodyRule, img Subject, subject digest.Digest, recs [][]byte, fail failFunc) ([]verified, error) {
	var good []verified
	var first error
	note := func(err error) {
		if first == nil {
			first = err
		}
	}
	for _, b := range recs {
		r, err := parseRecord(b)
		if err != nil {
			note(fail("", -1, "%v", strings.TrimSuffix(err.Error(), ": "+errdefs.ErrInvalidArgument.Error())))
			continue
		}
		team := r.statement.Predicate.Team
		t := rule.team(team)
		if t == nil {
			note(fail(team, -1, "record %s is by a team the policy does not name (it requires %s)", short(r.digest), strings.Join(rule.TeamNames(), " → ")))
			continue
		}
		k := r.verifyWith(ctx, t.keys)
		if k == nil {
			note(fail(team, -1, "record %s: its signature does not verify with any key the policy trusts for %s (signed by another key, or the payload was altered)", short(r.digest), team))
			continue
		}
		if r.subject != subject {
			if i, ok := replacedLayer(img, r); ok {
				note(fail(team, i, "signed for %s here, the image has %s: the layer was replaced after signing (record %s is for image %s)", short(r.statement.Predicate.Layers[i-r.statement.Predicate.Layers[0].Index].Digest), short(img.Parsed.Layers[i].Digest), short(r.digest), short(r.subject)))
				continue
			}
			note(fail(team, -1, "record %s is for image %s, not %s: it was copied from another image", short(r.digest), short(r.subject), short(subject)))
			continue
		}
		good = append(good, verified{record: r, key: k})
	}
	return good, first
}

func verifyCustody(ctx context.Context, rule *CustodyRule, img Subject, att Attached, ev Evidence, res *Result, fail failFunc) error {
	n := len(img.Parsed.Layers)
	teams := rule.TeamNames()
	order := strings.Join(teams, " → ")
	good, why := checkRecords(ctx, rule, img, img.Manifest.Digest, att.Records, fail)
	if len(good) == 0 {
		if why != nil {
			return why
		}
		if n == 0 {
			return fail(teams[len(teams)-1], -1, "no custody record (the policy requires %s)", order)
		}
		return fail(teams[len(teams)-1], n-1, "no custody record for this image: the layer is not attributed (the policy requires %s)", order)
	}
	// The top record: the one by the policy's last team if there is one,
	// else the first that verified.
	cur := good[0]
	for _, g := range good {
		if g.statement.Predicate.Team == teams[len(teams)-1] {
			cur = g
			break
		}
	}
	var chain []verified
	end := n - 1
	for {
		p := cur.statement.Predicate
		team := p.Team
		for _, c := range chain {
			if c.digest == cur.digest {
				return fail(team, -1, "record %s appears twice in the chain", short(cur.digest))
			}
		}
		last := p.Layers[len(p.Layers)-1].Index
		if last < end {
			after := "its record"
			if len(chain) > 0 {
				after = "team " + team + "'s record and below team " + chain[0].statement.Predicate.Team + "'s"
			} else {
				after = "team " + team + "'s record, the last"
			}
			return fail("", last+1, "not attributed to any team: it was added after %s", after)
		}
		if last > end {
			return fail(team, end+1, "record %s vouches for layers up to %d, but its successor's base has %d", short(cur.digest), last, end+1)
		}
		for j, lc := range p.Layers {
			want := last - (len(p.Layers) - 1) + j
			if lc.Index != want {
				return fail(team, want, "record %s does not cover a contiguous run of layers", short(cur.digest))
			}
			if lc.Index < 0 || lc.Index >= n {
				return fail(team, -1, "record %s names layer %d of a %d-layer image", short(cur.digest), lc.Index, n)
			}
			l := img.Parsed.Layers[lc.Index]
			if l.Digest != lc.Digest {
				return fail(team, lc.Index, "the image has %s where team %s signed for %s: the layer was replaced after signing", short(l.Digest), team, short(lc.Digest))
			}
			if img.Config.RootFS.DiffIDs[lc.Index] != lc.DiffID {
				return fail(team, lc.Index, "diff_id %s is not the %s team %s signed for: the layer was replaced after signing", short(img.Config.RootFS.DiffIDs[lc.Index]), short(lc.DiffID), team)
			}
		}
		first := p.Layers[0].Index
		chain = append([]verified{cur}, chain...)
		if p.Base == nil {
			if first != 0 {
				return fail(team, 0, "not attributed: team %s's record names no base, yet starts at layer %d", team, first)
			}
			break
		}
		if p.Base.LayerCount != first {
			return fail(team, first, "record %s says its base has %d layers, but its own start at %d", short(cur.digest), p.Base.LayerCount, first)
		}
		if p.Previous == nil {
			if first == 0 {
				break
			}
			if rule.RequireAll() {
				return fail("", first-1, "not attributed: team %s's base %s carries no custody record it checked", team, p.Base.Name)
			}
			break
		}
		batt, err := ev.Attached(repositoryOf(p.Base.Name), p.Base.ManifestDigest)
		if err != nil {
			return fail(team, -1, "the record of its base %s (team %s's, %s) cannot be fetched: %v", p.Base.Name, p.Previous.Team, short(p.Previous.Digest), err)
		}
		var prev []byte
		for _, b := range batt.Records {
			if digest.FromBytes(b) == p.Previous.Digest {
				prev = b
			}
		}
		if prev == nil {
			return fail(p.Previous.Team, -1, "team %s's record names record %s of base %s, which is not to be found", team, short(p.Previous.Digest), p.Base.Name)
		}
		pg, perr := checkRecords(ctx, rule, img, p.Base.ManifestDigest, [][]byte{prev}, fail)
		if len(pg) == 0 {
			return perr
		}
		if pg[0].statement.Predicate.Team != p.Previous.Team {
			return fail(team, -1, "record %s names team %s's record, but that record is by team %s", short(cur.digest), p.Previous.Team, pg[0].statement.Predicate.Team)
		}
		cur = pg[0]
		end = first - 1
	}
	// The teams, bottom up, must be the policy's, in its order.
	got := make([]string, len(chain))
	for i, c := range chain {
		got[i] = c.statement.Predicate.Team
	}
	if strings.Join(got, "\x00") != strings.Join(teams, "\x00") {
		for _, t := range teams {
			if !contains(got, t) {
				// A record that claims the team but failed says more.
				var ve *VerifyError
				if errors.As(why, &ve) && ve.Team == t {
					return why
				}
				return fail(t, -1, "no custody record in the chain %s (the policy requires %s)", strings.Join(got, " → "), order)
			}
		}
		return fail("", -1, "teams in the wrong order: %s, the policy requires %s", strings.Join(got, " → "), order)
	}
	for _, c := range chain {
		p := c.statement.Predicate
		tr := TeamResult{Team: p.Team, KeyID: c.key.ID(), Record: c.digest, Subject: c.subject, First: p.Layers[0].Index, Last: p.Layers[len(p.Layers)-1].Index, Previous: p.Previous, Verified: p.Verified, Created: p.Created}
		res.Teams = append(res.Teams, tr)
		for i := tr.First; i <= tr.Last; i++ {
			l := &res.Layers[i]
			l.Team, l.KeyID, l.Record, l.Verified = p.Team, c.key.ID(), c.digest, true
		}
	}
	return nil
}

// replacedLayer is the first layer of img that r vouched for under
// another digest, when r's layers are otherwise where img has layers.
func replacedLayer(img Subject, r *record) (int, bool) {
	ls := r.statement.Predicate.Layers
	for j, lc := range ls {
		if lc.Index != ls[0].Index+j || lc.Index < 0 || lc.Index >= len(img.Parsed.Layers) {
			return 0, false
		}
	}
	for _, lc := range ls {
		if img.Parsed.Layers[lc.Index].Digest != lc.Digest {
			return lc.Index, true
		}
	}
	return 0, false
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// CustodyRequest is a team vouching for the layers it added to an image.
type CustodyRequest struct {
	Key  *PrivateKey
	Team string
	// Image is what the record is for.
	Image Subject
	// Base is what the team built on; nil for the first team, which
	// vouches for every layer from the bottom.
	Base *Subject
	// BaseEvidence is where the base's signatures and records are found.
	BaseEvidence Evidence
}

// SignCustody verifies the base under p, checks that its layers are
// exactly the bottom of the image's, and makes the team's record: a
// signed DSSE envelope of an in-toto statement. It returns the record
// and the base's verification.
func SignCustody(ctx context.Context, p *Policy, req CustodyRequest) ([]byte, *Result, error) {
	img := req.Image
	if req.Key == nil || req.Team == "" {
		return nil, nil, fmt.Errorf("custody sign %s: a key and a team are required: %w", img.Name, errdefs.ErrInvalidArgument)
	}
	pred := Predicate{Version: PredicateVersion, Team: req.Team, Created: time.Now().UTC().Truncate(time.Second),
		Image: ImageClaim{Name: img.Name, ConfigDigest: img.Parsed.Config.Digest, LayerCount: len(img.Parsed.Layers)}}
	from := 0
	var baseRes *Result
	if b := req.Base; b != nil {
		if req.BaseEvidence == nil {
			return nil, nil, fmt.Errorf("custody sign %s: no evidence for the base: %w", img.Name, errdefs.ErrInvalidArgument)
		}
		res, err := Verify(ctx, p, *b, req.BaseEvidence)
		if err != nil {
			return nil, nil, fmt.Errorf("custody sign %s: the base does not verify: %w", img.Name, err)
		}
		baseRes = res
		if res.CustodyScope == "" {
			if att, err := req.BaseEvidence.Attached(repositoryOf(b.Name), b.Manifest.Digest); err == nil && len(att.Records) > 0 {
				return nil, nil, fmt.Errorf("custody sign %s: base %s carries custody records but no custody policy covers it, so they cannot be checked: set one with berth trust set: %w", img.Name, b.Name, ErrUntrusted)
			}
		}
		bl, il := b.Parsed.Layers, img.Parsed.Layers
		if len(bl) >= len(il) {
			return nil, nil, fmt.Errorf("custody sign %s: base %s has %d layers and the image %d: the team must add at least one: %w", img.Name, b.Name, len(bl), len(il), errdefs.ErrInvalidArgument)
		}
		for i := range bl {
			if bl[i].Digest != il[i].Digest || i >= len(b.Config.RootFS.DiffIDs) || i >= len(img.Config.RootFS.DiffIDs) || b.Config.RootFS.DiffIDs[i] != img.Config.RootFS.DiffIDs[i] {
				return nil, nil, fmt.Errorf("custody sign %s: base %s is not a prefix of the image: layer %d is %s in the base and %s in the image: %w", img.Name, b.Name, i, short(bl[i].Digest), short(il[i].Digest), errdefs.ErrInvalidArgument)
			}
		}
		from = len(bl)
		pred.Base = &BaseClaim{Name: b.Name, ManifestDigest: b.Manifest.Digest, ConfigDigest: b.Parsed.Config.Digest, LayerCount: len(bl)}
		for _, s := range res.Signatures {
			pred.Verified = append(pred.Verified, VerifiedClaim{Kind: "signature", Digest: s.Digest, KeyID: s.KeyID})
		}
		for _, t := range res.Teams {
			pred.Verified = append(pred.Verified, VerifiedClaim{Kind: "custody", Digest: t.Record, KeyID: t.KeyID, Team: t.Team})
		}
		if n := len(res.Teams); n > 0 {
			top := res.Teams[n-1]
			pred.Previous = &RecordRef{Digest: top.Record, Team: top.Team, KeyID: top.KeyID}
		}
	}
	layers, err := layerClaims(img, from)
	if err != nil {
		return nil, nil, fmt.Errorf("custody sign: %w", err)
	}
	pred.Layers = layers
	name := repositoryOf(img.Name)
	if name == "" {
		name = img.Name
	}
	st := Statement{Type: StatementType, PredicateType: PredicateType, Predicate: pred,
		Subject: []StatementSubject{{Name: name, Digest: map[string]string{"sha256": img.Manifest.Digest.Encoded()}}}}
	if img.Manifest.Digest.Algorithm() != digest.SHA256 {
		return nil, nil, fmt.Errorf("custody sign %s: the manifest digest is %s, records name sha256 manifests: %w", img.Name, img.Manifest.Digest.Algorithm(), errdefs.ErrNotImplemented)
	}
	rec, err := signRecord(ctx, req.Key, st)
	if err != nil {
		return nil, nil, err
	}
	return rec, baseRes, nil
}

// IsUntrusted says err is a policy refusal.
func IsUntrusted(err error) bool { return errors.Is(err, ErrUntrusted) }
