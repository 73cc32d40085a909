package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/errdefs"
	tu "github.com/berthproject/berth/internal/testutil"
	"github.com/berthproject/berth/snapshot"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func newTestStore(t *testing.T) *Store {
	t.Helper()
	return newDriverStore(t, "")
}

// newDriverStore opens a store with a given snapshot driver ("" chooses).
func newDriverStore(t *testing.T, driver string) *Store {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(Options{Root: dir, RunRoot: filepath.Join(dir, "run"), Driver: driver})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ms, _ := s.MountedImages(context.Background()); len(ms) > 0 {
			for _, m := range ms {
				s.UnmountImage(context.Background(), m.ID.String())
			}
		}
	})
	return s
}

var (
	baseLayer = []tu.Entry{tu.Dir("etc"), tu.File("etc/os-release", "ID=berth\n"), tu.Dir("bin"), tu.File("bin/sh", "#!shell"), tu.Symlink("bin/ash", "sh")}
	appLayer  = []tu.Entry{tu.Dir("app"), tu.File("app/main", "app v1"), tu.File("etc/.wh.os-release", "")}
	otherApp  = []tu.Entry{tu.Dir("srv"), tu.File("srv/data", "other")}
)

// flatten is what an image's layers make when applied in order onto one
// directory: the tree a mount of the image must show.
func flatten(t *testing.T, img *tu.TestImage) map[string]tu.Node {
	t.Helper()
	dir := t.TempDir()
	for _, l := range img.Layers {
		if _, err := archive.Apply(context.Background(), dir, bytes.NewReader(l), archive.Options{IgnoreOwner: os.Geteuid() != 0}); err != nil {
			t.Fatal(err)
		}
	}
	return tu.TreeOf(t, dir, tu.TreeOptions{})
}

// mounted returns the tree of a stored image, as the image mount shows it
// (as root) or as the top vfs snapshot holds it.
func mounted(t *testing.T, s *Store, ref string) map[string]tu.Node {
	t.Helper()
	ctx := context.Background()
	if os.Geteuid() != 0 {
		img, err := s.Get(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.snaps.View(ctx, "test-view-"+randomHex(4), img.ChainID.String())
		if err != nil {
			t.Fatal(err)
		}
		return tu.TreeOf(t, m[0].Source, tu.TreeOptions{})
	}
	p, err := s.MountImage(ctx, ref)
	if err != nil {
		t.Fatalf("mount %s: %v", ref, err)
	}
	defer s.UnmountImage(ctx, ref)
	return tu.TreeOf(t, p, tu.TreeOptions{})
}

func sameTree(t *testing.T, want, got map[string]tu.Node) {
	t.Helper()
	if d := tu.DiffTrees(want, got); len(d) > 0 {
		t.Fatalf("trees differ:\n%s", strings.Join(d, "\n"))
	}
}

func load(t *testing.T, s *Store, archive []byte) []Loaded {
	t.Helper()
	l, err := s.Load(context.Background(), bytes.NewReader(archive), LoadOptions{})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return l
}

func TestLoadFormats(t *testing.T) {
	img := tu.BuildImage(t, tu.ImageOptions{Cmd: []string{"/bin/sh"}}, baseLayer, appLayer)
	want := flatten(t, img)
	cases := map[string]func(s *Store) ([]Loaded, error){
		"oci-archive": func(s *Store) ([]Loaded, error) {
			return s.Load(context.Background(), bytes.NewReader(tu.OCIArchive(t, []*tu.TestImage{img}, []string{"docker.io/library/app:1"})), LoadOptions{})
		},
		"docker-archive": func(s *Store) ([]Loaded, error) {
			return s.Load(context.Background(), bytes.NewReader(tu.DockerArchive(t, []*tu.TestImage{img}, [][]string{{"app:1"}})), LoadOptions{})
		},
		"gzipped docker-archive": func(s *Store) ([]Loaded, error) {
			var buf bytes.Buffer
			w, _ := archive.CompressStream(&buf, archive.Gzip)
			w.Write(tu.DockerArchive(t, []*tu.TestImage{img}, [][]string{{"app:1"}}))
			w.Close()
			return s.Load(context.Background(), &buf, LoadOptions{})
		},
		"oci-archive file": func(s *Store) ([]Loaded, error) {
			p := filepath.Join(t.TempDir(), "a.tar")
			os.WriteFile(p, tu.OCIArchive(t, []*tu.TestImage{img}, []string{"docker.io/library/app:1"}), 0o644)
			return s.LoadPath(context.Background(), p, LoadOptions{})
		},
		"docker-archive file": func(s *Store) ([]Loaded, error) {
			p := filepath.Join(t.TempDir(), "a.tar")
			os.WriteFile(p, tu.DockerArchive(t, []*tu.TestImage{img}, [][]string{{"app:1"}}), 0o644)
			return s.LoadPath(context.Background(), p, LoadOptions{})
		},
		"oci-dir": func(s *Store) ([]Loaded, error) {
			dir := t.TempDir()
			tu.WriteLayout(t, dir, []*tu.TestImage{img}, []string{"docker.io/library/app:1"})
			return s.LoadPath(context.Background(), dir, LoadOptions{})
		},
	}
	for name, loadIt := range cases {
		for _, driver := range []string{"", "vfs"} {
			t.Run(name+"/"+driver, func(t *testing.T) {
				s := newDriverStore(t, driver)
				loaded, err := loadIt(s)
				if err != nil {
					t.Fatal(err)
				}
				if len(loaded) != 1 || loaded[0].ID != img.ID() || len(loaded[0].Names) != 1 || loaded[0].Names[0] != "docker.io/library/app:1" {
					t.Fatalf("loaded %+v", loaded)
				}
				sameTree(t, want, mounted(t, s, "app:1"))
				if rep, err := s.Check(context.Background(), false); err != nil || len(rep.Problems) != 0 {
					t.Fatalf("check after load: %+v %v", rep.Problems, err)
				}
			})
		}
	}
}

func TestLayerSharing(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	a := tu.BuildImage(t, tu.ImageOptions{}, baseLayer, appLayer)
	b := tu.BuildImage(t, tu.ImageOptions{}, baseLayer, otherApp)
	load(t, s, tu.OCIArchive(t, []*tu.TestImage{a}, []string{"docker.io/library/a:latest"}))
	load(t, s, tu.OCIArchive(t, []*tu.TestImage{b}, []string{"docker.io/library/b:latest"}))
	snaps := 0
	s.snaps.Walk(ctx, func(snapshot.Info) error { snaps++; return nil })
	if snaps != 3 {
		t.Fatalf("%d snapshots, want 3 (the base once, and a top layer each)", snaps)
	}
	blobs := 0
	s.content.Walk(ctx, func(content.Info) error { blobs++; return nil })
	if blobs != 7 {
		t.Fatalf("%d blobs, want 7 (3 layers, 2 configs, 2 manifests)", blobs)
	}
	du, err := s.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	baseSize := int64(len("ID=berth\n") + len("#!shell") + len("sh"))
	if du.LayersSizeNaive-du.LayersSize != baseSize {
		t.Fatalf("sharing saved %d bytes, want the base's %d: %+v", du.LayersSizeNaive-du.LayersSize, baseSize, du)
	}
	for _, u := range du.Images {
		if u.Shared != baseSize || u.Unique != u.Size-baseSize {
			t.Fatalf("image %s: size %d shared %d unique %d", u.Image.Names, u.Size, u.Shared, u.Unique)
		}
	}
	// Removing one keeps the shared base for the other.
	if _, err := s.Remove(ctx, "a", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(ctx, GCOptions{Wait: true}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, flatten(t, b), mounted(t, s, "b"))
}

func TestBadInput(t *testing.T) {
	good := tu.BuildImage(t, tu.ImageOptions{}, baseLayer)
	bad := tu.BadArchives(t)
	layer1 := regexp.QuoteMeta(digest.FromBytes(tu.BuildImage(t, tu.ImageOptions{}, baseLayer, appLayer).Blobs[1]).String())
	cases := []struct {
		name string
		kind error
		says string
	}{
		{"truncated archive", errdefs.ErrInvalidArgument, "truncated"},
		{"not an archive", errdefs.ErrInvalidArgument, "tar"},
		{"empty archive", errdefs.ErrInvalidArgument, "empty"},
		{"no manifest", errdefs.ErrInvalidArgument, "neither manifest.json nor index.json"},
		{"missing blob", errdefs.ErrNotFound, layer1},
		{"wrong digest", errdefs.ErrDataLoss, "does not match its name|215 bytes in the archive, expected 166"},
		{"wrong size", errdefs.ErrDataLoss, "166 bytes, expected 173|166 bytes in the archive, expected 173"},
		{"diff_id mismatch", errdefs.ErrDataLoss, "diff_id"},
		{"unknown layer media type", errdefs.ErrInvalidArgument, regexp.QuoteMeta("application/vnd.example.layer.v1+weird")},
		{"unknown manifest media type", errdefs.ErrInvalidArgument, regexp.QuoteMeta("application/vnd.example.manifest+json")},
		{"schema 1", errdefs.ErrNotImplemented, "schema 1"},
		{"no matching platform", errdefs.ErrNotFound, "linux/s390x"},
		{"unparsable reference", errdefs.ErrInvalidArgument, "invalid reference format"},
		{"hostile layer", errdefs.ErrInvalidArgument, "whiteout"},
	}
	if len(cases) != len(tu.BadArchiveKinds) {
		t.Fatalf("%d cases for %d kinds of bad archive", len(cases), len(tu.BadArchiveKinds))
	}
	for _, c := range cases {
		for _, how := range []string{"stream", "file"} {
			t.Run(c.name+"/"+how, func(t *testing.T) {
				s := newTestStore(t)
				ctx := context.Background()
				load(t, s, tu.OCIArchive(t, []*tu.TestImage{good}, []string{"docker.io/library/good:1"}))
				before := mounted(t, s, "good:1")
				var err error
				if how == "stream" {
					_, err = s.Load(ctx, bytes.NewReader(bad[c.name]), LoadOptions{})
				} else {
					p := filepath.Join(t.TempDir(), "archive.tar")
					if werr := os.WriteFile(p, bad[c.name], 0o644); werr != nil {
						t.Fatal(werr)
					}
					_, err = s.LoadPath(ctx, p, LoadOptions{})
				}
				if err == nil {
					t.Fatal("load succeeded")
				}
				if !errors.Is(err, c.kind) || !regexp.MustCompile(c.says).MatchString(err.Error()) {
					t.Fatalf("load: %v\nwant a %v error saying %q", err, c.kind, c.says)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("the error is not one line: %q", err)
				}
				imgs, _ := s.List(ctx)
				if len(imgs) != 1 || imgs[0].ID != good.ID() {
					t.Fatalf("images after a failed load: %+v", imgs)
				}
				sameTree(t, before, mounted(t, s, "good:1"))
				if rep, err := s.Check(ctx, false); err != nil || len(rep.Problems) > 0 {
					t.Fatalf("check after a failed load: %v %v", rep.Problems, err)
				}
				// What the failed load left is garbage, and only that goes.
				if _, err := s.GC(ctx, GCOptions{Wait: true, Ingests: true}); err != nil {
					t.Fatal(err)
				}
				if rep, _ := s.Check(ctx, false); rep.ReclaimableBlobs+rep.ReclaimableSnapshots+rep.StaleIngests != 0 {
					t.Fatalf("garbage left after gc: %+v", rep)
				}
				sameTree(t, before, mounted(t, s, "good:1"))
			})
		}
	}
}

func TestConcurrentLoads(t *testing.T) {
	dir := t.TempDir()
	var imgs []*tu.TestImage
	for i := 0; i < 6; i++ {
		imgs = append(imgs, tu.BuildImage(t, tu.ImageOptions{Env: []string{"N=" + string(rune('a'+i))}}, baseLayer, []tu.Entry{tu.File("n", string(rune('a'+i)))}))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(imgs))
	for i, img := range imgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each goroutine opens the store itself, as a separate
			// process would: locks are per open file.
			s, err := Open(Options{Root: dir})
			if err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = s.Load(context.Background(), bytes.NewReader(tu.OCIArchive(t, []*tu.TestImage{img}, []string{"docker.io/library/c:" + string(rune('a'+i))})), LoadOptions{})
			if i%2 == 0 {
				// and a removal racing the loads
				_, err := s.Remove(context.Background(), "c:"+string(rune('a'+i)), false)
				if err != nil && !errdefs.IsNotFound(err) {
					errs[i] = err
				}
				s.GC(context.Background(), GCOptions{})
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("loader %d: %v", i, err)
		}
	}
	s, _ := Open(Options{Root: dir})
	ctx := context.Background()
	list, _ := s.List(ctx)
	if len(list) != 3 {
		t.Fatalf("%d images, want the 3 not removed", len(list))
	}
	if rep, err := s.Check(ctx, false); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check: %v %v", rep.Problems, err)
	}
	for i := 1; i < len(imgs); i += 2 {
		sameTree(t, flatten(t, imgs[i]), mounted(t, s, "c:"+string(rune('a'+i))))
	}
}

func TestZstdAndUncompressedLayers(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	img := tu.BuildImage(t, tu.ImageOptions{Uncompressed: true}, baseLayer, appLayer)
	// Recompress the second layer with zstd and fix the manifest.
	var m ocispec.Manifest
	json.Unmarshal(img.Manifest, &m)
	var zbuf bytes.Buffer
	zw, _ := archive.CompressStream(&zbuf, archive.Zstd)
	zw.Write(img.Layers[1])
	zw.Close()
	img.Blobs[1] = zbuf.Bytes()
	m.Layers[1] = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerZstd, Digest: digest.FromBytes(zbuf.Bytes()), Size: int64(zbuf.Len())}
	img.Manifest, _ = json.Marshal(m)
	img.Desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(img.Manifest), Size: int64(len(img.Manifest))}
	load(t, s, tu.OCIArchive(t, []*tu.TestImage{img}, []string{"docker.io/library/z:1"}))
	sameTree(t, flatten(t, img), mounted(t, s, "z:1"))
	// Saved as a docker-archive, the zstd layer goes out uncompressed.
	var out bytes.Buffer
	if err := s.Save(ctx, &out, []string{"z:1"}, DockerArchive); err != nil {
		t.Fatal(err)
	}
	dst := newTestStore(t)
	load(t, dst, out.Bytes())
	sameTree(t, flatten(t, img), mounted(t, dst, "z:1"))
}

func TestPlatformChoice(t *testing.T) {
	amd := tu.BuildImage(t, tu.ImageOptions{Arch: "amd64"}, baseLayer)
	arm := tu.BuildImage(t, tu.ImageOptions{Arch: "arm64"}, baseLayer, appLayer)
	files := map[string][]byte{}
	for k, v := range amd.Files() {
		files[k] = v
	}
	for k, v := range arm.Files() {
		files[k] = v
	}
	da, dr := amd.Desc, arm.Desc
	da.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	dr.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	list, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{da, dr}})
	files["blobs/sha256/"+digest.FromBytes(list).Encoded()] = list
	top := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(list), Size: int64(len(list)),
		Annotations: map[string]string{"io.containerd.image.name": "docker.io/library/multi:1"}}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{top}})
	files["index.json"] = idx
	files["oci-layout"] = []byte(`{"imageLayoutVersion":"1.0.0"}`)
	archiveBytes := tu.TarFiles(t, files, nil)
	ctx := context.Background()
	for _, c := range []struct {
		platform string
		want     digest.Digest
	}{{"linux/amd64", amd.ID()}, {"linux/arm64", arm.ID()}, {"linux/arm64/v8", arm.ID()}} {
		s := newTestStore(t)
		p, err := ParsePlatform(c.platform)
		if err != nil {
			t.Fatal(err)
		}
		l, err := s.Load(ctx, bytes.NewReader(archiveBytes), LoadOptions{Platform: p})
		if err != nil || len(l) != 1 || l[0].ID != c.want {
			t.Fatalf("--platform %s: %+v %v", c.platform, l, err)
		}
		img, _ := s.Get(ctx, "multi:1")
		if img.Index == nil || img.Index.Digest != top.Digest {
			t.Fatalf("--platform %s: the index is not kept with the image: %+v", c.platform, img.Index)
		}
		// The index, with every platform's descriptor, stays in the store.
		if _, err := s.content.Info(ctx, top.Digest); err != nil {
			t.Fatalf("index blob: %v", err)
		}
	}
	if _, err := ParsePlatform("linux"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad platform: %v", err)
	}
}
