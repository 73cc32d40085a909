package snapshot

import (
	"context"
	"fmt"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/errdefs"
)

// VFS is the copying snapshotter, for where overlayfs cannot be mounted
// (no privileges, or a file system overlay cannot sit on): each active
// snapshot starts as a full copy of its parent, hard links, xattrs and
// all. It costs disk space and time, never correctness.
type VFS struct {
	*store
}

var _ Snapshotter = (*VFS)(nil)

// NewVFS opens a copying snapshotter rooted at dir.
func NewVFS(dir string) (*VFS, error) {
	s, err := newStore(dir, "vfs")
	if err != nil {
		return nil, err
	}
	return &VFS{store: s}, nil
}

func (v *VFS) Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error) {
	r, chain, err := v.create(key, parent, KindActive, opts, "fs")
	if err != nil {
		return nil, err
	}
	if len(chain) > 0 {
		if err := archive.CopyDir(ctx, v.fsDir(chain[0].id), v.fsDir(r.id)); err != nil {
			v.Remove(ctx, key)
			return nil, fmt.Errorf("prepare %s: copy %s: %w", key, parent, err)
		}
	}
	return []Mount{{Type: "bind", Source: v.fsDir(r.id), Options: []string{"rw", "rbind"}}}, nil
}

func (v *VFS) View(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error) {
	r, chain, err := v.create(key, parent, KindView, opts, "fs")
	if err != nil {
		return nil, err
	}
	return v.viewMounts(r, chain), nil
}

func (v *VFS) viewMounts(r *record, chain []*record) []Mount {
	src := v.fsDir(r.id)
	if len(chain) > 0 {
		src = v.fsDir(chain[0].id) // committed trees never change: no copy needed
	}
	return []Mount{{Type: "bind", Source: src, Options: []string{"ro", "rbind"}}}
}

func (v *VFS) Mounts(ctx context.Context, key string) ([]Mount, error) {
	r, recs, err := v.get(key)
	if err != nil {
		return nil, err
	}
	switch r.Kind {
	case KindActive:
		return []Mount{{Type: "bind", Source: v.fsDir(r.id), Options: []string{"rw", "rbind"}}}, nil
	case KindView:
		var chain []*record
		if r.Parent != "" {
			if chain, err = chainOf(recs[r.Parent], recs); err != nil {
				return nil, err
			}
		}
		return v.viewMounts(r, chain), nil
	}
	return nil, fmt.Errorf("mounts of %s: committed snapshots are not mounted, view them: %w", key, errdefs.ErrFailedPrecondition)
}

func (v *VFS) Commit(ctx context.Context, name, key string, opts ...Opt) error {
	return v.commit(ctx, name, key, nil, opts)
}

func (v *VFS) Check(ctx context.Context) ([]Problem, error) {
	return v.check(ctx, func(k Kind) bool { return true })
}
