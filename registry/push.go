package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxConfig bounds an image config read for a push.
const maxConfig = 16 << 20

// PushOptions control Push.
type PushOptions struct {
	// Jobs is how many blobs upload at once (default 4).
	Jobs int
	// Progress hears of each step (Lines for Docker's output); nil for none.
	Progress Reporter
	// Compression: the layers' (default: as stored). Layers compressed
	// otherwise are recompressed for the push, and the manifest pushed is
	// then an OCI manifest of its own digest; the stored image is unchanged.
	Compression Compression
}

// Pushed is what a push wrote.
type Pushed struct {
	Ref    string
	Digest digest.Digest
	Size   int64
}

// Push uploads a stored image to dest (default: the name it is stored
// under) as it is stored: the same manifest bytes, so the same digest,
// which is what signatures name. Blobs the registry has are skipped
// (HEAD), and uploads run in parallel.
func (cl *Client) Push(ctx context.Context, store *image.Store, local, dest string, o PushOptions) (Pushed, error) {
	img, err := store.Get(ctx, local)
	if err != nil {
		return Pushed{}, err
	}
	if dest == "" {
		dest = local
	}
	ref, err := cl.Reference(dest)
	if err != nil {
		return Pushed{}, err
	}
	if o.Jobs <= 0 {
		o.Jobs = 4
	}
	rep := o.Progress
	if rep == nil {
		rep = quiet{}
	}
	say := func(format string, a ...any) { rep.Status(fmt.Sprintf(format, a...)) }
	cs := store.Content()
	mb, err := content.ReadBlob(ctx, cs, img.Manifest, MaxManifest)
	if err != nil {
		return Pushed{}, fmt.Errorf("push %s: manifest: %w", ref.Name(), err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return Pushed{}, fmt.Errorf("push %s: manifest: %v: %w", ref.Name(), err, errdefs.ErrDataLoss)
	}
	cb, err := content.ReadBlob(ctx, cs, m.Config, maxConfig)
	if err != nil {
		return Pushed{}, fmt.Errorf("push %s: config: %w", ref.Name(), err)
	}
	mt := img.Manifest.MediaType
	if mt == "" {
		mt = m.MediaType
	}
	si := &storeImage{ctx: ctx, cs: cs, manifest: mb, config: cb, mediaType: types.MediaType(mt), layers: map[string]ocispec.Descriptor{}, rep: rep, opened: map[string]bool{}}
	for _, l := range m.Layers {
		si.layers[l.Digest.String()] = l
	}
	if o.Compression != AsStored {
		need := false
		for _, l := range m.Layers {
			need = need || layerCompression(l.MediaType) != o.Compression
		}
		if need {
			say("Recompressing layers with %s", o.Compression)
			newManifest, cleanup, err := recompress(ctx, si, m, o.Compression, o.Jobs)
			if err != nil {
				return Pushed{}, fmt.Errorf("push %s: %w", ref.Name(), err)
			}
			defer cleanup()
			mb = newManifest
			m.Layers = nil
			json.Unmarshal(mb, &m)
		}
	}
	vimg, err := partial.CompressedToImage(si)
	if err != nil {
		return Pushed{}, err
	}
	base, err := cl.base(ref.Context().RegistryStr())
	if err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", ref.Name(), err)
	}
	// A layer the registry has in another repository the image came from
	// is mounted from there rather than uploaded again. Recompressed layers
	// are nowhere yet, so nothing is mounted then. Mounts go one at a time:
	// go-containerregistry v0.20.6 swaps its HTTP client for one with the
	// source's scope while other uploads use it (a data race -race sees).
	jobs := o.Jobs
	if from := mountSource(img, ref); from != nil && len(si.files) == 0 {
		vimg = &mountable{Image: vimg, from: from}
		jobs = 1
	}
	say("The push refers to repository [%s]", image.FamiliarString(ref.Context().String()))
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(base), remote.WithAuthFromKeychain(cl.creds),
		remote.WithJobs(jobs), remote.WithRetryBackoff(backoff(cl.wait, cl.tries)), remote.WithUserAgent(cl.ua)}
	if err := remote.Write(ref, vimg, opts...); err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", ref.Name(), classify(ref.Context().RegistryStr(), err))
	}
	for _, l := range m.Layers {
		if !si.wasOpened(l.Digest.String()) {
			rep.Done(l, nil, true)
		}
	}
	d := digest.FromBytes(mb)
	say("%s: digest: %s size: %d", ref.Identifier(), d, len(mb))
	return Pushed{Ref: ref.Name(), Digest: d, Size: int64(len(mb))}, nil
}

// mountSource is another repository of the destination's registry the
// image is known in (it was pulled from or pushed to there).
func mountSource(img image.Image, dest name.Reference) name.Reference {
	for _, n := range append(append([]string(nil), img.Names...), img.Digests...) {
		r, err := name.ParseReference(n, name.Insecure)
		if err != nil {
			continue
		}
		if r.Context().RegistryStr() == dest.Context().RegistryStr() && r.Context().RepositoryStr() != dest.Context().RepositoryStr() {
			return r
		}
	}
	return nil
}

// mountable offers every layer for a cross-repository mount from one
// repository (go-containerregistry mounts MountableLayers).
type mountable struct {
	v1.Image
	from name.Reference
}

func (m *mountable) Layers() ([]v1.Layer, error) {
	ls, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = &remote.MountableLayer{Layer: l, Reference: m.from}
	}
	return out, nil
}

func short(d digest.Digest) string {
	s := d.Encoded()
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}

// storeImage is a stored image as go-containerregistry's compressed image
// core: its manifest and config as stored, its layers read (verified) from
// the content store.
type storeImage struct {
	ctx       context.Context
	cs        content.Store
	manifest  []byte
	config    []byte
	mediaType types.MediaType
	layers    map[string]ocispec.Descriptor
	rep       Reporter
	// files serve recompressed layers, by digest, instead of the store.
	files map[string]string

	mu     sync.Mutex
	opened map[string]bool
}

func (s *storeImage) RawConfigFile() ([]byte, error)      { return s.config, nil }
func (s *storeImage) MediaType() (types.MediaType, error) { return s.mediaType, nil }
func (s *storeImage) RawManifest() ([]byte, error)        { return s.manifest, nil }

func (s *storeImage) wasOpened(d string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened[d]
}

func (s *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	desc, ok := s.layers[h.String()]
	if !ok {
		if h.String() == digest.FromBytes(s.config).String() {
			return &storeLayer{img: s, desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.Digest(h.String()), Size: int64(len(s.config))}, quiet: true}, nil
		}
		return nil, fmt.Errorf("blob %s is not a layer of the image: %w", h, errdefs.ErrNotFound)
	}
	return &storeLayer{img: s, desc: desc}, nil
}

type storeLayer struct {
	img   *storeImage
	desc  ocispec.Descriptor
	quiet bool
}

func (l *storeLayer) Digest() (v1.Hash, error) { return v1.NewHash(l.desc.Digest.String()) }
func (l *storeLayer) Size() (int64, error)     { return l.desc.Size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.desc.MediaType), nil
}

func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	var rc io.ReadCloser
	var err error
	if p, ok := l.img.files[l.desc.Digest.String()]; ok {
		rc, err = os.Open(p)
	} else {
		rc, err = content.Open(l.img.ctx, l.img.cs, l.desc)
	}
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.desc.Digest, err)
	}
	if l.quiet {
		return rc, nil
	}
	l.img.mu.Lock()
	first := !l.img.opened[l.desc.Digest.String()]
	l.img.opened[l.desc.Digest.String()] = true
	l.img.mu.Unlock()
	if first {
		l.img.rep.Start(l.desc)
	}
	return &pushReader{ReadCloser: &counting{ReadCloser: rc, rep: l.img.rep, desc: l.desc}, done: func() { l.img.rep.Done(l.desc, nil, false) }}, nil
}

type pushReader struct {
	io.ReadCloser
	done func()
	once sync.Once
}

func (p *pushReader) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b)
	if err == io.EOF {
		p.once.Do(p.done)
	}
	return n, err
}
