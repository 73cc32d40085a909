package trust

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/internal/atomicfile"
	"github.com/distribution/reference"
)

// CustodyPolicyVersion is the custody policy file format this berth reads.
const CustodyPolicyVersion = 1

// CustodyPolicy is berth's custody policy file (docs/custody.md): for a
// registry, a repository or a repository prefix, the teams that must have
// vouched for an image's layers, in order from the bottom layer up.
type CustodyPolicy struct {
	Version int                     `json:"version"`
	Scopes  map[string]*CustodyRule `json:"scopes"`
	path    string
}

// CustodyRule is what one scope requires.
type CustodyRule struct {
	// Teams, bottom first: the first team's record covers the first
	// layers, each next team's the layers on top of its base.
	Teams []TeamKeys `json:"teams"`
	// RequireAllLayers (default true): every layer belongs to a team.
	// False lets layers below the first team's (a third-party base) go
	// unattributed; layers above the last record never may.
	RequireAllLayers *bool `json:"requireAllLayers,omitempty"`
}

// TeamKeys is a team and the public keys it signs with.
type TeamKeys struct {
	Name string `json:"name"`
	// Keys are PEM public keys, kept in the file so that the policy does
	// not change when a file elsewhere does.
	Keys     []string `json:"keys,omitempty"`
	KeyPaths []string `json:"keyPaths,omitempty"`

	keys []*PublicKey
}

// RequireAll says whether every layer must be attributed.
func (r *CustodyRule) RequireAll() bool { return r.RequireAllLayers == nil || *r.RequireAllLayers }

// TeamNames are the rule's teams in order.
func (r *CustodyRule) TeamNames() []string {
	out := make([]string, len(r.Teams))
	for i, t := range r.Teams {
		out[i] = t.Name
	}
	return out
}

func (r *CustodyRule) team(name string) *TeamKeys {
	for i := range r.Teams {
		if r.Teams[i].Name == name {
			return &r.Teams[i]
		}
	}
	return nil
}

// DefaultCustodyPolicyPath is where the custody policy lives: /etc/berth
// for root, the user's config directory otherwise.
func DefaultCustodyPolicyPath() string {
	if os.Geteuid() != 0 {
		if d, err := os.UserConfigDir(); err == nil {
			return filepath.Join(d, "berth", "custody.json")
		}
	}
	return "/etc/berth/custody.json"
}

// LoadCustodyPolicy reads the custody policy at path (a missing file is an
// empty policy: no custody is required anywhere).
func LoadCustodyPolicy(path string) (*CustodyPolicy, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &CustodyPolicy{Version: CustodyPolicyVersion, Scopes: map[string]*CustodyRule{}, path: path}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("custody policy %s: %w", path, err)
	}
	p, err := ParseCustodyPolicy(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("custody policy %s: %w", path, err)
	}
	p.path = path
	return p, nil
}

// ParseCustodyPolicy parses a custody policy; relative key paths are
// taken from dir.
func ParseCustodyPolicy(b []byte, dir string) (*CustodyPolicy, error) {
	var p CustodyPolicy
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("not a valid custody policy: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if p.Version != CustodyPolicyVersion {
		return nil, fmt.Errorf("version %d: berth reads custody policy version %d: %w", p.Version, CustodyPolicyVersion, errdefs.ErrInvalidArgument)
	}
	if p.Scopes == nil {
		p.Scopes = map[string]*CustodyRule{}
	}
	for scope, r := range p.Scopes {
		if err := checkScope(scope); err != nil {
			return nil, err
		}
		if r == nil || len(r.Teams) == 0 {
			return nil, fmt.Errorf("scope %q names no team: %w", scope, errdefs.ErrInvalidArgument)
		}
		seen := map[string]bool{}
		for i := range r.Teams {
			t := &r.Teams[i]
			if t.Name == "" {
				return nil, fmt.Errorf("scope %q: team %d has no name: %w", scope, i, errdefs.ErrInvalidArgument)
			}
			if seen[t.Name] {
				return nil, fmt.Errorf("scope %q: team %q is named twice: %w", scope, t.Name, errdefs.ErrInvalidArgument)
			}
			seen[t.Name] = true
			for _, k := range t.Keys {
				pk, err := ParsePublicKey([]byte(k))
				if err != nil {
					return nil, fmt.Errorf("scope %q team %s: %w", scope, t.Name, err)
				}
				t.keys = append(t.keys, pk)
			}
			for _, kp := range t.KeyPaths {
				if !filepath.IsAbs(kp) {
					kp = filepath.Join(dir, kp)
				}
				pk, err := LoadPublicKey(kp)
				if err != nil {
					return nil, fmt.Errorf("scope %q team %s: %w", scope, t.Name, err)
				}
				t.keys = append(t.keys, pk)
			}
			if len(t.keys) == 0 {
				return nil, fmt.Errorf("scope %q: team %s has no key: %w", scope, t.Name, errdefs.ErrInvalidArgument)
			}
		}
	}
	return &p, nil
}

// checkScope accepts a registry host, a repository, or a repository prefix.
func checkScope(scope string) error {
	if scope == "" || strings.ContainsAny(scope, "@ ") {
		return fmt.Errorf("scope %q: give a registry, a repository or a repository prefix: %w", scope, errdefs.ErrInvalidArgument)
	}
	if !strings.Contains(scope, "/") {
		return nil // a registry host, with its port if any
	}
	n, err := reference.ParseNormalizedNamed(scope)
	if err != nil || tagged(n) {
		return fmt.Errorf("scope %q: give a registry, a repository or a repository prefix (no tag): %w", scope, errdefs.ErrInvalidArgument)
	}
	return nil
}

// For is the rule for an image named name, and its scope: the most
// specific scope that is the repository or a path prefix of it.
func (p *CustodyPolicy) For(name string) (*CustodyRule, string) {
	if p == nil || name == "" {
		return nil, ""
	}
	n, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil, ""
	}
	repo := n.Name()
	for {
		if r, ok := p.Scopes[repo]; ok {
			return r, repo
		}
		i := strings.LastIndexByte(repo, '/')
		if i < 0 {
			return nil, ""
		}
		repo = repo[:i]
	}
}

// Set puts rule in place for scope (nil removes the scope) and writes
// the file atomically.
func (p *CustodyPolicy) Set(scope string, rule *CustodyRule) error {
	if err := checkScope(scope); err != nil {
		return err
	}
	if n, err := reference.ParseNormalizedNamed(scope); err == nil && strings.Contains(scope, "/") {
		scope = n.Name()
	}
	if rule == nil {
		delete(p.Scopes, scope)
	} else {
		p.Scopes[scope] = rule
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if _, err := ParseCustodyPolicy(b, filepath.Dir(p.path)); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.path), 0o755); err != nil {
		return fmt.Errorf("custody policy: %w", err)
	}
	if err := atomicfile.WriteFile(p.path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("custody policy: %w", err)
	}
	return nil
}

// ScopeNames are the policy's scopes, sorted.
func (p *CustodyPolicy) ScopeNames() []string {
	out := make([]string, 0, len(p.Scopes))
	for s := range p.Scopes {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Path is the file the policy lives in.
func (p *CustodyPolicy) Path() string { return p.path }

// Keys are the team's public keys.
func (t *TeamKeys) PublicKeys() []*PublicKey { return t.keys }
