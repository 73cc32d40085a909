package image

import (
	"context"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// A Fetcher reads an image's manifests and blobs from elsewhere (a
// registry), for Pull. What it returns is not trusted: every byte is
// checked against the descriptor's digest and size before it counts.
type Fetcher interface {
	// Fetch returns the content desc names: a manifest or index when
	// desc's media type says so, a blob otherwise.
	Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
}

// A RangeFetcher can also fetch a blob from an offset on: a layer an
// interrupted pull left half fetched is then taken up where it stopped.
type RangeFetcher interface {
	Fetcher
	FetchFrom(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error)
}

// PullOptions control Pull.
type PullOptions struct {
	// Platform picks the manifest of an index (default: the host's).
	Platform ocispec.Platform
	// Names are recorded for the image (a pull by digest has none).
	Names []string
	// Digests are the name@digest references it is known by
	// (docker.io/library/busybox@sha256:...), its RepoDigests.
	Digests []string
	// Progress, if set, hears of each layer as its fetch starts and ends.
	Progress func(LayerEvent)
	// Check, if set, decides on the image once its manifest and config
	// are fetched and before any layer is: an error stores nothing.
	Check func(context.Context, Candidate) error
}

// LayerEvent is a layer's fetch starting (Done false) or ending.
type LayerEvent struct {
	Layer ocispec.Descriptor
	Done  bool
	Err   error
	// Cached: the layer was in the store already, nothing was fetched.
	Cached bool
}

// Pull stores the image desc names, fetched through f: its manifests and
// config first, then its layers, each streamed once from f through the
// digest check and the decompressor into its snapshot (several at a time),
// and kept as a blob. Layers already unpacked are not fetched again, so a
// pull that was interrupted goes on where it stopped. As with Load, the
// image is listed only once all of it is verified and stored.
func (s *Store) Pull(ctx context.Context, f Fetcher, desc ocispec.Descriptor, o PullOptions) (Loaded, error) {
	if err := validDescriptor(desc, "manifest"); err != nil {
		return Loaded{}, err
	}
	release, err := s.writing(ctx)
	if err != nil {
		return Loaded{}, err
	}
	defer release()
	src := &fetchSource{ctx: ctx, f: f, progress: o.Progress}
	platform := platformOr(o.Platform)
	if err := s.fetchDocuments(ctx, src, desc, platform); err != nil {
		return Loaded{}, err
	}
	imgs, err := s.storeFrom(ctx, []pendingImage{{desc: desc, names: o.Names, digests: o.Digests}}, LoadOptions{Platform: platform, Check: o.Check}, src)
	if err != nil {
		return Loaded{}, err
	}
	if len(imgs) != 1 {
		return Loaded{}, fmt.Errorf("pull stored %d images, want 1", len(imgs))
	}
	return imgs[0], nil
}

// fetchSource serves a fetcher's content where an unpack reads a layer
// source: sizes are the descriptors', checked by the commit.
type fetchSource struct {
	ctx      context.Context
	f        Fetcher
	progress func(LayerEvent)
}

// extraWorkers: two more layers in flight than cores (measured on two
// cores against a registry on loopback: 17% faster than one per core,
// no faster with more).
func (fs *fetchSource) extraWorkers() int { return 2 }

func (fs *fetchSource) blob(desc ocispec.Descriptor) (int64, func() (io.ReadCloser, error), bool) {
	return -1, func() (io.ReadCloser, error) {
		rc, err := fs.f.Fetch(fs.ctx, desc)
		if err != nil {
			return nil, err
		}
		if fs.progress == nil || isIndex(desc.MediaType) || isManifest(desc.MediaType) || isConfig(desc.MediaType) {
			return rc, nil
		}
		fs.progress(LayerEvent{Layer: desc})
		return &reportingReader{ReadCloser: rc, desc: desc, report: fs.progress}, nil
	}, true
}

// blobFrom opens a blob from offset on, when the fetcher can.
func (fs *fetchSource) blobFrom(desc ocispec.Descriptor, offset int64) (func() (io.ReadCloser, error), bool) {
	rf, ok := fs.f.(RangeFetcher)
	if !ok {
		return nil, false
	}
	return func() (io.ReadCloser, error) {
		rc, err := rf.FetchFrom(fs.ctx, desc, offset)
		if err != nil {
			return nil, err
		}
		if fs.progress == nil {
			return rc, nil
		}
		fs.progress(LayerEvent{Layer: desc})
		return &reportingReader{ReadCloser: rc, desc: desc, report: fs.progress}, nil
	}, true
}

// reportingReader tells of a layer's end: EOF read, or closed before.
type reportingReader struct {
	io.ReadCloser
	desc   ocispec.Descriptor
	report func(LayerEvent)
	done   bool
	err    error
}

func (r *reportingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

func (r *reportingReader) Close() error {
	err := r.ReadCloser.Close()
	if !r.done {
		r.done = true
		r.report(LayerEvent{Layer: r.desc, Done: true, Err: r.err})
	}
	return err
}
