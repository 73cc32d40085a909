package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// An archive on disk (not compressed as a whole) can be read at any
// offset, so its layers need not be copied into the store before they are
// unpacked: each layer is read once from its place in the archive, through
// the content writer (which verifies it and keeps it) and the decompressor
// into its snapshot, all layers at once.

// section is an archive member's place in the file.
type section struct {
	off, size int64
}

// tarIndex is an archive's table of contents.
type tarIndex struct {
	f     *os.File
	files map[string]section
	links map[string]string
}

// positionReader tracks the offset tar.Reader has reached; it seeks past
// file data instead of reading it, so indexing costs a few reads per
// member.
type positionReader struct {
	f   *os.File
	pos int64
}

func (p *positionReader) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	p.pos += int64(n)
	return n, err
}

func (p *positionReader) Seek(off int64, whence int) (int64, error) {
	n, err := p.f.Seek(off, whence)
	if err == nil {
		p.pos = n
	}
	return n, err
}

func indexTar(ctx context.Context, f *os.File) (*tarIndex, error) {
	pr := &positionReader{f: f}
	idx := &tarIndex{f: f, files: map[string]section{}, links: map[string]string{}}
	err := walkArchive(ctx, tar.NewReader(pr), idx.links, func(name string, hdr *tar.Header, _ io.Reader) error {
		if hdr.PAXRecords["GNU.sparse.major"] != "" {
			return fmt.Errorf("archive member %s is a sparse file: %w", name, errdefs.ErrInvalidArgument)
		}
		idx.files[name] = section{off: pr.pos, size: hdr.Size}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The last member must end inside the file: a truncated archive is
	// refused here, before anything is stored.
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	for name, s := range idx.files {
		if s.off+s.size > fi.Size() {
			return nil, fmt.Errorf("the archive is truncated in %s: %w", name, errdefs.ErrInvalidArgument)
		}
	}
	return idx, nil
}

func (t *tarIndex) lookup(p string) (section, string, bool) {
	p = cleanArchivePath(p)
	for i := 0; i < 16; i++ {
		if s, ok := t.files[p]; ok {
			return s, p, true
		}
		l, ok := t.links[p]
		if !ok {
			break
		}
		p = l
	}
	return section{}, p, false
}

func (t *tarIndex) reader(s section) *io.SectionReader {
	return io.NewSectionReader(t.f, s.off, s.size)
}

func (t *tarIndex) read(name string, max int64) ([]byte, bool, error) {
	s, _, ok := t.lookup(name)
	if !ok {
		return nil, false, nil
	}
	if s.size > max {
		return nil, true, fmt.Errorf("%s in the archive is %d bytes, more than the %d allowed: %w", name, s.size, max, errdefs.ErrInvalidArgument)
	}
	b, err := io.ReadAll(t.reader(s))
	return b, true, err
}

// blobDigest is the digest a blobs/<algorithm>/<hex> name states.
func blobDigest(name string) (digest.Digest, bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 3 || parts[0] != "blobs" {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[2])
	return d, d.Validate() == nil
}

// layerSource holds blobs that are not in the store yet (an archive's
// members, a layout directory's files), for an unpack to read in place.
type layerSource interface {
	// blob reports a blob's size (-1 when it is known only once read:
	// the commit checks it then) and how to read it.
	blob(d ocispec.Descriptor) (size int64, open func() (io.ReadCloser, error), ok bool)
}

// archiveSource serves layers straight from their place in the archive.
type archiveSource struct {
	idx   *tarIndex
	blobs map[digest.Digest]section
}

func (a *archiveSource) blob(desc ocispec.Descriptor) (int64, func() (io.ReadCloser, error), bool) {
	sec, ok := a.blobs[desc.Digest]
	if !ok {
		return 0, nil, false
	}
	return sec.size, func() (io.ReadCloser, error) { return io.NopCloser(a.idx.reader(sec)), nil }, true
}

// ingest copies a small member (a manifest, a config) into the store,
// verified against want when it is known.
func (a *archiveSource) ingest(ctx context.Context, s *Store, name string, sec section, want digest.Digest) (ocispec.Descriptor, error) {
	if want != "" {
		desc := ocispec.Descriptor{Digest: want, Size: sec.size}
		if _, err := content.WriteBlob(ctx, s.content, "load-"+want.String(), a.idx.reader(sec), desc); err != nil {
			return desc, fmt.Errorf("archive member %s does not match its name: %w", name, err)
		}
		return desc, nil
	}
	return s.ingestFile(ctx, name, sec.size, a.idx.reader(sec))
}

// loadFile loads an uncompressed archive file without copying its layers
// into the store first.
func (s *Store) loadFile(ctx context.Context, f *os.File, o LoadOptions) ([]Loaded, error) {
	idx, err := indexTar(ctx, f)
	if err != nil {
		return nil, err
	}
	src := &archiveSource{idx: idx, blobs: map[digest.Digest]section{}}
	for name, sec := range idx.files {
		if d, ok := blobDigest(name); ok {
			src.blobs[d] = sec
		}
	}
	if b, ok, err := idx.read("manifest.json", maxArchiveMetadata); err != nil {
		return nil, err
	} else if ok {
		pending, err := s.pendingOfDockerFile(ctx, src, b)
		if err != nil {
			return nil, err
		}
		return s.storeFrom(ctx, pending, o, src)
	}
	ib, ok, err := idx.read("index.json", maxArchiveMetadata)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("not a docker-archive or OCI archive: it has neither manifest.json nor index.json: %w", errdefs.ErrInvalidArgument)
	}
	meta := map[string][]byte{"index.json": ib}
	if ol, ok, _ := idx.read(ocispec.ImageLayoutFile, maxArchiveMetadata); ok {
		meta[ocispec.ImageLayoutFile] = ol
	}
	aidx := &archiveIndex{meta: meta}
	if err := checkLayout(aidx); err != nil {
		return nil, err
	}
	var index ocispec.Index
	if err := json.Unmarshal(ib, &index); err != nil {
		return nil, fmt.Errorf("index.json: %w: %w", errdefs.ErrInvalidArgument, err)
	}
	if len(index.Manifests) == 0 {
		return nil, fmt.Errorf("index.json lists no images: %w", errdefs.ErrInvalidArgument)
	}
	platform := platformOr(o.Platform)
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
		if err := s.fetchDocuments(ctx, src, m, platform); err != nil {
			return nil, err
		}
		var names []string
		if n := layoutName(m.Annotations); n != "" {
			names = append(names, n)
		}
		pending = append(pending, pendingImage{desc: m, names: names})
	}
	return s.storeFrom(ctx, pending, o, src)
}

// fetchDocuments stores desc's manifests and config from the archive,
// leaving the layers where they are.
func (s *Store) fetchDocuments(ctx context.Context, src layerSource, desc ocispec.Descriptor, platform ocispec.Platform) error {
	fetch := func(d ocispec.Descriptor) error {
		if _, err := s.content.Info(ctx, d.Digest); err == nil {
			return nil
		}
		size, open, ok := src.blob(d)
		if !ok {
			return fmt.Errorf("blob %s is not in the archive: %w", d.Digest, errdefs.ErrNotFound)
		}
		if size >= 0 && size != d.Size {
			return fmt.Errorf("blob %s: %d bytes in the archive, expected %d: %w", d.Digest, size, d.Size, errdefs.ErrDataLoss)
		}
		rc, err := open()
		if err != nil {
			return err
		}
		defer rc.Close()
		if _, err := content.WriteBlob(ctx, s.content, "load-"+d.Digest.String(), rc, d); err != nil {
			if _, isArchive := src.(*archiveSource); isArchive {
				return fmt.Errorf("archive member %s does not match its name: %w", blobName(d.Digest), err)
			}
			return err
		}
		return nil
	}
	if err := fetch(desc); err != nil {
		return err
	}
	mt, b, err := readDocument(ctx, s.content, desc)
	if err != nil {
		return err
	}
	if isIndex(mt) {
		idx, err := parseIndex(desc.Digest, b)
		if err != nil {
			return err
		}
		m, err := choosePlatform(idx, desc.Digest, platform)
		if err != nil {
			return err
		}
		return s.fetchDocuments(ctx, src, m, platform)
	}
	m, err := parseManifest(desc.Digest, b)
	if err != nil {
		return err
	}
	if err := fetch(m.Config); err != nil {
		return err
	}
	for _, l := range m.Layers {
		if _, err := s.content.Info(ctx, l.Digest); err == nil {
			continue
		}
		size, _, ok := src.blob(l)
		if !ok {
			return fmt.Errorf("blob %s is not in the archive: %w", l.Digest, errdefs.ErrNotFound)
		}
		if size >= 0 && size != l.Size {
			return fmt.Errorf("blob %s: %d bytes in the archive, expected %d: %w", l.Digest, size, l.Size, errdefs.ErrDataLoss)
		}
	}
	return nil
}

// pendingOfDockerFile builds the manifests of a docker-archive's images
// from manifest.json and the configs, learning each layer's digest from
// its name (blobs/sha256/...) or, for an uncompressed layer, from the
// config's diff_id, which the unpack then verifies.
func (s *Store) pendingOfDockerFile(ctx context.Context, src *archiveSource, b []byte) ([]pendingImage, error) {
	var entries []dockerManifest
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("manifest.json: %w: %w", errdefs.ErrInvalidArgument, err)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("manifest.json lists no images: %w", errdefs.ErrInvalidArgument)
	}
	var pending []pendingImage
	for i, e := range entries {
		sec, cname, ok := src.idx.lookup(e.Config)
		if !ok {
			return nil, fmt.Errorf("manifest.json entry %d: config %q is not in the archive: %w", i, e.Config, errdefs.ErrNotFound)
		}
		want, _ := blobDigest(cname)
		cfg, err := src.ingest(ctx, s, cname, sec, want)
		if err != nil {
			return nil, err
		}
		cb, err := content.ReadBlob(ctx, s.content, cfg, maxConfigSize)
		if err != nil {
			return nil, err
		}
		var config ocispec.Image
		if err := json.Unmarshal(cb, &config); err != nil {
			return nil, fmt.Errorf("config %s: %w: %w", e.Config, errdefs.ErrInvalidArgument, err)
		}
		var names []string
		for _, t := range e.RepoTags {
			n, err := ParseReference(t)
			if err != nil {
				return nil, fmt.Errorf("manifest.json entry %d: tag %q: %w", i, t, err)
			}
			names = append(names, n.String())
		}
		var layers []ocispec.Descriptor
		for j, l := range e.Layers {
			lsec, lname, ok := src.idx.lookup(l)
			if !ok {
				return nil, fmt.Errorf("manifest.json entry %d: layer %d %q is not in the archive: %w", i, j, l, errdefs.ErrNotFound)
			}
			head := make([]byte, 8)
			n, _ := src.idx.reader(lsec).ReadAt(head, 0)
			c := archive.DetectCompression(head[:n])
			d, named := blobDigest(lname)
			switch {
			case named:
			case c == archive.Uncompressed && j < len(config.RootFS.DiffIDs):
				d = config.RootFS.DiffIDs[j]
			default:
				// A compressed layer whose name says nothing: hash it.
				desc, err := s.ingestFile(ctx, lname, lsec.size, src.idx.reader(lsec))
				if err != nil {
					return nil, err
				}
				d = desc.Digest
			}
			src.blobs[d] = lsec
			layers = append(layers, ocispec.Descriptor{Digest: d, Size: lsec.size, MediaType: fmt.Sprint(c)})
		}
		md, err := s.writeDockerManifest(ctx, cfg, layers)
		if err != nil {
			return nil, err
		}
		pending = append(pending, pendingImage{desc: md, names: names})
	}
	return pending, nil
}

// writeDockerManifest stores the manifest a docker-archive image is
// recorded under: Docker's schema 2, or OCI's where a layer is zstd
// (schema 2 has no zstd media type). Layer MediaType fields come in as
// the compression's name.
func (s *Store) writeDockerManifest(ctx context.Context, cfg ocispec.Descriptor, layers []ocispec.Descriptor) (ocispec.Descriptor, error) {
	oci := false
	for _, l := range layers {
		switch l.MediaType {
		case "zstd":
			oci = true
		case "gzip", "uncompressed":
		default:
			return ocispec.Descriptor{}, fmt.Errorf("layer %s is %s-compressed, which no image format allows: %w", l.Digest, l.MediaType, errdefs.ErrInvalidArgument)
		}
	}
	m := ocispec.Manifest{MediaType: MediaTypeDockerManifest, Config: cfg}
	m.SchemaVersion = 2
	m.Config.MediaType = MediaTypeDockerConfig
	if oci {
		m.MediaType, m.Config.MediaType = ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig
	}
	for _, l := range layers {
		switch {
		case l.MediaType == "zstd":
			l.MediaType = ocispec.MediaTypeImageLayerZstd
		case l.MediaType == "gzip" && oci:
			l.MediaType = ocispec.MediaTypeImageLayerGzip
		case l.MediaType == "gzip":
			l.MediaType = MediaTypeDockerLayerGzip
		case oci:
			l.MediaType = ocispec.MediaTypeImageLayer
		default:
			l.MediaType = MediaTypeDockerLayer
		}
		m.Layers = append(m.Layers, l)
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return content.WriteBytes(ctx, s.content, m.MediaType, mb)
}

// openLayer returns a layer's compressed bytes: from the store when it is
// there (verified), or from the archive through a content writer, whose
// commit (the returned finish) verifies digest and size and keeps it.
func (s *Store) openLayer(ctx context.Context, desc ocispec.Descriptor, src layerSource) (io.Reader, func() error, func(), error) {
	if src != nil {
		if _, open, ok := src.blob(desc); ok {
			w, err := s.content.Writer(ctx, "load-"+desc.Digest.String(), desc)
			if err == nil {
				// What an interrupted fetch left is kept and the rest
				// fetched, where the source can start at an offset.
				var prefix io.Reader
				// A whole blob left uncommitted failed its checks: it is
				// fetched again from the start, not trusted.
				if w.Offset() != 0 && (desc.Size <= 0 || w.Offset() < desc.Size) {
					pw, canPrefix := w.(interface{ Prefix() io.Reader })
					rs, canRange := src.(interface {
						blobFrom(ocispec.Descriptor, int64) (func() (io.ReadCloser, error), bool)
					})
					if canPrefix && canRange {
						if openAt, ok := rs.blobFrom(desc, w.Offset()); ok {
							prefix, open = pw.Prefix(), openAt
						}
					}
				}
				if w.Offset() != 0 && prefix == nil {
					if err := w.Truncate(0); err != nil {
						w.Close()
						return nil, nil, nil, err
					}
				}
				rc, err := open()
				if err != nil {
					w.Close()
					return nil, nil, nil, err
				}
				var r io.Reader = io.TeeReader(rc, w)
				if prefix != nil {
					r = io.MultiReader(prefix, r)
				}
				finish := func() error {
					err := w.Commit(ctx, desc.Size, desc.Digest)
					if errdefs.IsAlreadyExists(err) {
						return nil
					}
					return err
				}
				return r, finish, func() { w.Close(); rc.Close() }, nil
			}
			if !errors.Is(err, errdefs.ErrAlreadyExists) {
				return nil, nil, nil, err
			}
		}
	}
	rc, err := content.Open(ctx, s.content, desc)
	if err != nil {
		return nil, nil, nil, err
	}
	return rc, func() error { return nil }, func() { rc.Close() }, nil
}
