package image

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/berthproject/berth/errdefs"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
)

// Tag gives the image src names the name target (moving the name from
// another image if it had it).
func (s *Store) Tag(ctx context.Context, src, target string) error {
	n, err := reference.ParseNormalizedNamed(target)
	if err != nil {
		return fmt.Errorf("tag: invalid reference format: %q: %w: %w", target, errdefs.ErrInvalidArgument, err)
	}
	if _, ok := n.(reference.Digested); ok {
		return fmt.Errorf("tag: %q: a tag cannot name a digest: %w", target, errdefs.ErrInvalidArgument)
	}
	name := reference.TagNameOnly(n).String()
	return s.update(func(r *records) error {
		i, err := find(r, src)
		if err != nil {
			return err
		}
		img := r.Images[i]
		if !contains(img.Names, name) {
			img.Names = append(append([]string(nil), img.Names...), name)
		}
		img.Added = time.Now().UTC()
		put(r, img)
		return nil
	})
}

// RemoveReport says what a removal did, in docker rmi's terms.
type RemoveReport struct {
	Untagged []string
	Deleted  []digest.Digest
}

// ConflictError is a removal refused because the image is still needed.
type ConflictError struct {
	Ref    string
	Reason string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("conflict: unable to remove %s: %s", e.Ref, e.Reason)
}
func (e *ConflictError) Unwrap() error { return errdefs.ErrConflict }

// Remove removes ref as docker rmi does: a name is untagged, and the image
// deleted when that was its last name; an ID deletes the image, which
// needs force when more than one name refers to it. An image that a
// container uses or that is mounted is refused (force unmounts a mount).
// Its blobs and layers go by garbage collection once no writer is busy.
func (s *Store) Remove(ctx context.Context, ref string, force bool) (RemoveReport, error) {
	var rep RemoveReport
	var target Image
	err := s.update(func(r *records) error {
		i, err := find(r, ref)
		if err != nil {
			return err
		}
		img := r.Images[i]
		byName := !isHexPrefix(strings.TrimPrefix(ref, "sha256:")) || !strings.HasPrefix(img.ID.Encoded(), strings.TrimPrefix(ref, "sha256:"))
		if byName {
			n, _ := reference.ParseNormalizedNamed(ref)
			if d, ok := n.(reference.Digested); ok {
				dref := n.Name() + "@" + d.Digest().String()
				img.Digests = remove(img.Digests, dref)
				rep.Untagged = append(rep.Untagged, FamiliarString(dref))
			} else {
				full := reference.TagNameOnly(n).String()
				img.Names = remove(append([]string(nil), img.Names...), full)
				rep.Untagged = append(rep.Untagged, FamiliarString(full))
			}
			if len(img.Names) > 0 {
				r.Images[i] = img
				return nil
			}
		} else if len(img.Names) > 1 && !force {
			return &ConflictError{Ref: ref, Reason: fmt.Sprintf("image is referenced by %d names (%s); remove them by name, or use -f", len(img.Names), strings.Join(familiarAll(img.Names), ", "))}
		}
		if users, err := s.usersOf(ctx, img.ID); err != nil {
			return err
		} else if len(users) > 0 {
			return &ConflictError{Ref: ref, Reason: fmt.Sprintf("container %s is using it; remove the container first", strings.Join(users, ", "))}
		}
		if s.isMounted(img.ID) && !force {
			return &ConflictError{Ref: ref, Reason: "the image is mounted (berth image unmount it, or use -f)"}
		}
		if !byName {
			for _, n := range img.Names {
				rep.Untagged = append(rep.Untagged, FamiliarString(n))
			}
		}
		for _, d := range img.Digests {
			rep.Untagged = append(rep.Untagged, FamiliarString(d))
		}
		rep.Deleted = append(rep.Deleted, img.ID)
		target = img
		r.Images = append(r.Images[:i], r.Images[i+1:]...)
		return nil
	})
	if err != nil {
		return RemoveReport{}, err
	}
	if len(rep.Deleted) > 0 && s.isMounted(target.ID) {
		s.unmountPath(target.ID.Encoded())
		s.snaps.Remove(ctx, mountKey(target.ID))
	}
	return rep, nil
}

func familiarAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = FamiliarString(n)
	}
	return out
}

func (s *Store) usersOf(ctx context.Context, id digest.Digest) ([]string, error) {
	if s.users == nil {
		return nil, nil
	}
	return s.users(ctx, id)
}

// PruneReport says what an image prune removed.
type PruneReport struct {
	Deleted []digest.Digest
	GC      GCReport
}

// Prune removes dangling images (no name), or with all every image no
// container uses, then collects what they leave, waiting for writers.
func (s *Store) Prune(ctx context.Context, all bool) (PruneReport, error) {
	var rep PruneReport
	// Rounds: removing a dangling image can leave its parent (a build
	// step) dangling, and a dead chain of steps goes whole, as Docker's.
	for removed := true; removed; {
		removed = false
		imgs, err := s.List(ctx)
		if err != nil {
			return rep, err
		}
		inter := Intermediate(imgs)
		for _, img := range imgs {
			if !all && (len(img.Names) > 0 || inter[img.ID]) {
				continue
			}
			if users, _ := s.usersOf(ctx, img.ID); len(users) > 0 {
				continue
			}
			if s.isMounted(img.ID) {
				continue
			}
			err := s.update(func(r *records) error {
				for i := range r.Images {
					if r.Images[i].ID == img.ID && (all || len(r.Images[i].Names) == 0) {
						r.Images = append(r.Images[:i], r.Images[i+1:]...)
						rep.Deleted = append(rep.Deleted, img.ID)
						removed = true
						return nil
					}
				}
				return nil
			})
			if err != nil {
				return rep, err
			}
		}
		if all {
			break
		}
	}
	var err error
	rep.GC, err = s.GC(ctx, GCOptions{Wait: true, Ingests: true})
	return rep, err
}
