package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestImage is an image made in memory for tests: layer tars, their
// compressed blobs, a config and a manifest, which can be written as an
// OCI archive, an OCI layout or a docker-archive.
type TestImage struct {
	Layers     [][]byte // uncompressed tars
	Blobs      [][]byte // as stored (gzip unless Uncompressed)
	Config     []byte
	ConfigDesc ocispec.Descriptor
	Manifest   []byte
	Desc       ocispec.Descriptor
}

// ImageOptions tune BuildImage.
type ImageOptions struct {
	Uncompressed bool
	Env          []string
	Cmd          []string
	Labels       map[string]string
	Created      time.Time
	OS, Arch     string
}

// BuildImage makes an image whose layers hold the given entries.
func BuildImage(t testing.TB, o ImageOptions, layers ...[]Entry) *TestImage {
	t.Helper()
	img := &TestImage{}
	cfg := ocispec.Image{}
	created := o.Created
	if created.IsZero() {
		created = Stamp
	}
	cfg.Created = &created
	cfg.OS, cfg.Architecture = "linux", "amd64"
	if o.OS != "" {
		cfg.OS = o.OS
	}
	if o.Arch != "" {
		cfg.Architecture = o.Arch
	}
	cfg.Config.Env = o.Env
	cfg.Config.Cmd = o.Cmd
	cfg.Config.Labels = o.Labels
	cfg.RootFS.Type = "layers"
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
	for i, entries := range layers {
		tb := MakeTar(t, entries...)
		img.Layers = append(img.Layers, tb)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(tb))
		cfg.History = append(cfg.History, ocispec.History{Created: &created, CreatedBy: fmt.Sprintf("layer %d", i+1)})
		blob, mt := tb, ocispec.MediaTypeImageLayer
		if !o.Uncompressed {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(tb)
			zw.Close()
			blob, mt = buf.Bytes(), ocispec.MediaTypeImageLayerGzip
		}
		img.Blobs = append(img.Blobs, blob)
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(blob), Size: int64(len(blob))})
	}
	var err error
	if img.Config, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	img.ConfigDesc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(img.Config), Size: int64(len(img.Config))}
	m.Config = img.ConfigDesc
	if img.Manifest, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	img.Desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(img.Manifest), Size: int64(len(img.Manifest))}
	return img
}

// ID is the image ID (its config digest).
func (img *TestImage) ID() digest.Digest { return img.ConfigDesc.Digest }

// Files are the blobs of the image by path in an OCI layout.
func (img *TestImage) Files() map[string][]byte {
	f := map[string][]byte{}
	put := func(b []byte) { f["blobs/sha256/"+digest.FromBytes(b).Encoded()] = b }
	for _, b := range img.Blobs {
		put(b)
	}
	put(img.Config)
	put(img.Manifest)
	return f
}

// OCIArchive writes images as an OCI archive, entry i named names[i]
// (through io.containerd.image.name, "" for none).
func OCIArchive(t testing.TB, imgs []*TestImage, names []string) []byte {
	t.Helper()
	files := map[string][]byte{}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for i, img := range imgs {
		for k, v := range img.Files() {
			files[k] = v
		}
		d := img.Desc
		if i < len(names) && names[i] != "" {
			d.Annotations = map[string]string{"io.containerd.image.name": names[i]}
		}
		idx.Manifests = append(idx.Manifests, d)
	}
	ib, _ := json.Marshal(idx)
	files["index.json"] = ib
	files["oci-layout"] = []byte(`{"imageLayoutVersion":"1.0.0"}`)
	return TarFiles(t, files, nil)
}

// DockerArchive writes images as docker save does, image i tagged tags[i].
func DockerArchive(t testing.TB, imgs []*TestImage, tags [][]string) []byte {
	t.Helper()
	files := map[string][]byte{}
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []entry
	for i, img := range imgs {
		e := entry{Config: img.ID().Encoded() + ".json"}
		if i < len(tags) {
			e.RepoTags = tags[i]
		}
		files[e.Config] = img.Config
		for _, l := range img.Layers {
			name := digest.FromBytes(l).Encoded() + "/layer.tar"
			files[name] = l
			e.Layers = append(e.Layers, name)
		}
		manifest = append(manifest, e)
	}
	mb, _ := json.Marshal(manifest)
	files["manifest.json"] = mb
	return TarFiles(t, files, []string{"manifest.json"})
}

// TarFiles writes files into a tar, the names in last at the end (as
// docker save puts manifest.json last), the others in sorted order.
func TarFiles(t testing.TB, files map[string][]byte, last []string) []byte {
	t.Helper()
	var names []string
	isLast := map[string]bool{}
	for _, n := range last {
		isLast[n] = true
	}
	for n := range files {
		if !isLast[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	names = append(names, last...)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		b := files[n]
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: Stamp}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	tw.Close()
	return buf.Bytes()
}

// WriteLayout writes images as an OCI layout directory.
func WriteLayout(t testing.TB, dir string, imgs []*TestImage, names []string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(OCIArchive(t, imgs, names)))
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		p := filepath.Join(dir, hdr.Name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
