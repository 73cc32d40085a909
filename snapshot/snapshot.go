// Package snapshot keeps the file system trees of images and containers
// as snapshots: each layer of an image is a committed snapshot whose
// parent is the layer below, shared by every image that has the same
// chain of layers; a container's writable layer is an active snapshot on
// top of its image's chain.
//
// Vocabulary (containerd's, whose Snapshotter API this follows):
//
//   - key: the name of an active or view snapshot, chosen by the caller.
//   - name: the name of a committed snapshot (for image layers, the chain
//     ID, so that equal chains are stored once).
//   - Prepare(key, parent) makes an active snapshot, writable, on top of
//     a committed parent (or empty); Mounts tells how to mount it.
//   - View(key, parent) is a read-only active snapshot of parent.
//   - Commit(name, key) turns an active snapshot into an immutable
//     committed one; committed snapshots are only ever parents.
//   - Remove deletes a snapshot that is no other snapshot's parent.
//
// Snapshotters return mounts; callers mount them (MountAll) where they
// need the tree. Two implementations: overlay, where a snapshot holds only
// its own changes and the kernel merges the chain, and vfs, a full copy of
// the parent per snapshot, for where overlayfs cannot work.
//
// The package owns the trees and their parentage, not what they are for:
// which snapshots images and containers use, and when unused ones go, is
// decided by package image's garbage collection.
//
// Layout on disk (one directory per driver):
//
//	<root>/
//	  lock                     flock held while metadata changes
//	  snapshots/<id>/
//	    info.json              name, parent, kind, size: written atomically,
//	                           the commit point of every change
//	    fs/                    overlay: the layer's own files (the upper dir);
//	                           vfs: the whole tree
//	    work/                  overlay work dir of an active snapshot
//	  snapshots/.new-<id>/     a snapshot being assembled; renamed to <id>
//	                           with its info.json in place, removed if its
//	                           maker died
//	  removing/<id>/           snapshots being deleted (renamed here first, so
//	                           a crash never leaves half a snapshot under snapshots/)
package snapshot

import (
	"context"
	"time"
)

// Kind is the state of a snapshot.
type Kind string

const (
	KindActive    Kind = "active"
	KindView      Kind = "view"
	KindCommitted Kind = "committed"
)

// Info describes a snapshot.
type Info struct {
	Name    string            `json:"name"`
	Parent  string            `json:"parent,omitempty"`
	Kind    Kind              `json:"kind"`
	Created time.Time         `json:"created"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Size is the bytes of the snapshot's own content (its layer, for
	// overlay), measured at commit; 0 for active snapshots.
	Size int64 `json:"size,omitempty"`
	// Inodes is the number of entries in the snapshot's own content.
	Inodes int64 `json:"inodes,omitempty"`
}

// Usage is the disk use of a snapshot's own content.
type Usage struct {
	Size   int64
	Inodes int64
}

// Opt sets optional properties of a snapshot being made or committed.
type Opt func(*Info)

// WithLabels adds labels (for example the lease or container owning an
// active snapshot, which garbage collection reads).
func WithLabels(l map[string]string) Opt {
	return func(i *Info) {
		if i.Labels == nil {
			i.Labels = map[string]string{}
		}
		for k, v := range l {
			i.Labels[k] = v
		}
	}
}

// Snapshotter is the seam between the engine and the trees on disk.
type Snapshotter interface {
	// Stat returns a snapshot's info, or errdefs.ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Prepare makes a writable active snapshot on parent ("" for empty).
	Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)
	// View makes a read-only snapshot of parent.
	View(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)
	// Mounts returns the mounts of an active or view snapshot.
	Mounts(ctx context.Context, key string) ([]Mount, error)
	// Commit turns the active snapshot key into the committed snapshot
	// name, made durable first. A name already committed is
	// errdefs.ErrAlreadyExists (and key is left for the caller to remove).
	Commit(ctx context.Context, name, key string, opts ...Opt) error
	// Remove deletes a snapshot; one that is a parent is
	// errdefs.ErrFailedPrecondition.
	Remove(ctx context.Context, key string) error
	// Walk calls fn for every snapshot.
	Walk(ctx context.Context, fn func(Info) error) error
	// Usage measures a snapshot's own content (cached for committed ones).
	Usage(ctx context.Context, key string) (Usage, error)
	// Check verifies the store's structure: every snapshot's parent exists
	// and is committed, every snapshot has its directories. It returns one
	// problem per string.
	Check(ctx context.Context) ([]Problem, error)
	// Driver names the implementation ("overlay", "vfs").
	Driver() string
}

// Rebaser is implemented by snapshotters whose active snapshots hold only
// their own changes, never a copy of their parent (overlay). An active
// snapshot prepared without a parent can then be committed on top of a
// parent chosen at commit time, which lets an unpack extract all of an
// image's layers at once and stack them afterwards.
type Rebaser interface {
	CommitOnto(ctx context.Context, name, key, parent string, opts ...Opt) error
}

// Problem is an inconsistency found by Check.
type Problem struct {
	// Snapshot is the snapshot's name or key, or its id when it has no
	// readable info.
	Snapshot string
	What     string
	// Repair removes the broken snapshot (and nothing else); nil when
	// there is nothing safe to do.
	Repair func(context.Context) error
}
