package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/internal/flock"
	"github.com/berthproject/berth/snapshot"
	"github.com/moby/sys/mountinfo"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// GCOptions control garbage collection.
type GCOptions struct {
	// Wait for writers to finish; without it a collection that would have
	// to wait is skipped (removal of an image does not block on a load).
	Wait bool
	// Ingests also removes interrupted writes no live process owns (they
	// are otherwise kept so that the write can resume).
	Ingests bool
}

// GCReport says what a collection removed.
type GCReport struct {
	Blobs     int
	Snapshots int
	Bytes     int64
	// Skipped: a writer was busy and Wait was not set.
	Skipped bool
}

// exclusive takes the gc lock exclusively: no writer is working while it
// is held.
func (s *Store) exclusive(ctx context.Context, wait bool) (*flock.Lock, error) {
	p := filepath.Join(s.root, "gc.lock")
	if !wait {
		return flock.TryExclusive(p)
	}
	return flock.Exclusive(p)
}

// GC removes the blobs and snapshots no image refers to. It runs only
// while no writer works (see the package comment), so what it finds
// unreferenced is garbage, not work in progress.
func (s *Store) GC(ctx context.Context, o GCOptions) (GCReport, error) {
	l, err := s.exclusive(ctx, o.Wait)
	if errors.Is(err, flock.ErrLocked) {
		return GCReport{Skipped: true}, nil
	}
	if err != nil {
		return GCReport{}, err
	}
	defer l.Unlock()
	return s.gcLocked(ctx, o)
}

// marks is the set of everything live.
type marks struct {
	blobs     map[digest.Digest]bool
	snapshots map[string]bool
}

func (s *Store) mark(ctx context.Context) (*marks, error) {
	r, err := s.load()
	if err != nil {
		return nil, err
	}
	m := &marks{blobs: map[digest.Digest]bool{}, snapshots: map[string]bool{}}
	for _, img := range r.Images {
		m.blobs[img.Manifest.Digest] = true
		if img.Index != nil {
			m.blobs[img.Index.Digest] = true
		}
		if b, err := content.ReadBlob(ctx, s.content, img.Manifest, maxManifestSize); err == nil {
			var man ocispec.Manifest
			if json.Unmarshal(b, &man) == nil {
				m.blobs[man.Config.Digest] = true
				for _, l := range man.Layers {
					m.blobs[l.Digest] = true
				}
			}
		}
		if img.ChainID != "" {
			m.snapshots[img.ChainID.String()] = true
		}
	}
	// Snapshots below a live one are live.
	infos := map[string]snapshot.Info{}
	if err := s.snaps.Walk(ctx, func(i snapshot.Info) error { infos[i.Name] = i; return nil }); err != nil {
		return nil, err
	}
	for name, info := range infos {
		if info.Kind != snapshot.KindCommitted && s.activeIsLive(info) {
			m.snapshots[name] = true
		}
	}
	for name := range m.snapshots {
		for p := infos[name].Parent; p != "" && !m.snapshots[p]; p = infos[p].Parent {
			m.snapshots[p] = true
		}
	}
	return m, nil
}

// activeIsLive decides about an active or view snapshot while no writer
// runs: an unpack's are leftovers of a killed process; an image mount's
// live while it is mounted; anything else (a container's) is kept.
func (s *Store) activeIsLive(info snapshot.Info) bool {
	switch info.Labels[labelOwner] {
	case ownerUnpack:
		return false
	case ownerMount:
		mounted, err := mountinfo.Mounted(s.mountPath(info.Labels[labelMountImage]))
		return err == nil && mounted
	}
	return true
}

func (s *Store) gcLocked(ctx context.Context, o GCOptions) (GCReport, error) {
	var rep GCReport
	m, err := s.mark(ctx)
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	// Snapshots, children before parents: each pass removes the leaves.
	for {
		removed := 0
		var dead []snapshot.Info
		s.snaps.Walk(ctx, func(i snapshot.Info) error {
			if !m.snapshots[i.Name] {
				dead = append(dead, i)
			}
			return nil
		})
		for _, i := range dead {
			if i.Labels[labelOwner] == ownerMount {
				s.unmountPath(i.Labels[labelMountImage])
			}
			u, _ := s.snaps.Usage(ctx, i.Name)
			err := s.snaps.Remove(ctx, i.Name)
			if errdefs.IsFailedPrecondition(err) {
				continue // a parent of another dead one: next pass
			}
			if err != nil && !errdefs.IsNotFound(err) {
				return rep, fmt.Errorf("gc: snapshot %s: %w", i.Name, err)
			}
			rep.Snapshots++
			rep.Bytes += u.Size
			removed++
		}
		if removed == 0 {
			break
		}
	}
	var dead []content.Info
	if err := s.content.Walk(ctx, func(i content.Info) error {
		if !m.blobs[i.Digest] {
			dead = append(dead, i)
		}
		return nil
	}); err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	for _, i := range dead {
		if err := s.content.Delete(ctx, i.Digest); err != nil && !errdefs.IsNotFound(err) {
			return rep, fmt.Errorf("gc: blob %s: %w", i.Digest, err)
		}
		rep.Blobs++
		rep.Bytes += i.Size
	}
	if o.Ingests {
		n, err := s.content.RemoveStaleIngests()
		if err != nil {
			return rep, fmt.Errorf("gc: %w", err)
		}
		rep.Bytes += n
	}
	return rep, nil
}
