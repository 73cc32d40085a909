package image

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/snapshot"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// CheckReport is what system check found.
type CheckReport struct {
	Blobs     int
	Snapshots int
	Images    int
	// Problems are inconsistencies: damaged blobs, broken snapshot chains,
	// images whose content is missing. A store a crash left behind has
	// none; its leftovers are Reclaimable, not problems.
	Problems []string
	// Repaired lists what a repair removed.
	Repaired []string
	// Reclaimable counts what garbage collection would remove.
	ReclaimableBlobs     int
	ReclaimableSnapshots int
	StaleIngests         int
}

// Check verifies the store: every blob against its digest, every
// snapshot's parent chain, every image's manifest, config, layers and
// unpacked chain. With repair it removes what is damaged (a corrupt blob,
// a broken snapshot, an image that depends on them) and nothing else, then
// collects garbage. It waits for writers and holds them off while it runs.
func (s *Store) Check(ctx context.Context, repair bool) (CheckReport, error) {
	var rep CheckReport
	l, err := s.exclusive(ctx, true)
	if err != nil {
		return rep, err
	}
	defer l.Unlock()

	corrupt := map[digest.Digest]bool{}
	err = s.content.Walk(ctx, func(i content.Info) error {
		rep.Blobs++
		rc, err := content.Open(ctx, s.content, ocispec.Descriptor{Digest: i.Digest, Size: i.Size})
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if errdefs.IsDataLoss(err) {
			corrupt[i.Digest] = true
			rep.Problems = append(rep.Problems, fmt.Sprintf("blob %s is damaged: its content no longer matches its digest", i.Digest))
			return nil
		}
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("check: %w", err)
	}

	problems, err := s.snaps.Check(ctx)
	if err != nil {
		return rep, fmt.Errorf("check: %w", err)
	}
	for _, p := range problems {
		rep.Problems = append(rep.Problems, fmt.Sprintf("snapshot %s: %s", p.Snapshot, p.What))
	}
	infos := map[string]snapshot.Info{}
	s.snaps.Walk(ctx, func(i snapshot.Info) error { infos[i.Name] = i; rep.Snapshots++; return nil })

	r, err := s.load()
	if err != nil {
		return rep, err
	}
	rep.Images = len(r.Images)
	var damaged []digest.Digest
	for _, img := range r.Images {
		if why := s.checkImage(ctx, img, corrupt, infos); why != "" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("image %s (%s): %s", shortID(img.ID), namesOf(img), why))
			damaged = append(damaged, img.ID)
		}
	}

	if repair {
		for d := range corrupt {
			if err := s.content.Delete(ctx, d); err != nil && !errdefs.IsNotFound(err) {
				return rep, err
			}
			rep.Repaired = append(rep.Repaired, "removed damaged blob "+d.String())
		}
		for _, p := range problems {
			if p.Repair == nil {
				continue
			}
			if err := p.Repair(ctx); err != nil {
				return rep, fmt.Errorf("repair snapshot %s: %w", p.Snapshot, err)
			}
			rep.Repaired = append(rep.Repaired, "removed broken snapshot "+p.Snapshot)
		}
		if len(damaged) > 0 {
			err := s.update(func(r *records) error {
				out := r.Images[:0]
				for _, img := range r.Images {
					if contains(digestStrings(damaged), img.ID.String()) {
						rep.Repaired = append(rep.Repaired, fmt.Sprintf("removed damaged image %s (%s): load or pull it again", shortID(img.ID), namesOf(img)))
						continue
					}
					out = append(out, img)
				}
				r.Images = out
				return nil
			})
			if err != nil {
				return rep, err
			}
		}
		if _, err := s.gcLocked(ctx, GCOptions{}); err != nil {
			return rep, err
		}
	}

	m, err := s.mark(ctx)
	if err != nil {
		return rep, err
	}
	s.content.Walk(ctx, func(i content.Info) error {
		if !m.blobs[i.Digest] {
			rep.ReclaimableBlobs++
		}
		return nil
	})
	s.snaps.Walk(ctx, func(i snapshot.Info) error {
		if !m.snapshots[i.Name] {
			rep.ReclaimableSnapshots++
		}
		return nil
	})
	if ins, err := s.content.Ingests(); err == nil {
		for _, in := range ins {
			if !in.Active {
				rep.StaleIngests++
			}
		}
	}
	sort.Strings(rep.Problems)
	return rep, nil
}

func digestStrings(ds []digest.Digest) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

func namesOf(img Image) string {
	if len(img.Names) == 0 {
		return "<none>"
	}
	return FamiliarString(img.Names[0])
}

// checkImage returns why an image is damaged, or "".
func (s *Store) checkImage(ctx context.Context, img Image, corrupt map[digest.Digest]bool, infos map[string]snapshot.Info) string {
	blob := func(d ocispec.Descriptor, what string) string {
		if corrupt[d.Digest] {
			return what + " " + d.Digest.String() + " is damaged"
		}
		if _, err := s.content.Info(ctx, d.Digest); err != nil {
			return what + " " + d.Digest.String() + " is missing"
		}
		return ""
	}
	if why := blob(img.Manifest, "manifest"); why != "" {
		return why
	}
	m, err := s.Manifest(ctx, img)
	if err != nil {
		return err.Error()
	}
	if why := blob(m.Config, "config"); why != "" {
		return why
	}
	for i, l := range m.Layers {
		if why := blob(l, fmt.Sprintf("layer %d", i+1)); why != "" {
			return why
		}
	}
	cfg, err := s.Config(ctx, img)
	if err != nil {
		return err.Error()
	}
	chain := identityChain(cfg.RootFS.DiffIDs)
	if len(chain) > 0 && chain[len(chain)-1] != img.ChainID {
		return fmt.Sprintf("record names chain %s but the config gives %s", img.ChainID, chain[len(chain)-1])
	}
	for i := len(chain) - 1; i >= 0; i-- {
		info, ok := infos[chain[i].String()]
		if !ok {
			return fmt.Sprintf("unpacked layer %d (%s) is missing", i+1, chain[i])
		}
		if info.Kind != snapshot.KindCommitted {
			return fmt.Sprintf("unpacked layer %d (%s) is not committed", i+1, chain[i])
		}
		want := ""
		if i > 0 {
			want = chain[i-1].String()
		}
		if info.Parent != want {
			return fmt.Sprintf("unpacked layer %d (%s) sits on %q, not %q", i+1, chain[i], info.Parent, want)
		}
	}
	return ""
}
