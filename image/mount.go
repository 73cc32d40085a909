package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/snapshot"
	"github.com/moby/sys/mountinfo"
	digest "github.com/opencontainers/go-digest"
)

// labelMountImage on an image mount's view names the image (its ID).
const labelMountImage = "berth.io/mount-image"

// Mounted is an image mounted by MountImage.
type Mounted struct {
	ID    digest.Digest
	Names []string
	Path  string
}

func (s *Store) mountPath(id string) string {
	return filepath.Join(s.runRoot, "image-mounts", id)
}

func mountKey(id digest.Digest) string { return "mount-" + id.Encoded() }

// MountImage mounts an image's merged, read-only root file system and
// returns where, as podman image mount does. Mounting a mounted image
// returns the same path.
func (s *Store) MountImage(ctx context.Context, ref string) (string, error) {
	img, err := s.Get(ctx, ref)
	if err != nil {
		return "", err
	}
	release, err := s.writing(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	p := s.mountPath(img.ID.Encoded())
	key := mountKey(img.ID)
	if mounted, _ := mountinfo.Mounted(p); mounted {
		return p, nil
	}
	if _, err := s.snaps.Stat(ctx, key); err == nil {
		s.snaps.Remove(ctx, key) // a view left by a mount that did not survive a reboot
	}
	mounts, err := s.snaps.View(ctx, key, img.ChainID.String(), snapshot.WithLabels(map[string]string{
		labelOwner: ownerMount, labelMountImage: img.ID.Encoded(),
	}))
	if err != nil {
		return "", fmt.Errorf("mount %s: %w", ref, err)
	}
	if err := os.MkdirAll(p, 0o700); err != nil {
		s.snaps.Remove(ctx, key)
		return "", fmt.Errorf("mount %s: %w", ref, err)
	}
	if err := snapshot.MountAll(mounts, p); err != nil {
		s.snaps.Remove(ctx, key)
		return "", fmt.Errorf("mount %s: %w", ref, err)
	}
	return p, nil
}

// UnmountImage undoes MountImage. Unmounting an image that is not mounted
// is errdefs.ErrFailedPrecondition.
func (s *Store) UnmountImage(ctx context.Context, ref string) error {
	img, err := s.Get(ctx, ref)
	if err != nil {
		return err
	}
	p := s.mountPath(img.ID.Encoded())
	mounted, _ := mountinfo.Mounted(p)
	_, statErr := s.snaps.Stat(ctx, mountKey(img.ID))
	if !mounted && statErr != nil {
		return fmt.Errorf("image %s is not mounted: %w", ref, errdefs.ErrFailedPrecondition)
	}
	if err := s.unmountPath(img.ID.Encoded()); err != nil {
		return err
	}
	if err := s.snaps.Remove(ctx, mountKey(img.ID)); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("unmount %s: %w", ref, err)
	}
	return nil
}

func (s *Store) unmountPath(id string) error {
	p := s.mountPath(id)
	if err := snapshot.Unmount(p); err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unmount: %w", err)
	}
	return nil
}

// MountedImages lists the images mounted now.
func (s *Store) MountedImages(ctx context.Context) ([]Mounted, error) {
	r, err := s.load()
	if err != nil {
		return nil, err
	}
	var out []Mounted
	for _, img := range r.Images {
		p := s.mountPath(img.ID.Encoded())
		if mounted, _ := mountinfo.Mounted(p); mounted {
			out = append(out, Mounted{ID: img.ID, Names: img.Names, Path: p})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (s *Store) isMounted(id digest.Digest) bool {
	m, _ := mountinfo.Mounted(s.mountPath(id.Encoded()))
	return m
}
