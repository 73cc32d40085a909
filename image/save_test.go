package image

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthproject/berth/errdefs"
	tu "github.com/berthproject/berth/internal/testutil"
)

func TestSaveRoundTrip(t *testing.T) {
	a := tu.BuildImage(t, tu.ImageOptions{Cmd: []string{"/app/main"}}, baseLayer, appLayer)
	b := tu.BuildImage(t, tu.ImageOptions{}, baseLayer, otherApp)
	src := newTestStore(t)
	load(t, src, tu.OCIArchive(t, []*tu.TestImage{a, b}, []string{"docker.io/library/a:1", "example.com/team/b:2"}))
	ctx := context.Background()
	for _, f := range []SaveFormat{DockerArchive, OCIArchive, OCIDir} {
		t.Run(string(f), func(t *testing.T) {
			dst := newTestStore(t)
			var loaded []Loaded
			var err error
			if f == OCIDir {
				dir := filepath.Join(t.TempDir(), "layout")
				if err := src.SaveDir(ctx, dir, []string{"a:1", "example.com/team/b:2"}); err != nil {
					t.Fatal(err)
				}
				loaded, err = dst.LoadPath(ctx, dir, LoadOptions{})
			} else {
				var buf bytes.Buffer
				if err := src.Save(ctx, &buf, []string{"a:1", "example.com/team/b:2"}, f); err != nil {
					t.Fatal(err)
				}
				loaded, err = dst.Load(ctx, &buf, LoadOptions{})
			}
			if err != nil {
				t.Fatalf("load what was saved: %v", err)
			}
			if len(loaded) != 2 || loaded[0].ID != a.ID() || loaded[1].ID != b.ID() {
				t.Fatalf("loaded %+v", loaded)
			}
			if loaded[1].Names[0] != "example.com/team/b:2" {
				t.Fatalf("names %v", loaded[1].Names)
			}
			sameTree(t, flatten(t, a), mounted(t, dst, "a:1"))
			sameTree(t, flatten(t, b), mounted(t, dst, "example.com/team/b:2"))
		})
	}
}

func TestSaveByIDHasNoTags(t *testing.T) {
	a := tu.BuildImage(t, tu.ImageOptions{}, baseLayer)
	s := newTestStore(t)
	load(t, s, tu.OCIArchive(t, []*tu.TestImage{a}, []string{"docker.io/library/a:1"}))
	var buf bytes.Buffer
	if err := s.Save(context.Background(), &buf, []string{a.ID().Encoded()[:12]}, DockerArchive); err != nil {
		t.Fatal(err)
	}
	dst := newTestStore(t)
	l := load(t, dst, buf.Bytes())
	if len(l) != 1 || len(l[0].Names) != 0 || l[0].ID != a.ID() {
		t.Fatalf("loaded %+v", l)
	}
}

func TestSaveErrors(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	if err := s.Save(ctx, &bytes.Buffer{}, []string{"nothere"}, DockerArchive); !errdefs.IsNotFound(err) {
		t.Fatalf("save of a missing image: %v", err)
	}
	if err := s.Save(ctx, &bytes.Buffer{}, nil, DockerArchive); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("save of nothing: %v", err)
	}
	if _, err := ParseSaveFormat("tarball"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad format: %v", err)
	}
}

func TestImport(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	rootfs := tu.MakeTar(t, tu.Dir("bin"), tu.File("bin/tool", "tool"), tu.Dir("data"))
	img, err := s.Import(ctx, bytes.NewReader(rootfs), ImportOptions{
		Ref:     "imported:v1",
		Changes: []string{`CMD ["/bin/tool", "--serve"]`, "ENV MODE=prod", "ENV PATH=/bin:$MODE", "WORKDIR /data", "USER 1000:1000", "EXPOSE 8080", `LABEL team="platform" tier=base`, "ENTRYPOINT /bin/tool"},
		Message: "from a tarball",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := s.Config(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if c.WorkingDir != "/data" || c.User != "1000:1000" || c.Labels["team"] != "platform" || c.Labels["tier"] != "base" {
		t.Fatalf("config %+v", c)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
		t.Fatalf("exposed ports %v", c.ExposedPorts)
	}
	if len(c.Env) != 2 || c.Env[1] != "PATH=/bin:prod" {
		t.Fatalf("env %v (variables must expand)", c.Env)
	}
	if len(c.Cmd) != 2 || c.Cmd[0] != "/bin/tool" {
		t.Fatalf("cmd %v: an ENTRYPOINT after CMD in the same changes keeps the CMD", c.Cmd)
	}
	if len(c.Entrypoint) != 3 || c.Entrypoint[0] != "/bin/sh" || c.Entrypoint[2] != "/bin/tool" {
		t.Fatalf("entrypoint %v", c.Entrypoint)
	}
	if len(cfg.History) != 1 || cfg.History[0].Comment != "from a tarball" {
		t.Fatalf("history %+v", cfg.History)
	}
	got := mounted(t, s, "imported:v1")
	for _, p := range []string{"bin", "bin/tool", "data"} {
		if _, ok := got[p]; !ok {
			t.Fatalf("%s missing from the imported image", p)
		}
	}
}

func TestImportBadInput(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	for name, c := range map[string]struct {
		in      []byte
		changes []string
	}{
		"not a tar":           {in: bytes.Repeat([]byte("junk"), 300)},
		"empty":               {in: nil},
		"RUN is not a change": {in: tu.MakeTar(t, tu.File("f", "x")), changes: []string{"RUN rm -rf /"}},
		"unknown instruction": {in: tu.MakeTar(t, tu.File("f", "x")), changes: []string{"FROBNICATE now"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Import(ctx, bytes.NewReader(c.in), ImportOptions{Ref: "x:1", Changes: c.changes})
			if err == nil {
				t.Fatal("import succeeded")
			}
			if imgs, _ := s.List(ctx); len(imgs) != 0 {
				t.Fatalf("a failed import left images: %+v", imgs)
			}
		})
	}
}

// TestSameImageTwoWays loads one image as a docker-archive (uncompressed
// blobs) and then as an OCI archive (gzip blobs): the layers are unpacked
// once, and the record names only blobs the store has.
func TestSameImageTwoWays(t *testing.T) {
	img := tu.BuildImage(t, tu.ImageOptions{}, baseLayer, appLayer)
	for _, how := range []string{"stream", "file"} {
		t.Run(how, func(t *testing.T) {
			s := newTestStore(t)
			ctx := context.Background()
			for _, a := range [][]byte{
				tu.DockerArchive(t, []*tu.TestImage{img}, [][]string{{"x:1"}}),
				tu.OCIArchive(t, []*tu.TestImage{img}, []string{"docker.io/library/x:1"}),
			} {
				var err error
				if how == "stream" {
					_, err = s.Load(ctx, bytes.NewReader(a), LoadOptions{})
				} else {
					p := filepath.Join(t.TempDir(), "a.tar")
					os.WriteFile(p, a, 0o644)
					_, err = s.LoadPath(ctx, p, LoadOptions{})
				}
				if err != nil {
					t.Fatal(err)
				}
				if rep, err := s.Check(ctx, false); err != nil || len(rep.Problems) > 0 {
					t.Fatalf("check: %v %v", rep.Problems, err)
				}
			}
			var out bytes.Buffer
			if err := s.Save(ctx, &out, []string{"x:1"}, OCIArchive); err != nil {
				t.Fatal(err)
			}
		})
	}
}
