package snapshot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/berthproject/berth/errdefs"
	"golang.org/x/sys/unix"
)

// Overlay is the overlayfs snapshotter: each snapshot's fs/ holds only
// its own changes, and a mount stacks the chain. Layers are unpacked
// straight into fs/ (see archive.WhiteoutOverlay).
type Overlay struct {
	*store
}

var (
	_ Snapshotter = (*Overlay)(nil)
	_ Rebaser     = (*Overlay)(nil)
)

// NewOverlay opens an overlay snapshotter rooted at dir.
func NewOverlay(dir string) (*Overlay, error) {
	s, err := newStore(dir, "overlay")
	if err != nil {
		return nil, err
	}
	return &Overlay{store: s}, nil
}

func (o *Overlay) Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error) {
	r, chain, err := o.create(key, parent, KindActive, opts, "fs", "work")
	if err != nil {
		return nil, err
	}
	if len(chain) > 0 {
		// In the merged view the upper root's attributes win: start it
		// as the image's root is.
		CopyRootAttrs(o.fsDir(chain[0].id), o.fsDir(r.id))
	}
	return o.mounts(r, chain), nil
}

func (o *Overlay) View(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error) {
	r, chain, err := o.create(key, parent, KindView, opts, "fs")
	if err != nil {
		return nil, err
	}
	return o.mounts(r, chain), nil
}

func (o *Overlay) Mounts(ctx context.Context, key string) ([]Mount, error) {
	r, recs, err := o.get(key)
	if err != nil {
		return nil, err
	}
	if r.Kind == KindCommitted {
		return nil, fmt.Errorf("mounts of %s: committed snapshots are not mounted, view them: %w", key, errdefs.ErrFailedPrecondition)
	}
	var chain []*record
	if r.Parent != "" {
		if chain, err = chainOf(recs[r.Parent], recs); err != nil {
			return nil, err
		}
	}
	return o.mounts(r, chain), nil
}

func (o *Overlay) mounts(r *record, chain []*record) []Mount {
	if r.Kind == KindView {
		switch len(chain) {
		case 0:
			return []Mount{{Type: "bind", Source: o.fsDir(r.id), Options: []string{"ro", "rbind"}}}
		case 1:
			return []Mount{{Type: "bind", Source: o.fsDir(chain[0].id), Options: []string{"ro", "rbind"}}}
		}
		return []Mount{{Type: "overlay", Source: "overlay", Options: append([]string{"ro", "lowerdir=" + o.lowerdirs(chain)}, overlayExtraOptions()...)}}
	}
	if len(chain) == 0 {
		return []Mount{{Type: "bind", Source: o.fsDir(r.id), Options: []string{"rw", "rbind"}}}
	}
	opts := []string{"workdir=" + o.workDir(r.id), "upperdir=" + o.fsDir(r.id), "lowerdir=" + o.lowerdirs(chain)}
	return []Mount{{Type: "overlay", Source: "overlay", Options: append(opts, overlayExtraOptions()...)}}
}

func (o *Overlay) lowerdirs(chain []*record) string {
	dirs := make([]string, len(chain))
	for i, c := range chain {
		dirs[i] = o.fsDir(c.id)
	}
	return strings.Join(dirs, ":")
}

func (o *Overlay) Commit(ctx context.Context, name, key string, opts ...Opt) error {
	return o.commit(ctx, name, key, nil, opts)
}

// CommitOnto commits an active snapshot prepared without a parent on top
// of parent.
func (o *Overlay) CommitOnto(ctx context.Context, name, key, parent string, opts ...Opt) error {
	return o.commit(ctx, name, key, &parent, opts)
}

func (o *Overlay) Check(ctx context.Context) ([]Problem, error) {
	return o.check(ctx, func(k Kind) bool { return true })
}

var (
	indexOnce sync.Once
	indexOff  bool
)

// overlayExtraOptions turns the overlay index off where the kernel knows
// the option: layer directories are shared between many mounts, which
// the index feature would tie to the first one.
func overlayExtraOptions() []string {
	indexOnce.Do(func() {
		_, err := os.Stat("/sys/module/overlay/parameters/index")
		indexOff = err == nil
	})
	if indexOff {
		return []string{"index=off"}
	}
	return nil
}

// CopyRootAttrs gives the directory dst (a new layer's root) the owner,
// mode and times of src (the root of the layer below). In an overlay
// mount the upper directory's root attributes win, so a layer that does
// not set them itself must carry its parent's.
func CopyRootAttrs(src, dst string) {
	var st unix.Stat_t
	if unix.Stat(src, &st) != nil {
		return
	}
	unix.Chown(dst, int(st.Uid), int(st.Gid))
	unix.Chmod(dst, st.Mode&0o7777)
	unix.UtimesNano(dst, []unix.Timespec{st.Atim, st.Mtim})
}

// OverlaySupported reports whether overlay mounts work for a store under
// dir, by mounting one there (the answer depends on privileges, the
// kernel and the file system dir is on).
func OverlaySupported(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	td, err := os.MkdirTemp(dir, "overlay-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(td)
	for _, d := range []string{"l1", "l2", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(td, d), 0o755); err != nil {
			return err
		}
	}
	// A whiteout in a lower layer must work too: it is a device node.
	if err := unix.Mknod(filepath.Join(td, "l1", "wh"), unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("overlay whiteouts need mknod: %w", err)
	}
	m := Mount{Type: "overlay", Source: "overlay", Options: append([]string{
		"lowerdir=" + filepath.Join(td, "l1") + ":" + filepath.Join(td, "l2"),
		"upperdir=" + filepath.Join(td, "u"), "workdir=" + filepath.Join(td, "w")}, overlayExtraOptions()...)}
	if err := m.Mount(filepath.Join(td, "m")); err != nil {
		return err
	}
	return Unmount(filepath.Join(td, "m"))
}
