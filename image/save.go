package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/internal/atomicfile"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// SaveFormat is an archive format Save writes.
type SaveFormat string

const (
	// DockerArchive is `docker save`'s format: manifest.json, the config,
	// and each layer as an uncompressed tar.
	DockerArchive SaveFormat = "docker-archive"
	// OCIArchive is an OCI image layout in a tar.
	OCIArchive SaveFormat = "oci-archive"
	// OCIDir is an OCI image layout in a directory.
	OCIDir SaveFormat = "oci-dir"
)

// ParseSaveFormat checks a --format value.
func ParseSaveFormat(s string) (SaveFormat, error) {
	switch f := SaveFormat(s); f {
	case DockerArchive, OCIArchive, OCIDir:
		return f, nil
	case "oci":
		return OCIArchive, nil
	}
	return "", fmt.Errorf("unknown format %q: use docker-archive, oci-archive or oci-dir: %w", s, errdefs.ErrInvalidArgument)
}

// saved is one image to write, with the names to write it under.
type saved struct {
	img    Image
	m      ocispec.Manifest
	config []byte
	names  []string
}

// collect resolves refs into the images to save, one entry per image with
// every name it was asked for (an ID asks for none, as in Docker).
func (s *Store) collect(ctx context.Context, refs []string) ([]*saved, error) {
	if len(refs) == 0 {
		return nil, fmt.Errorf("save: no image given: %w", errdefs.ErrInvalidArgument)
	}
	r, err := s.load()
	if err != nil {
		return nil, err
	}
	var out []*saved
	byID := map[digest.Digest]*saved{}
	for _, ref := range refs {
		i, err := find(r, ref)
		if err != nil {
			return nil, fmt.Errorf("save: %w", err)
		}
		img := r.Images[i]
		sv, ok := byID[img.ID]
		if !ok {
			mb, err := content.ReadBlob(ctx, s.content, img.Manifest, maxManifestSize)
			if err != nil {
				return nil, fmt.Errorf("save %s: manifest: %w", ref, err)
			}
			sv = &saved{img: img}
			if sv.m, err = parseManifest(img.Manifest.Digest, mb); err != nil {
				return nil, fmt.Errorf("save %s: %w", ref, err)
			}
			if sv.config, err = content.ReadBlob(ctx, s.content, sv.m.Config, maxConfigSize); err != nil {
				return nil, fmt.Errorf("save %s: config: %w", ref, err)
			}
			byID[img.ID] = sv
			out = append(out, sv)
		}
		if n, err := reference.ParseNormalizedNamed(ref); err == nil && !isHexPrefix(ref) {
			if _, isDigest := n.(reference.Digested); !isDigest {
				full := reference.TagNameOnly(n).String()
				if !contains(sv.names, full) {
					sv.names = append(sv.names, full)
				}
			}
		}
	}
	return out, nil
}

// Save writes the images refs name to w as a docker-archive or OCI
// archive. Every byte written is read through its digest check first.
func (s *Store) Save(ctx context.Context, w io.Writer, refs []string, format SaveFormat) error {
	return s.SaveWith(ctx, w, refs, format, nil)
}

// SaveWith is Save with artifacts (signatures, custody records) carried
// beside the images; a docker-archive has no place for them and refuses
// none: they are left out.
func (s *Store) SaveWith(ctx context.Context, w io.Writer, refs []string, format SaveFormat, arts []Artifact) error {
	imgs, err := s.collect(ctx, refs)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	switch format {
	case DockerArchive:
		err = s.writeDockerArchive(ctx, tw, imgs)
	case OCIArchive:
		err = s.writeLayout(ctx, tarSink{tw}, imgs, nil, arts)
	default:
		err = fmt.Errorf("save: format %q is not an archive format: %w", format, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// SaveDir writes the images as an OCI layout in dir, adding them to a
// layout already there.
func (s *Store) SaveDir(ctx context.Context, dir string, refs []string) error {
	return s.SaveDirWith(ctx, dir, refs, nil)
}

// SaveDirWith is SaveDir with artifacts carried beside the images.
func (s *Store) SaveDirWith(ctx context.Context, dir string, refs []string, arts []Artifact) error {
	imgs, err := s.collect(ctx, refs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o755); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	var existing ocispec.Index
	if b, err := os.ReadFile(filepath.Join(dir, "index.json")); err == nil {
		if err := json.Unmarshal(b, &existing); err != nil {
			return fmt.Errorf("save: %s holds an index.json that is not an OCI index: %w", dir, errdefs.ErrInvalidArgument)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("save: %w", err)
	}
	return s.writeLayout(ctx, dirSink(dir), imgs, existing.Manifests, arts)
}

// sink is where a layout's files go: a tar or a directory.
type sink interface {
	has(name string) bool
	put(name string, size int64, r io.Reader) error
}

type tarSink struct{ tw *tar.Writer }

func (tarSink) has(string) bool { return false }

func (t tarSink) put(name string, size int64, r io.Reader) error {
	hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o444, Size: size, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(t.tw, r)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%s: wrote %d bytes of %d: %w", name, n, size, errdefs.ErrDataLoss)
	}
	return nil
}

type dirSink string

func (d dirSink) has(name string) bool {
	_, err := os.Stat(filepath.Join(string(d), name))
	return err == nil
}

func (d dirSink) put(name string, size int64, r io.Reader) error {
	p := filepath.Join(string(d), name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if size < 1<<20 {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		return atomicfile.WriteFile(p, b, 0o644)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

func blobName(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// copyBlob writes a stored blob into the sink, verified.
func (s *Store) copyBlob(ctx context.Context, sk sink, desc ocispec.Descriptor) error {
	name := blobName(desc.Digest)
	if sk.has(name) {
		return nil
	}
	rc, err := content.Open(ctx, s.content, desc)
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	if err := sk.put(name, desc.Size, rc); err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return nil
}

func (s *Store) writeLayout(ctx context.Context, sk sink, imgs []*saved, index []ocispec.Descriptor, arts []Artifact) error {
	for _, sv := range imgs {
		for _, d := range append([]ocispec.Descriptor{sv.m.Config}, sv.m.Layers...) {
			if err := s.copyBlob(ctx, sk, d); err != nil {
				return fmt.Errorf("save %s: %w", shortID(sv.img.ID), err)
			}
		}
		if err := s.copyBlob(ctx, sk, sv.img.Manifest); err != nil {
			return fmt.Errorf("save %s: %w", shortID(sv.img.ID), err)
		}
		var cfg ocispec.Image
		json.Unmarshal(sv.config, &cfg)
		desc := sv.img.Manifest
		desc.Platform = &ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		if len(sv.names) == 0 {
			index = addToIndex(index, desc)
			continue
		}
		for _, name := range sv.names {
			d := desc
			d.Annotations = map[string]string{annotationContainerdName: name}
			if n, err := reference.ParseNormalizedNamed(name); err == nil {
				if t, ok := n.(reference.Tagged); ok {
					d.Annotations[annotationRefName] = t.Tag()
				}
			}
			index = addToIndex(index, d)
		}
	}
	index, err := writeArtifacts(sk, arts, index)
	if err != nil {
		return err
	}
	ib, err := json.MarshalIndent(ocispec.Index{Versioned: specsVersioned(), MediaType: ocispec.MediaTypeImageIndex, Manifests: index}, "", "  ")
	if err != nil {
		return err
	}
	lb, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := sk.put(ocispec.ImageLayoutFile, int64(len(lb)), bytesReader(lb)); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := sk.put("index.json", int64(len(ib)), bytesReader(ib)); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// addToIndex adds d, replacing an entry of the same name (a layout holds
// one image per name, as skopeo's does).
func addToIndex(index []ocispec.Descriptor, d ocispec.Descriptor) []ocispec.Descriptor {
	name := d.Annotations[annotationContainerdName]
	out := index[:0]
	for _, e := range index {
		if name != "" && e.Annotations[annotationContainerdName] == name {
			continue
		}
		if name == "" && len(e.Annotations) == 0 && e.Digest == d.Digest {
			continue
		}
		out = append(out, e)
	}
	return append(out, d)
}

func (s *Store) writeDockerArchive(ctx context.Context, tw *tar.Writer, imgs []*saved) error {
	sk := tarSink{tw}
	written := map[string]bool{}
	var manifest []dockerManifest
	repos := map[string]map[string]string{}
	for _, sv := range imgs {
		var cfg ocispec.Image
		if err := json.Unmarshal(sv.config, &cfg); err != nil {
			return fmt.Errorf("save %s: config: %w", shortID(sv.img.ID), err)
		}
		entry := dockerManifest{Config: sv.img.ID.Encoded() + ".json"}
		chain := sv.img.chainIDs(cfg)
		for i, l := range sv.m.Layers {
			diffID := cfg.RootFS.DiffIDs[i]
			name := diffID.Encoded() + ".tar"
			entry.Layers = append(entry.Layers, name)
			if written[name] {
				continue
			}
			written[name] = true
			if err := s.writeUncompressedLayer(ctx, sk, name, l, diffID, chain[i]); err != nil {
				return fmt.Errorf("save %s: layer %d: %w", shortID(sv.img.ID), i+1, err)
			}
		}
		if !written[entry.Config] {
			written[entry.Config] = true
			if err := sk.put(entry.Config, int64(len(sv.config)), bytesReader(sv.config)); err != nil {
				return fmt.Errorf("save: %w", err)
			}
		}
		for _, n := range sv.names {
			entry.RepoTags = append(entry.RepoTags, FamiliarString(n))
			repo, tag := splitName(n)
			if repos[repo] == nil {
				repos[repo] = map[string]string{}
			}
			if len(cfg.RootFS.DiffIDs) > 0 {
				repos[repo][tag] = cfg.RootFS.DiffIDs[len(cfg.RootFS.DiffIDs)-1].Encoded()
			}
		}
		manifest = append(manifest, entry)
	}
	mb, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	if err := sk.put("manifest.json", int64(len(mb)), bytesReader(mb)); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if len(repos) > 0 {
		rb, _ := json.Marshal(repos)
		if err := sk.put("repositories", int64(len(rb)), bytesReader(rb)); err != nil {
			return fmt.Errorf("save: %w", err)
		}
	}
	return nil
}

func (img Image) chainIDs(cfg ocispec.Image) []digest.Digest {
	return identityChain(cfg.RootFS.DiffIDs)
}

// writeUncompressedLayer writes a layer as its uncompressed tar, checking
// it against the diff_id as it goes.
func (s *Store) writeUncompressedLayer(ctx context.Context, sk sink, name string, desc ocispec.Descriptor, diffID, chainID digest.Digest) error {
	size, err := s.diffSize(ctx, desc, chainID)
	if err != nil {
		return err
	}
	rc, err := content.Open(ctx, s.content, desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	dr, _, err := archive.DecompressStream(rc)
	if err != nil {
		return err
	}
	defer dr.Close()
	v, err := content.NewVerifier(dr, ocispec.Descriptor{Digest: diffID, Size: size})
	if err != nil {
		return err
	}
	return sk.put(name, size, v)
}

// diffSize is the size of a layer's uncompressed tar: recorded when it was
// unpacked, or measured by decompressing it once.
func (s *Store) diffSize(ctx context.Context, desc ocispec.Descriptor, chainID digest.Digest) (int64, error) {
	if c, _ := layerCompression(desc.MediaType); c == archive.Uncompressed {
		return desc.Size, nil
	}
	if info, err := s.snaps.Stat(ctx, chainID.String()); err == nil {
		if n, err := strconv.ParseInt(info.Labels[labelDiffSize], 10, 64); err == nil {
			return n, nil
		}
	}
	rc, err := content.Open(ctx, s.content, desc)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	dr, _, err := archive.DecompressStream(rc)
	if err != nil {
		return 0, err
	}
	defer dr.Close()
	return io.Copy(io.Discard, dr)
}
