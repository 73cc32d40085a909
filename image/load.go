package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// LoadOptions control Load.
type LoadOptions struct {
	// Platform chooses from manifest lists; zero means the host's.
	Platform ocispec.Platform
	// Artifact, if set, is handed each artifact an OCI layout lists (an
	// index.json entry with an artifactType), before any image is checked.
	// Without it artifacts are skipped.
	Artifact func(Artifact) error
	// Check, if set, decides on each image before anything of it is
	// unpacked or recorded: an error stores none of the images.
	Check func(context.Context, Candidate) error
}

// Loaded is an image a load stored.
type Loaded struct {
	ID    digest.Digest
	Names []string
}

// Annotations OCI layouts name images with.
const (
	annotationRefName        = ocispec.AnnotationRefName
	annotationContainerdName = "io.containerd.image.name"
)

const maxArchiveMetadata = 16 << 20

// dockerManifest is one entry of a docker-archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// archiveIndex is what a pass over an archive found: its metadata files
// and, for every other file, the blob it was stored as.
type archiveIndex struct {
	meta  map[string][]byte
	files map[string]ocispec.Descriptor
	links map[string]string
}

func (a *archiveIndex) lookup(p string) (ocispec.Descriptor, bool) {
	p = cleanArchivePath(p)
	for i := 0; i < 16; i++ {
		if d, ok := a.files[p]; ok {
			return d, true
		}
		t, ok := a.links[p]
		if !ok {
			break
		}
		p = t
	}
	return ocispec.Descriptor{}, false
}

func cleanArchivePath(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// Load stores the images of a docker-archive or OCI archive read from r
// (gzip, bzip2 or zstd compressed archives too) and unpacks them. Nothing
// is listed before every blob and layer of an image has been verified; a
// failed load leaves the images already in the store as they were.
func (s *Store) Load(ctx context.Context, r io.Reader, o LoadOptions) ([]Loaded, error) {
	release, err := s.writing(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	dr, _, err := archive.DecompressStream(r)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer dr.Close()
	idx, err := s.ingestArchive(ctx, dr)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	imgs, err := s.imagesOfArchive(ctx, idx, o)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return imgs, nil
}

// LoadPath loads from a file (an archive) or a directory (an OCI layout).
func (s *Store) LoadPath(ctx context.Context, p string, o LoadOptions) ([]Loaded, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if !fi.IsDir() {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		defer f.Close()
		head := make([]byte, 8)
		n, _ := f.ReadAt(head, 0)
		if !fi.Mode().IsRegular() || archive.DetectCompression(head[:n]) != archive.Uncompressed {
			return s.Load(ctx, f, o) // a compressed archive is read as a stream
		}
		release, err := s.writing(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
		imgs, err := s.loadFile(ctx, f, o)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		return imgs, nil
	}
	release, err := s.writing(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	b, err := readLimited(filepath.Join(p, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("load %s: not an OCI layout: %w", p, err)
	}
	src := layoutDir(p)
	idx := &archiveIndex{meta: map[string][]byte{"index.json": b}, files: map[string]ocispec.Descriptor{}}
	if ol, err := readLimited(filepath.Join(p, ocispec.ImageLayoutFile)); err == nil {
		idx.meta[ocispec.ImageLayoutFile] = ol
	}
	imgs, err := s.imagesOfLayout(ctx, idx, o, src)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", p, err)
	}
	return imgs, nil
}

func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxArchiveMetadata+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxArchiveMetadata {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", p, maxArchiveMetadata, errdefs.ErrInvalidArgument)
	}
	return b, nil
}

// ingestArchive reads an archive once, storing every file in it as a blob
// (verified against its name where the name is a digest) and keeping the
// small metadata files in memory. Archives list their manifests anywhere
// (docker save puts manifest.json last), so everything is taken in first.
func (s *Store) ingestArchive(ctx context.Context, r io.Reader) (*archiveIndex, error) {
	idx := &archiveIndex{meta: map[string][]byte{}, files: map[string]ocispec.Descriptor{}, links: map[string]string{}}
	err := walkArchive(ctx, tar.NewReader(r), idx.links, func(name string, hdr *tar.Header, r io.Reader) error {
		switch name {
		case "manifest.json", "index.json", ocispec.ImageLayoutFile, "repositories":
			if hdr.Size > maxArchiveMetadata {
				return fmt.Errorf("%s in the archive is %d bytes, more than the %d allowed: %w", name, hdr.Size, maxArchiveMetadata, errdefs.ErrInvalidArgument)
			}
			b, err := io.ReadAll(r)
			if err != nil {
				return fmt.Errorf("the archive is truncated: %s: %w: %w", name, errdefs.ErrInvalidArgument, err)
			}
			idx.meta[name] = b
			return nil
		}
		desc, err := s.ingestFile(ctx, name, hdr.Size, r)
		if err != nil {
			return err
		}
		idx.files[name] = desc
		return nil
	})
	if err != nil {
		return nil, err
	}
	return idx, nil
}

// walkArchive reads an archive's members in order: links are recorded by
// name (resolved when a manifest names them), regular files handed to
// file, anything else skipped. An archive with no file is refused.
func walkArchive(ctx context.Context, tr *tar.Reader, links map[string]string, file func(name string, hdr *tar.Header, r io.Reader) error) error {
	files := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("the archive is truncated or not a tar archive: %w: %w", errdefs.ErrInvalidArgument, err)
		}
		name := cleanArchivePath(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeSymlink:
			links[name] = cleanArchivePath(path.Join(path.Dir(name), hdr.Linkname))
		case tar.TypeLink:
			links[name] = cleanArchivePath(hdr.Linkname)
		case tar.TypeReg, tar.TypeRegA:
			files++
			if err := file(name, hdr, tr); err != nil {
				return err
			}
		}
	}
	if files == 0 {
		return fmt.Errorf("the archive is empty: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// ingestFile stores one archive member. A member named like a blob
// (blobs/<algorithm>/<hex>) must hash to that name.
func (s *Store) ingestFile(ctx context.Context, name string, size int64, r io.Reader) (ocispec.Descriptor, error) {
	if parts := strings.Split(name, "/"); len(parts) == 3 && parts[0] == "blobs" {
		d := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[2])
		if err := d.Validate(); err == nil {
			desc := ocispec.Descriptor{Digest: d, Size: size}
			if _, err := content.WriteBlob(ctx, s.content, "load-"+d.String(), r, desc); err != nil {
				if errdefs.IsDataLoss(err) || errdefs.IsFailedPrecondition(err) {
					return desc, fmt.Errorf("archive member %s does not match its name: %w", name, err)
				}
				if errors.Is(err, io.ErrUnexpectedEOF) {
					return desc, fmt.Errorf("the archive is truncated in %s: %w", name, errdefs.ErrInvalidArgument)
				}
				return desc, fmt.Errorf("archive member %s: %w", name, err)
			}
			return desc, nil
		}
	}
	w, err := s.content.Writer(ctx, "load-file-"+randomHex(8), ocispec.Descriptor{})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer w.Close()
	n, err := io.Copy(w, r)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("the archive is truncated in %s: %w: %w", name, errdefs.ErrInvalidArgument, err)
	}
	d := w.Digest()
	if err := w.Commit(ctx, n, d); err != nil && !errdefs.IsAlreadyExists(err) {
		return ocispec.Descriptor{}, fmt.Errorf("archive member %s: %w", name, err)
	}
	return ocispec.Descriptor{Digest: d, Size: n}, nil
}

// imagesOfArchive turns an ingested archive into image records.
func (s *Store) imagesOfArchive(ctx context.Context, idx *archiveIndex, o LoadOptions) ([]Loaded, error) {
	if b, ok := idx.meta["manifest.json"]; ok {
		return s.imagesOfDockerArchive(ctx, idx, b, o)
	}
	if _, ok := idx.meta["index.json"]; ok {
		return s.imagesOfLayout(ctx, idx, o, nil)
	}
	return nil, fmt.Errorf("not a docker-archive or OCI archive: it has neither manifest.json nor index.json: %w", errdefs.ErrInvalidArgument)
}

func (s *Store) imagesOfDockerArchive(ctx context.Context, idx *archiveIndex, b []byte, o LoadOptions) ([]Loaded, error) {
	var entries []dockerManifest
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("manifest.json: %w: %w", errdefs.ErrInvalidArgument, err)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("manifest.json lists no images: %w", errdefs.ErrInvalidArgument)
	}
	var pending []pendingImage
	for i, e := range entries {
		cfg, ok := idx.lookup(e.Config)
		if !ok {
			return nil, fmt.Errorf("manifest.json entry %d: config %q is not in the archive: %w", i, e.Config, errdefs.ErrNotFound)
		}
		cfg.MediaType = MediaTypeDockerConfig
		var names []string
		for _, t := range e.RepoTags {
			n, err := ParseReference(t)
			if err != nil {
				return nil, fmt.Errorf("manifest.json entry %d: tag %q: %w", i, t, err)
			}
			names = append(names, n.String())
		}
		m := ocispec.Manifest{MediaType: MediaTypeDockerManifest, Config: cfg}
		m.SchemaVersion = 2
		for j, l := range e.Layers {
			ld, ok := idx.lookup(l)
			if !ok {
				return nil, fmt.Errorf("manifest.json entry %d: layer %d %q is not in the archive: %w", i, j, l, errdefs.ErrNotFound)
			}
			c, err := s.blobCompression(ctx, ld)
			if err != nil {
				return nil, err
			}
			switch c {
			case archive.Gzip:
				ld.MediaType = MediaTypeDockerLayerGzip
			case archive.Zstd:
				ld.MediaType = ocispec.MediaTypeImageLayerZstd
				m.MediaType = ocispec.MediaTypeImageManifest
			case archive.Uncompressed:
				ld.MediaType = MediaTypeDockerLayer
			default:
				return nil, fmt.Errorf("layer %q is %s-compressed, which no image format allows: %w", l, c, errdefs.ErrInvalidArgument)
			}
			m.Layers = append(m.Layers, ld)
		}
		if m.MediaType == ocispec.MediaTypeImageManifest {
			m.Config.MediaType = ocispec.MediaTypeImageConfig
			for j := range m.Layers {
				if m.Layers[j].MediaType == MediaTypeDockerLayerGzip {
					m.Layers[j].MediaType = ocispec.MediaTypeImageLayerGzip
				} else if m.Layers[j].MediaType == MediaTypeDockerLayer {
					m.Layers[j].MediaType = ocispec.MediaTypeImageLayer
				}
			}
		}
		mb, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		md, err := content.WriteBytes(ctx, s.content, m.MediaType, mb)
		if err != nil {
			return nil, err
		}
		pending = append(pending, pendingImage{desc: md, names: names})
	}
	return s.store(ctx, pending, o)
}

// layoutDir is an OCI layout directory as a source of blobs.
type layoutDir string

func (l layoutDir) blob(desc ocispec.Descriptor) (int64, func() (io.ReadCloser, error), bool) {
	d := desc.Digest
	if d.Validate() != nil {
		return 0, nil, false
	}
	p := filepath.Join(string(l), "blobs", d.Algorithm().String(), d.Encoded())
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return 0, nil, false
	}
	return fi.Size(), func() (io.ReadCloser, error) { return os.Open(p) }, true
}

// checkLayout checks an OCI layout's version file, where there is one.
func checkLayout(idx *archiveIndex) error {
	if ol, ok := idx.meta[ocispec.ImageLayoutFile]; ok {
		var layout ocispec.ImageLayout
		if err := json.Unmarshal(ol, &layout); err != nil {
			return fmt.Errorf("oci-layout: %w: %w", errdefs.ErrInvalidArgument, err)
		}
		if layout.Version != ocispec.ImageLayoutVersion {
			return fmt.Errorf("oci-layout version %q is not %s: %w", layout.Version, ocispec.ImageLayoutVersion, errdefs.ErrNotImplemented)
		}
	}
	return nil
}

func (s *Store) imagesOfLayout(ctx context.Context, idx *archiveIndex, o LoadOptions, src layerSource) ([]Loaded, error) {
	if err := checkLayout(idx); err != nil {
		return nil, err
	}
	var index ocispec.Index
	if err := json.Unmarshal(idx.meta["index.json"], &index); err != nil {
		return nil, fmt.Errorf("index.json: %w: %w", errdefs.ErrInvalidArgument, err)
	}
	if len(index.Manifests) == 0 {
		return nil, fmt.Errorf("index.json lists no images: %w", errdefs.ErrInvalidArgument)
	}
	var pending []pendingImage
	for i, m := range index.Manifests {
		if err := validDescriptor(m, fmt.Sprintf("index.json entry %d", i)); err != nil {
			return nil, err
		}
		if m.ArtifactType != "" {
			if err := s.loadArtifact(ctx, src, m, o); err != nil {
				return nil, err
			}
			continue
		}
		if src != nil {
			if err := s.fetchDocuments(ctx, src, m, platformOr(o.Platform)); err != nil {
				return nil, err
			}
		}
		var names []string
		if n := layoutName(m.Annotations); n != "" {
			names = append(names, n)
		}
		pending = append(pending, pendingImage{desc: m, names: names})
	}
	return s.storeFrom(ctx, pending, o, src)
}

// layoutName is the image name an OCI layout gives an entry: containerd's
// and Docker's full-name annotation, or a ref.name that is a full
// reference (a bare tag like "latest" names no repository).
func layoutName(ann map[string]string) string {
	for _, k := range []string{annotationContainerdName, annotationRefName} {
		v := ann[k]
		if v == "" || (k == annotationRefName && !strings.ContainsAny(v, "/:")) {
			continue
		}
		if n, err := ParseReference(v); err == nil {
			return n.String()
		}
	}
	return ""
}

func platformOr(p ocispec.Platform) ocispec.Platform {
	if p.OS == "" {
		return HostPlatform()
	}
	return p
}

// blobCompression sniffs a stored blob's compression.
func (s *Store) blobCompression(ctx context.Context, desc ocispec.Descriptor) (archive.Compression, error) {
	ra, err := s.content.ReaderAt(ctx, desc)
	if err != nil {
		return 0, err
	}
	defer ra.Close()
	head := make([]byte, 8)
	n, _ := ra.ReadAt(head, 0)
	return archive.DetectCompression(head[:n]), nil
}

type pendingImage struct {
	desc    ocispec.Descriptor
	names   []string
	digests []string
	// parent is the image this one was made from here (Derive).
	parent digest.Digest
}

// store resolves, unpacks and records images, all of them or none: the
// records are written once, after every image is complete.
func (s *Store) store(ctx context.Context, pending []pendingImage, o LoadOptions) ([]Loaded, error) {
	return s.storeFrom(ctx, pending, o, nil)
}

// storeFrom is store with layers that may still be in an archive.
func (s *Store) storeFrom(ctx context.Context, pending []pendingImage, o LoadOptions, src layerSource) ([]Loaded, error) {
	platform := platformOr(o.Platform)
	var imgs []Image
	byID := map[digest.Digest]int{}
	resolvedAll := make([]*resolved, len(pending))
	for i, p := range pending {
		res, err := resolve(ctx, s.content, p.desc, platform)
		if err != nil {
			return nil, err
		}
		if o.Check != nil {
			c := Candidate{Names: p.names, Digests: p.digests, Manifest: res.manifest, Parsed: res.m, Config: res.config}
			if err := o.Check(ctx, c); err != nil {
				return nil, err
			}
		}
		resolvedAll[i] = res
	}
	for i, p := range pending {
		res := resolvedAll[i]
		if err := s.unpack(ctx, res, src); err != nil {
			return nil, fmt.Errorf("image %s: %w", shortID(res.m.Config.Digest), err)
		}
		if err := s.keepBlobs(ctx, res, src); err != nil {
			return nil, fmt.Errorf("image %s: %w", shortID(res.m.Config.Digest), err)
		}
		img := s.recordOf(ctx, res)
		img.Names = p.names
		img.Digests = p.digests
		img.Parent = p.parent
		if i, ok := byID[img.ID]; ok {
			for _, n := range p.names {
				if !contains(imgs[i].Names, n) {
					imgs[i].Names = append(imgs[i].Names, n)
				}
			}
			for _, d := range p.digests {
				if !contains(imgs[i].Digests, d) {
					imgs[i].Digests = append(imgs[i].Digests, d)
				}
			}
			continue
		}
		byID[img.ID] = len(imgs)
		imgs = append(imgs, img)
	}
	if err := s.update(func(r *records) error {
		for _, img := range imgs {
			put(r, img)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]Loaded, len(imgs))
	for i, img := range imgs {
		out[i] = Loaded{ID: img.ID, Names: img.Names}
	}
	return out, nil
}

// keepBlobs stores the layer blobs an unpack did not read because the
// layers were unpacked already (the same image came in before with other
// compressed blobs): the record must name only blobs that are there.
func (s *Store) keepBlobs(ctx context.Context, res *resolved, src layerSource) error {
	for i, l := range res.m.Layers {
		if _, err := s.content.Info(ctx, l.Digest); err == nil {
			continue
		}
		if src == nil {
			return fmt.Errorf("layer %d: blob %s: %w", i+1, l.Digest, errdefs.ErrNotFound)
		}
		_, open, ok := src.blob(l)
		if !ok {
			return fmt.Errorf("layer %d: blob %s is not in the archive: %w", i+1, l.Digest, errdefs.ErrNotFound)
		}
		rc, err := open()
		if err != nil {
			return err
		}
		_, err = content.WriteBlob(ctx, s.content, "load-"+l.Digest.String(), rc, l)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %d: %w", i+1, err)
		}
	}
	return nil
}

// recordOf builds the record of a resolved, unpacked image.
func (s *Store) recordOf(ctx context.Context, res *resolved) Image {
	img := Image{
		ID:       res.m.Config.Digest,
		Manifest: res.manifest,
		Index:    res.index,
		ChainID:  res.chainID(),
		Added:    time.Now().UTC(),
	}
	if res.config.Created != nil {
		img.Created = res.config.Created.UTC()
	}
	for _, c := range res.chain {
		if u, err := s.snaps.Usage(ctx, c.String()); err == nil {
			img.Size += u.Size
		}
	}
	return img
}

// loadArtifact hands an artifact of a layout to o.Artifact.
func (s *Store) loadArtifact(ctx context.Context, src layerSource, desc ocispec.Descriptor, o LoadOptions) error {
	if o.Artifact == nil {
		return nil
	}
	a, err := s.artifactOf(ctx, src, desc)
	if err != nil {
		return err
	}
	return o.Artifact(a)
}
