package image

import (
	"context"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// HistoryEntry is one line of docker history: a step that made the image,
// newest first.
type HistoryEntry struct {
	// ID is the image ID on the newest entry, empty on the others (Docker
	// prints <missing> for layers that are not images of their own).
	ID         digest.Digest
	Created    time.Time
	CreatedBy  string
	Comment    string
	Size       int64
	EmptyLayer bool
	Tags       []string
}

// History returns an image's history, newest step first, each step that
// made a layer with that layer's unpacked size.
func (s *Store) History(ctx context.Context, ref string) ([]HistoryEntry, error) {
	img, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	cfg, err := s.Config(ctx, img)
	if err != nil {
		return nil, err
	}
	chain := identityChain(cfg.RootFS.DiffIDs)
	var out []HistoryEntry
	layer := 0
	for _, h := range cfg.History {
		e := HistoryEntry{CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if h.Created != nil {
			e.Created = *h.Created
		}
		if !h.EmptyLayer && layer < len(chain) {
			e.Size = s.layerSize(ctx, chain[layer])
			layer++
		}
		out = append(out, e)
	}
	// Layers the history does not account for (images made by tools that
	// write none) still get a line each.
	for ; layer < len(chain); layer++ {
		out = append(out, HistoryEntry{Size: s.layerSize(ctx, chain[layer])})
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if len(out) > 0 {
		out[0].ID = img.ID
		out[0].Tags = familiarAll(img.Names)
	}
	return out, nil
}
