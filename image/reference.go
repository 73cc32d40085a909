package image

import (
	"fmt"
	"strings"

	"github.com/berthproject/berth/errdefs"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
)

// ParseReference parses an image reference the way Docker does: a bare
// name means docker.io/library/NAME, a missing tag means :latest, and a
// digest may be given with or without a tag.
func ParseReference(s string) (reference.Named, error) {
	if s == "" {
		return nil, fmt.Errorf("invalid reference format: empty image name: %w", errdefs.ErrInvalidArgument)
	}
	if strings.HasPrefix(s, "sha256:") || strings.HasPrefix(s, "sha512:") {
		return nil, fmt.Errorf("invalid reference format: %q is an image ID, not a name: %w", s, errdefs.ErrInvalidArgument)
	}
	n, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, fmt.Errorf("invalid reference format: %q: %w: %w", s, errdefs.ErrInvalidArgument, err)
	}
	return reference.TagNameOnly(n), nil
}

// FamiliarString shortens a full reference as Docker prints it
// (docker.io/library/busybox:latest is busybox:latest).
func FamiliarString(name string) string {
	n, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name
	}
	return reference.FamiliarString(n)
}

// splitName returns the familiar repository and tag of a stored name
// (a name with a digest has tag "<none>").
func splitName(name string) (repo, tag string) {
	n, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name, "<none>"
	}
	repo = reference.FamiliarName(n)
	tag = "<none>"
	if t, ok := n.(reference.Tagged); ok {
		tag = t.Tag()
	}
	return repo, tag
}

// repoOf returns a stored name's repository without tag or digest.
func repoOf(name string) string {
	n, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name
	}
	return n.Name()
}

// shortID is the 12-hex form Docker shows of an image ID.
func shortID(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}

// isHexPrefix: a string that can only be meant as (a prefix of) an ID.
func isHexPrefix(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
