package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/snapshot"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Labels berth puts on snapshots so garbage collection knows who owns an
// active one.
const (
	labelOwner = "berth.io/owner"
	// labelDiffSize on a committed layer snapshot is the size of the
	// layer's uncompressed tar: saving it uncompressed (docker-archive)
	// needs the size before the bytes.
	labelDiffSize = "berth.io/diff-size"
	ownerUnpack   = "unpack"
	ownerMount    = "mount"
)

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// LayerError says which layer of an image could not be unpacked.
type LayerError struct {
	Index  int
	Digest digest.Digest
	Err    error
}

func (e *LayerError) Error() string {
	return fmt.Sprintf("layer %d (%s): %v", e.Index+1, e.Digest, e.Err)
}
func (e *LayerError) Unwrap() error { return e.Err }

// unpack makes every layer of res a committed snapshot named by its chain
// ID, unpacking only those not already there (layers are shared between
// images). Each layer is checked against its diff_id before it counts.
func (s *Store) unpack(ctx context.Context, res *resolved, src layerSource) error {
	n := len(res.chain)
	start := 0
	for i := n - 1; i >= 0; i-- {
		if info, err := s.snaps.Stat(ctx, res.chain[i].String()); err == nil && info.Kind == snapshot.KindCommitted {
			start = i + 1
			break
		}
	}
	if start == n {
		return nil
	}
	if rb, ok := s.snaps.(snapshot.Rebaser); ok {
		return s.unpackParallel(ctx, res, start, rb, src)
	}
	return s.unpackSequential(ctx, res, start, src)
}

type extraction struct {
	key      string
	dir      string
	done     chan struct{}
	err      error
	result   archive.Result
	diffSize int64
}

// unpackParallel extracts layers start..n-1 at once, each into its own
// snapshot (overlay layers hold only their own changes, so none needs the
// one below to be done, except to look up the rare entry a layer implies
// from below, for which it waits), then stacks them in order.
func (s *Store) unpackParallel(ctx context.Context, res *resolved, start int, rb snapshot.Rebaser, src layerSource) error {
	n := len(res.chain)
	run := randomHex(6)
	var below []string
	if start > 0 {
		viewKey := "unpack-view-" + run
		mounts, err := s.snaps.View(ctx, viewKey, res.chain[start-1].String(), snapshot.WithLabels(map[string]string{labelOwner: ownerUnpack}))
		if err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
		defer s.snaps.Remove(context.WithoutCancel(ctx), viewKey)
		below = snapshot.LayerDirs(mounts)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make([]*extraction, n)
	for i := start; i < n; i++ {
		jobs[i] = &extraction{key: fmt.Sprintf("extract-%s-%d", run, i), done: make(chan struct{})}
	}
	defer func() {
		for i := start; i < n; i++ {
			<-jobs[i].done
		}
		// Whatever was not committed goes, also on success (a layer
		// another process committed first).
		for i := start; i < n; i++ {
			if jobs[i].dir != "" {
				s.snaps.Remove(context.WithoutCancel(ctx), jobs[i].key)
			}
		}
	}()
	workers := runtime.GOMAXPROCS(0)
	if workers < 2 {
		workers = 2
	}
	if ps, ok := src.(interface{ extraWorkers() int }); ok {
		// A network source waits on the far end: more layers in flight
		// keep the cores busy while some wait.
		workers += ps.extraWorkers()
	}
	sem := make(chan struct{}, workers)
	ignoreOwner := os.Geteuid() != 0
	go func() {
		for i := start; i < n; i++ {
			// Slots are taken in layer order, so a layer waiting for the
			// ones below always waits for layers that hold a slot.
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				for k := i; k < n; k++ {
					jobs[k].err = ctx.Err()
					close(jobs[k].done)
				}
				return
			}
			go func(i int) {
				j := jobs[i]
				defer close(j.done)
				defer func() { <-sem }()
				mounts, err := s.snaps.Prepare(ctx, j.key, "", snapshot.WithLabels(map[string]string{labelOwner: ownerUnpack}))
				if err != nil {
					j.err = err
					cancel()
					return
				}
				j.dir = mounts[0].Source
				lower := &archive.OverlayLower{}
				lower.Ready = func() error {
					for k := i - 1; k >= start; k-- {
						<-jobs[k].done
						if jobs[k].err != nil {
							return fmt.Errorf("a layer below failed")
						}
						lower.Dirs = append(lower.Dirs, jobs[k].dir)
					}
					lower.Dirs = append(lower.Dirs, below...)
					return nil
				}
				began := time.Now()
				j.result, j.diffSize, j.err = s.applyLayer(ctx, src, res.m.Layers[i], res.config.RootFS.DiffIDs[i], j.dir,
					archive.Options{Whiteouts: archive.WhiteoutOverlay, Lower: lower, IgnoreOwner: ignoreOwner})
				slog.Debug("unpacked layer", "index", i+1, "digest", res.m.Layers[i].Digest, "bytes", j.diffSize, "took", time.Since(began), "err", j.err)
				if j.err != nil {
					cancel()
				}
			}(i)
		}
	}()
	var first error
	for i := start; i < n; i++ {
		<-jobs[i].done
		if jobs[i].err != nil && first == nil && !errors.Is(jobs[i].err, context.Canceled) {
			first = &LayerError{Index: i, Digest: res.m.Layers[i].Digest, Err: jobs[i].err}
		}
	}
	if first == nil {
		for i := start; i < n; i++ {
			if jobs[i].err != nil {
				first = &LayerError{Index: i, Digest: res.m.Layers[i].Digest, Err: jobs[i].err}
				break
			}
		}
	}
	if first != nil {
		return first
	}
	// The root directory's attributes, for layers that do not set them,
	// come from the layer below (the merged view takes the upper's).
	for i := start; i < n; i++ {
		if jobs[i].result.RootSet {
			continue
		}
		var src string
		switch {
		case i > start:
			src = jobs[i-1].dir
		case len(below) > 0:
			src = below[0]
		default:
			continue
		}
		snapshot.CopyRootAttrs(src, jobs[i].dir)
	}
	for i := start; i < n; i++ {
		parent := ""
		if i > 0 {
			parent = res.chain[i-1].String()
		}
		err := rb.CommitOnto(ctx, res.chain[i].String(), jobs[i].key, parent, diffSizeLabel(jobs[i].diffSize))
		if errdefs.IsAlreadyExists(err) {
			continue // unpacked meanwhile by another process; ours is removed
		}
		if err != nil {
			return &LayerError{Index: i, Digest: res.m.Layers[i].Digest, Err: err}
		}
		jobs[i].dir = "" // committed: not ours to remove any more
	}
	return nil
}

func (s *Store) unpackSequential(ctx context.Context, res *resolved, start int, src layerSource) error {
	ignoreOwner := os.Geteuid() != 0
	run := randomHex(6)
	for i := start; i < len(res.chain); i++ {
		key := fmt.Sprintf("extract-%s-%d", run, i)
		parent := ""
		if i > 0 {
			parent = res.chain[i-1].String()
		}
		mounts, err := s.snaps.Prepare(ctx, key, parent, snapshot.WithLabels(map[string]string{labelOwner: ownerUnpack}))
		if err != nil {
			return &LayerError{Index: i, Digest: res.m.Layers[i].Digest, Err: err}
		}
		var size int64
		_, size, err = s.applyLayer(ctx, src, res.m.Layers[i], res.config.RootFS.DiffIDs[i], mounts[0].Source,
			archive.Options{Whiteouts: archive.WhiteoutDelete, IgnoreOwner: ignoreOwner})
		if err == nil {
			err = s.snaps.Commit(ctx, res.chain[i].String(), key, diffSizeLabel(size))
			if errdefs.IsAlreadyExists(err) {
				err = nil
			} else if err == nil {
				continue
			}
		}
		s.snaps.Remove(context.WithoutCancel(ctx), key)
		if err != nil {
			return &LayerError{Index: i, Digest: res.m.Layers[i].Digest, Err: err}
		}
	}
	return nil
}

// applyLayer streams one layer blob (from the store, or from an archive
// into the store) through the digest check, the decompressor and the
// diff_id check into dir, in one pass.
func (s *Store) applyLayer(ctx context.Context, src layerSource, desc ocispec.Descriptor, diffID digest.Digest, dir string, opts archive.Options) (archive.Result, int64, error) {
	rc, finish, done, err := s.openLayer(ctx, desc, src)
	if err != nil {
		return archive.Result{}, 0, err
	}
	defer done()
	dr, _, err := archive.DecompressStream(rc)
	if err != nil {
		return archive.Result{}, 0, err
	}
	defer dr.Close()
	limit := desc.Size * s.maxRatio
	if limit < 1<<30 {
		limit = 1 << 30
	}
	if !diffID.Algorithm().Available() {
		return archive.Result{}, 0, fmt.Errorf("diff_id %s: unsupported algorithm: %w", diffID, errdefs.ErrInvalidArgument)
	}
	// An uncompressed layer's diff_id is its blob digest, which the
	// blob's own check already computes: hash it once.
	sameAsBlob := desc.Digest == diffID
	h := &countingHash{Hash: diffID.Algorithm().Hash(), countOnly: sameAsBlob}
	tee := io.TeeReader(archive.Bounded(dr, limit), h)
	result, err := archive.Apply(ctx, dir, tee, opts)
	if err != nil {
		return result, 0, err
	}
	// The tar's end-of-archive blocks and any padding count for the
	// diff_id; the rest of the compressed stream counts for its digest.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return result, 0, fmt.Errorf("read layer: %w", err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return result, 0, err
	}
	if err := finish(); err != nil {
		return result, 0, err
	}
	if !sameAsBlob {
		if got := digest.NewDigest(diffID.Algorithm(), h); got != diffID {
			return result, 0, fmt.Errorf("uncompressed content has digest %s but the config's diff_id is %s: %w", got, diffID, errdefs.ErrDataLoss)
		}
	}
	return result, h.n, nil
}

type countingHash struct {
	hash.Hash
	n         int64
	countOnly bool
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if c.countOnly {
		return len(p), nil
	}
	return c.Hash.Write(p)
}

func diffSizeLabel(n int64) snapshot.Opt {
	return snapshot.WithLabels(map[string]string{labelDiffSize: strconv.FormatInt(n, 10)})
}
