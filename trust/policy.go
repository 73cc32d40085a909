package trust

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthproject/berth/errdefs"
	"github.com/distribution/reference"
)

// ErrUntrusted is an image, signature or record the policy does not accept.
var ErrUntrusted = errors.New("not trusted")

// DefaultPolicyPaths are where containers/image looks for policy.json:
// the user's, then the system's.
func DefaultPolicyPaths() []string {
	var out []string
	if os.Geteuid() != 0 {
		if d, err := os.UserConfigDir(); err == nil {
			out = append(out, filepath.Join(d, "containers", "policy.json"))
		}
	}
	return append(out, "/etc/containers/policy.json")
}

// SignaturePolicy is a containers/image policy.json: for each docker
// scope, requirements that must all hold.
type SignaturePolicy struct {
	Default    []Requirement                       `json:"default"`
	Transports map[string]map[string][]Requirement `json:"transports,omitempty"`
	// path is the file it came from ("" for the built-in default).
	path string
}

// Requirement is one policy.json requirement. Kinds berth does not
// implement (GPG signedBy, Fulcio certificates) refuse every image, so
// that a policy never says more than is checked.
type Requirement struct {
	Type           string          `json:"type"`
	KeyPath        string          `json:"keyPath,omitempty"`
	KeyPaths       []string        `json:"keyPaths,omitempty"`
	KeyData        string          `json:"keyData,omitempty"`
	KeyDatas       []string        `json:"keyDatas,omitempty"`
	SignedIdentity *SignedIdentity `json:"signedIdentity,omitempty"`
	Fulcio         json.RawMessage `json:"fulcio,omitempty"`
	KeyType        string          `json:"keyType,omitempty"`

	keys []*PublicKey
}

// SignedIdentity says how a signature's docker-reference must relate to
// the image's name.
type SignedIdentity struct {
	Type             string `json:"type"`
	DockerReference  string `json:"dockerReference,omitempty"`
	DockerRepository string `json:"dockerRepository,omitempty"`
	Prefix           string `json:"prefix,omitempty"`
	SignedPrefix     string `json:"signedPrefix,omitempty"`
}

// AcceptAnything is the policy when no policy.json exists, as Docker
// behaves: nothing is required.
func AcceptAnything() *SignaturePolicy {
	return &SignaturePolicy{Default: []Requirement{{Type: "insecureAcceptAnything"}}}
}

// LoadSignaturePolicy reads policy.json from path, or with path "" from
// the first of DefaultPolicyPaths that exists (none: AcceptAnything).
// Every key it names is read now: a policy that cannot be enforced is an
// error, not a weaker policy.
func LoadSignaturePolicy(path string) (*SignaturePolicy, error) {
	if path == "" {
		for _, p := range DefaultPolicyPaths() {
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
		if path == "" {
			return AcceptAnything(), nil
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	p, err := ParseSignaturePolicy(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	p.path = path
	return p, nil
}

// ParseSignaturePolicy parses policy.json; relative key paths are taken
// from dir.
func ParseSignaturePolicy(b []byte, dir string) (*SignaturePolicy, error) {
	var p SignaturePolicy
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("not a valid policy.json: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if p.Default == nil {
		return nil, fmt.Errorf("no \"default\" requirements: %w", errdefs.ErrInvalidArgument)
	}
	check := func(where string, reqs []Requirement) error {
		if len(reqs) == 0 {
			return fmt.Errorf("%s: an empty list of requirements: %w", where, errdefs.ErrInvalidArgument)
		}
		for i := range reqs {
			if err := reqs[i].load(dir); err != nil {
				return fmt.Errorf("%s: requirement %d: %w", where, i, err)
			}
		}
		return nil
	}
	if err := check("default", p.Default); err != nil {
		return nil, err
	}
	for t, scopes := range p.Transports {
		for scope, reqs := range scopes {
			if err := check(fmt.Sprintf("transport %s scope %q", t, scope), reqs); err != nil {
				return nil, err
			}
		}
	}
	return &p, nil
}

func (r *Requirement) load(dir string) error {
	switch r.Type {
	case "insecureAcceptAnything", "reject":
		return nil
	case "signedBy":
		return nil // GPG: refused when evaluated
	case "sigstoreSigned":
	default:
		return fmt.Errorf("unknown requirement type %q: %w", r.Type, errdefs.ErrInvalidArgument)
	}
	if len(r.Fulcio) > 0 {
		return nil // refused when evaluated
	}
	paths := r.KeyPaths
	if r.KeyPath != "" {
		paths = append([]string{r.KeyPath}, paths...)
	}
	datas := r.KeyDatas
	if r.KeyData != "" {
		datas = append([]string{r.KeyData}, datas...)
	}
	if len(paths)+len(datas) == 0 {
		return fmt.Errorf("sigstoreSigned names no key (keyPath, keyPaths, keyData, keyDatas): %w", errdefs.ErrInvalidArgument)
	}
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		k, err := LoadPublicKey(p)
		if err != nil {
			return err
		}
		r.keys = append(r.keys, k)
	}
	for _, d := range datas {
		b, err := base64.StdEncoding.DecodeString(d)
		if err != nil {
			return fmt.Errorf("keyData is not base64: %w", errdefs.ErrInvalidArgument)
		}
		k, err := ParsePublicKey(b)
		if err != nil {
			return fmt.Errorf("keyData: %w", err)
		}
		r.keys = append(r.keys, k)
	}
	if si := r.SignedIdentity; si != nil {
		switch si.Type {
		case "matchExact", "matchRepoDigestOrExact", "matchRepository":
		case "exactReference":
			if _, err := reference.ParseNormalizedNamed(si.DockerReference); err != nil {
				return fmt.Errorf("signedIdentity exactReference %q: %v: %w", si.DockerReference, err, errdefs.ErrInvalidArgument)
			}
		case "exactRepository":
			if _, err := reference.ParseNormalizedNamed(si.DockerRepository); err != nil {
				return fmt.Errorf("signedIdentity exactRepository %q: %v: %w", si.DockerRepository, err, errdefs.ErrInvalidArgument)
			}
		case "remapIdentity":
			if si.Prefix == "" || si.SignedPrefix == "" {
				return fmt.Errorf("signedIdentity remapIdentity needs prefix and signedPrefix: %w", errdefs.ErrInvalidArgument)
			}
		default:
			return fmt.Errorf("unknown signedIdentity type %q: %w", si.Type, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// For is the requirements for an image named name (a full docker
// reference) and the scope they come from: the most specific docker
// scope that matches, else the default.
func (p *SignaturePolicy) For(name string) ([]Requirement, string) {
	scopes := p.Transports["docker"]
	if scopes != nil && name != "" {
		for _, s := range dockerScopes(name) {
			if r, ok := scopes[s]; ok {
				return r, s
			}
		}
		if r, ok := scopes[""]; ok {
			return r, "docker"
		}
	}
	return p.Default, "default"
}

// dockerScopes are the scopes containers/image tries for a docker
// reference, most specific first: the reference, the repository, each
// namespace above it, the host, then wildcards of the host's domain.
func dockerScopes(name string) []string {
	var out []string
	n, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil
	}
	out = append(out, n.String())
	repo := n.Name()
	for {
		out = append(out, repo)
		i := strings.LastIndexByte(repo, '/')
		if i < 0 {
			break
		}
		repo = repo[:i]
	}
	host := reference.Domain(n)
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	for {
		i := strings.IndexByte(host, '.')
		if i < 0 {
			break
		}
		host = host[i+1:]
		out = append(out, "*."+host)
	}
	return dedupe(out)
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	out := s[:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// identityMatches says whether a signature's docker-reference (signed)
// fits the image's name (image) under si, as containers/image decides.
func identityMatches(si *SignedIdentity, image, signed string) bool {
	typ := "matchRepoDigestOrExact"
	if si != nil {
		typ = si.Type
	}
	in, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return false
	}
	sn, err := reference.ParseNormalizedNamed(signed)
	if err != nil {
		return false
	}
	switch typ {
	case "matchExact":
		return tagged(in) && in.String() == sn.String()
	case "matchRepoDigestOrExact":
		if _, ok := in.(reference.Digested); ok && !tagged(in) {
			return in.Name() == sn.Name()
		}
		return tagged(in) && in.String() == sn.String()
	case "matchRepository":
		return in.Name() == sn.Name()
	case "exactReference":
		want, err := reference.ParseNormalizedNamed(si.DockerReference)
		return err == nil && want.String() == sn.String()
	case "exactRepository":
		want, err := reference.ParseNormalizedNamed(si.DockerRepository)
		return err == nil && want.Name() == sn.Name()
	case "remapIdentity":
		s := in.String()
		if p := si.Prefix; s == p || strings.HasPrefix(s, strings.TrimSuffix(p, "/")+"/") || strings.HasPrefix(s, p+":") || strings.HasPrefix(s, p+"@") {
			s = si.SignedPrefix + s[len(p):]
		}
		return identityMatches(nil, s, signed)
	}
	return false
}

func tagged(n reference.Named) bool {
	_, ok := n.(reference.Tagged)
	return ok
}

// Path is the file the policy was read from ("" for the built-in default).
func (p *SignaturePolicy) Path() string { return p.path }
