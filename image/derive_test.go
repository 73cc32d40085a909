package image

import (
	"bytes"
	"context"
	"testing"
	"time"

	tu "github.com/berthproject/berth/internal/testutil"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
)

// TestDeriveSteps makes images as a build does: a layerless step, a step
// with a layer, one from scratch; then checks parents, history, times,
// what images hides and what prune removes.
func TestDeriveSteps(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	base := tu.BuildImage(t, tu.ImageOptions{}, baseLayer)
	load(t, s, tu.OCIArchive(t, []*tu.TestImage{base}, []string{"docker.io/library/base:latest"}))
	b, err := s.Get(ctx, "base")
	if err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(1700000000, 0).UTC()
	env, err := s.Derive(ctx, DeriveOptions{Base: b.ID, CreatedBy: "ENV A=1", Created: &epoch,
		Config: func(c *dockerspec.DockerOCIImageConfig) { c.Env = append(c.Env, "A=1") }})
	if err != nil {
		t.Fatal(err)
	}
	if env.ChainID != b.ChainID || env.Parent != b.ID || !env.Created.Equal(epoch) {
		t.Fatalf("config step: chain %s (base %s), parent %s, created %v", env.ChainID, b.ChainID, env.Parent, env.Created)
	}
	cfg, _ := s.Config(ctx, env)
	if h := cfg.History[len(cfg.History)-1]; !h.EmptyLayer || h.CreatedBy != "ENV A=1" || !h.Created.Equal(epoch) {
		t.Fatalf("config step history %+v", h)
	}
	layer := tu.MakeTar(t, tu.File("new", "x"))
	top, err := s.Derive(ctx, DeriveOptions{Base: env.ID, Layer: bytes.NewReader(layer), CreatedBy: "COPY new /", Created: &epoch, Ref: "app:1"})
	if err != nil {
		t.Fatal(err)
	}
	// The same step again is the same image (reproducible).
	again, err := s.Derive(ctx, DeriveOptions{Base: env.ID, Layer: bytes.NewReader(layer), CreatedBy: "COPY new /", Created: &epoch})
	if err != nil || again.ID != top.ID {
		t.Fatalf("not reproducible: %s, %s (%v)", top.ID, again.ID, err)
	}
	m, _ := s.Manifest(ctx, top)
	if len(m.Layers) != 2 || top.Parent != env.ID {
		t.Fatalf("layer step: %d layers, parent %s", len(m.Layers), top.Parent)
	}
	if _, err := s.Derive(ctx, DeriveOptions{Base: env.ID, Layer: bytes.NewReader(layer), NoHistory: true}); err == nil {
		t.Fatal("a layer without history was accepted")
	}
	scratch, err := s.Derive(ctx, DeriveOptions{NoHistory: true, Created: &epoch})
	if err != nil {
		t.Fatal(err)
	}
	sm, _ := s.Manifest(ctx, scratch)
	sc, _ := s.Config(ctx, scratch)
	if len(sm.Layers) != 0 || sc.OS != HostPlatform().OS || len(sc.History) != 0 || scratch.ChainID != "" {
		t.Fatalf("scratch: %d layers, os %q, %d history", len(sm.Layers), sc.OS, len(sc.History))
	}

	imgs, _ := s.List(ctx)
	inter := Intermediate(imgs)
	if !inter[env.ID] || inter[top.ID] || inter[b.ID] || inter[scratch.ID] {
		t.Fatalf("intermediate: %v", inter)
	}
	yes := true
	dangling, err := s.Select(ctx, imgs, Filter{Dangling: &yes})
	if err != nil || len(dangling) != 1 || dangling[0].ID != scratch.ID {
		t.Fatalf("dangling: %v (%v)", dangling, err)
	}
	// Prune keeps a tagged image's steps; once the tag goes, the dead
	// chain goes whole, and the base (named) stays.
	if _, err := s.Prune(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, env.ID.String()); err != nil {
		t.Fatalf("a tagged image's step was pruned: %v", err)
	}
	if _, err := s.Remove(ctx, "app:1", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(ctx, false); err != nil {
		t.Fatal(err)
	}
	imgs, _ = s.List(ctx)
	if len(imgs) != 1 || imgs[0].ID != b.ID {
		t.Fatalf("after prune: %v", imgs)
	}
}
