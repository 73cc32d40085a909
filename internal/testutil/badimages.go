package testutil

import (
	"encoding/json"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BadArchiveKinds are the bad inputs BadArchives makes, one of each kind
// a load must refuse with a clear error.
var BadArchiveKinds = []string{
	"truncated archive", "not an archive", "empty archive", "no manifest", "missing blob",
	"wrong digest", "wrong size", "diff_id mismatch", "unknown layer media type",
	"unknown manifest media type", "schema 1", "no matching platform", "unparsable reference",
	"hostile layer",
}

// BadArchives makes an archive of each kind in BadArchiveKinds. They are
// built on the same two-layer image (named docker.io/library/bad:1) so
// that each differs from a good archive in one way only.
func BadArchives(t testing.TB) map[string][]byte {
	t.Helper()
	img := BuildImage(t, ImageOptions{},
		[]Entry{Dir("etc"), File("etc/os-release", "ID=berth\n"), Dir("bin"), File("bin/sh", "#!shell"), Symlink("bin/ash", "sh")},
		[]Entry{Dir("app"), File("app/main", "app v1"), File("etc/.wh.os-release", "")})
	index := func(descs ...ocispec.Descriptor) []byte {
		b, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: descs})
		return b
	}
	layout := func(f map[string][]byte, idx []byte) []byte {
		f["index.json"] = idx
		f["oci-layout"] = []byte(`{"imageLayoutVersion":"1.0.0"}`)
		return TarFiles(t, f, nil)
	}
	named := func(d ocispec.Descriptor) ocispec.Descriptor {
		d.Annotations = map[string]string{"io.containerd.image.name": "docker.io/library/bad:1"}
		return d
	}
	blob := func(b []byte) string { return "blobs/sha256/" + digest.FromBytes(b).Encoded() }
	desc := func(mt string, b []byte) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
	}
	// withManifest writes a manifest changed by fn and an index naming it.
	withManifest := func(fn func(m *ocispec.Manifest, f map[string][]byte)) []byte {
		f := img.Files()
		var m ocispec.Manifest
		json.Unmarshal(img.Manifest, &m)
		fn(&m, f)
		mb, _ := json.Marshal(m)
		f[blob(mb)] = mb
		return layout(f, index(named(desc(ocispec.MediaTypeImageManifest, mb))))
	}
	full := OCIArchive(t, []*TestImage{img}, []string{"docker.io/library/bad:1"})
	out := map[string][]byte{
		"truncated archive": full[:len(full)/2],
		"not an archive":    []byte(strings.Repeat("not a tar ", 100)),
		"empty archive":     TarFiles(t, map[string][]byte{}, nil),
		"no manifest":       TarFiles(t, map[string][]byte{"hello": []byte("x")}, nil),
		"missing blob": func() []byte {
			f := img.Files()
			delete(f, blob(img.Blobs[1]))
			return layout(f, index(named(img.Desc)))
		}(),
		"wrong digest": func() []byte {
			f := img.Files()
			f[blob(img.Blobs[1])] = img.Blobs[0]
			return layout(f, index(named(img.Desc)))
		}(),
		"wrong size": withManifest(func(m *ocispec.Manifest, f map[string][]byte) { m.Layers[1].Size += 7 }),
		"diff_id mismatch": func() []byte {
			var cfg ocispec.Image
			json.Unmarshal(img.Config, &cfg)
			cfg.RootFS.DiffIDs[1] = digest.FromString("not the layer")
			cb, _ := json.Marshal(cfg)
			return withManifest(func(m *ocispec.Manifest, f map[string][]byte) {
				m.Config = desc(ocispec.MediaTypeImageConfig, cb)
				f[blob(cb)] = cb
			})
		}(),
		"unknown layer media type": withManifest(func(m *ocispec.Manifest, f map[string][]byte) {
			m.Layers[0].MediaType = "application/vnd.example.layer.v1+weird"
		}),
		"unknown manifest media type": func() []byte {
			d := named(img.Desc)
			d.MediaType = "application/vnd.example.manifest+json"
			return layout(img.Files(), index(d))
		}(),
		"schema 1": func() []byte {
			f := img.Files()
			s1 := []byte(`{"schemaVersion":1,"name":"x","tag":"1","fsLayers":[{"blobSum":"sha256:00"}]}`)
			f[blob(s1)] = s1
			return layout(f, index(named(desc("application/vnd.docker.distribution.manifest.v1+prettyjws", s1))))
		}(),
		"no matching platform": func() []byte {
			f := img.Files()
			d := img.Desc
			d.Platform = &ocispec.Platform{OS: "linux", Architecture: "s390x"}
			ib := index(d)
			f[blob(ib)] = ib
			return layout(f, index(named(desc(ocispec.MediaTypeImageIndex, ib))))
		}(),
		"unparsable reference": DockerArchive(t, []*TestImage{img}, [][]string{{"UPPER/Case:tag"}}),
		"hostile layer": func() []byte {
			bad := BuildImage(t, ImageOptions{}, []Entry{File(".wh...", "")})
			return OCIArchive(t, []*TestImage{bad}, []string{"docker.io/library/bad:1"})
		}(),
	}
	return out
}
