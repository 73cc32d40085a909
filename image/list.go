package image

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/errdefs"
	"github.com/distribution/reference"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Config reads an image's config, with Docker's extensions.
func (s *Store) Config(ctx context.Context, img Image) (*dockerspec.DockerOCIImage, error) {
	m, err := s.Manifest(ctx, img)
	if err != nil {
		return nil, err
	}
	b, err := content.ReadBlob(ctx, s.content, m.Config, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", shortID(img.ID), err)
	}
	var cfg dockerspec.DockerOCIImage
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("image %s: config: %w: %w", shortID(img.ID), errdefs.ErrDataLoss, err)
	}
	return &cfg, nil
}

// Manifest reads an image's manifest.
func (s *Store) Manifest(ctx context.Context, img Image) (ocispec.Manifest, error) {
	b, err := content.ReadBlob(ctx, s.content, img.Manifest, maxManifestSize)
	if err != nil {
		return ocispec.Manifest{}, fmt.Errorf("image %s: manifest: %w", shortID(img.ID), err)
	}
	return parseManifest(img.Manifest.Digest, b)
}

// Filter selects images as docker images --filter does.
type Filter struct {
	Dangling   *bool
	References []string
	Labels     []string
	Before     []string
	Since      []string
}

// ParseFilters parses --filter KEY=VALUE arguments.
func ParseFilters(args []string) (Filter, error) {
	var f Filter
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || v == "" && k != "label" {
			return f, fmt.Errorf("bad filter %q: want KEY=VALUE (dangling, reference, label, before, since): %w", a, errdefs.ErrInvalidArgument)
		}
		switch strings.ToLower(k) {
		case "dangling":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return f, fmt.Errorf("bad filter %q: dangling takes true or false: %w", a, errdefs.ErrInvalidArgument)
			}
			f.Dangling = &b
		case "reference":
			if _, err := path.Match(v, ""); err != nil {
				return f, fmt.Errorf("bad filter %q: %w: %w", a, errdefs.ErrInvalidArgument, err)
			}
			f.References = append(f.References, v)
		case "label":
			f.Labels = append(f.Labels, v)
		case "before":
			f.Before = append(f.Before, v)
		case "since":
			f.Since = append(f.Since, v)
		default:
			return f, fmt.Errorf("bad filter %q: unknown key %q (dangling, reference, label, before, since): %w", a, k, errdefs.ErrInvalidArgument)
		}
	}
	return f, nil
}

// Intermediate lists the images that are steps on the way to others: no
// name, and the parent of an image. docker images hides them (without
// -a), and they are not dangling: they are the build cache.
func Intermediate(imgs []Image) map[digest.Digest]bool {
	parents := map[digest.Digest]bool{}
	for _, img := range imgs {
		if img.Parent != "" {
			parents[img.Parent] = true
		}
	}
	out := map[digest.Digest]bool{}
	for _, img := range imgs {
		if len(img.Names) == 0 && parents[img.ID] {
			out[img.ID] = true
		}
	}
	return out
}

// Select returns the images that pass f, in the order given.
func (s *Store) Select(ctx context.Context, imgs []Image, f Filter) ([]Image, error) {
	var inter map[digest.Digest]bool
	if f.Dangling != nil {
		all, err := s.List(ctx)
		if err != nil {
			return nil, err
		}
		inter = Intermediate(all)
	}
	var before, since []Image
	for _, ref := range f.Before {
		img, err := s.Get(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("filter before=%s: %w", ref, err)
		}
		before = append(before, img)
	}
	for _, ref := range f.Since {
		img, err := s.Get(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("filter since=%s: %w", ref, err)
		}
		since = append(since, img)
	}
	var out []Image
next:
	for _, img := range imgs {
		if f.Dangling != nil && (len(img.Names) == 0 && !inter[img.ID]) != *f.Dangling {
			continue
		}
		for _, b := range before {
			if !img.Created.Before(b.Created) {
				continue next
			}
		}
		for _, sn := range since {
			if !img.Created.After(sn.Created) {
				continue next
			}
		}
		if len(f.References) > 0 {
			kept := false
			for _, n := range img.Names {
				if matchReference(f.References, n) {
					kept = true
				}
			}
			if !kept {
				continue
			}
		}
		if len(f.Labels) > 0 {
			cfg, err := s.Config(ctx, img)
			if err != nil {
				continue
			}
			for _, l := range f.Labels {
				k, v, hasValue := strings.Cut(l, "=")
				got, ok := cfg.Config.Labels[k]
				if !ok || hasValue && got != v {
					continue next
				}
			}
		}
		out = append(out, img)
	}
	return out, nil
}

// matchReference matches a stored name against reference= patterns as
// Docker does: the familiar name, with or without the tag.
func matchReference(patterns []string, name string) bool {
	n, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return false
	}
	for _, p := range patterns {
		if ok, _ := reference.FamiliarMatch(p, n); ok {
			return true
		}
		if ok, _ := path.Match(p, reference.FamiliarName(n)); ok {
			return true
		}
	}
	return false
}
