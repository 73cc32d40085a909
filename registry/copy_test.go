package registry

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/registry/server"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestParseLocation(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Location
		err  bool
	}{
		{in: "docker://quay.io/a/b:1", want: Location{Transport: Docker, Ref: "quay.io/a/b:1"}},
		{in: "docker://localhost:5000/a@sha256:" + "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0a1b2", want: Location{Transport: Docker, Ref: "localhost:5000/a@sha256:a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0a1b2"}},
		{in: "oci:/srv/layout", want: Location{Transport: OCI, Path: "/srv/layout"}},
		{in: "oci:/srv/layout:v1", want: Location{Transport: OCI, Path: "/srv/layout", Ref: "v1"}},
		{in: "oci:rel/dir:latest", want: Location{Transport: OCI, Path: "rel/dir", Ref: "latest"}},
		{in: "oci-archive:/tmp/a.tar:v2", want: Location{Transport: OCIArchive, Path: "/tmp/a.tar", Ref: "v2"}},
		{in: "docker-archive:/tmp/a.tar", want: Location{Transport: DockerArchive, Path: "/tmp/a.tar"}},
		{in: "docker-archive:/tmp/a.tar:team/app:1", want: Location{Transport: DockerArchive, Path: "/tmp/a.tar", Ref: "team/app:1"}},
		{in: "berth:busybox:latest", want: Location{Transport: Store, Ref: "busybox:latest"}},
		{in: "docker:quay.io/a", err: true},
		{in: "docker://", err: true},
		{in: "busybox", err: true},
		{in: "ftp://x/y", err: true},
	} {
		got, err := ParseLocation(tt.in)
		if tt.err {
			if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("ParseLocation(%q) = %+v, %v: want an invalid argument", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestCopy(t *testing.T) {
	srv := serve(t, server.Options{})
	img := seed(t, srv.Addr(), "cp/src:1", 2)
	want, _ := img.Digest()
	cl := client(t, Options{})
	st := newStore(t)
	ctx := context.Background()
	dir := t.TempDir()
	copy := func(src, dst string) {
		t.Helper()
		s, err := ParseLocation(src)
		if err != nil {
			t.Fatal(err)
		}
		d, err := ParseLocation(dst)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Copy(ctx, st, s, d, CopyOptions{}); err != nil {
			t.Fatalf("copy %s %s: %v", src, dst, err)
		}
	}
	remoteDigest := func(ref string) string {
		t.Helper()
		r, _ := name.ParseReference(ref, name.Insecure)
		d, err := remote.Head(r)
		if err != nil {
			t.Fatal(err)
		}
		return d.Digest.String()
	}
	reg := srv.Addr()
	layoutDir := filepath.Join(dir, "layout")

	// registry → layout → OCI archive → registry: the same digest all along.
	copy("docker://"+reg+"/cp/src:1", "oci:"+layoutDir+":v1")
	ii, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := ii.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != want || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v1" {
		t.Fatalf("layout index %+v, want %s named v1", im.Manifests, want)
	}
	copy("oci:"+layoutDir+":v1", "oci-archive:"+filepath.Join(dir, "img.tar")+":v1")
	copy("oci-archive:"+filepath.Join(dir, "img.tar")+":v1", "docker://"+reg+"/cp/via-archive:1")
	if got := remoteDigest(reg + "/cp/via-archive:1"); got != want.String() {
		t.Fatalf("after layout and archive: %s, want %s", got, want)
	}

	// Into the store from each kind of source, and out again.
	copy("docker://"+reg+"/cp/src:1", "berth:local/from-registry:1")
	copy("oci:"+layoutDir+":v1", "berth:local/from-layout:1")
	copy("docker://"+reg+"/cp/src:1", "docker-archive:"+filepath.Join(dir, "d.tar")+":x/y:1")
	copy("docker-archive:"+filepath.Join(dir, "d.tar"), "berth:local/from-docker-archive:1")
	cfg, _ := img.ConfigName()
	for _, n := range []string{"local/from-registry:1", "local/from-layout:1", "local/from-docker-archive:1"} {
		got, err := st.Get(ctx, n)
		if err != nil || got.ID.String() != cfg.String() {
			t.Fatalf("%s: %+v %v, want image %s", n, got, err, cfg)
		}
	}
	copy("berth:local/from-layout:1", "docker://"+reg+"/cp/from-store:1")
	if got := remoteDigest(reg + "/cp/from-store:1"); got != want.String() {
		t.Fatalf("from the store: %s, want %s", got, want)
	}
	copy("berth:local/from-layout:1", "oci:"+filepath.Join(dir, "out")+":x")
	out, _ := layout.ImageIndexFromPath(filepath.Join(dir, "out"))
	om, _ := out.IndexManifest()
	if len(om.Manifests) != 1 || om.Manifests[0].Digest != want {
		t.Fatalf("store to layout: %+v", om.Manifests)
	}
	copy("berth:local/from-layout:1", "berth:local/renamed:1")
	if _, err := st.Get(ctx, "local/renamed:1"); err != nil {
		t.Fatal(err)
	}

	// What cannot be: one line, the right kind.
	seed(t, reg, "cp/other:1", 1)
	copy("docker://"+reg+"/cp/other:1", "oci:"+layoutDir+":v2")
	for _, tt := range []struct {
		src, dst string
		kind     error
	}{
		{"oci:" + layoutDir, "berth:fail/target:1", errdefs.ErrInvalidArgument},                                        // two images, none named
		{"oci:" + layoutDir + ":nope", "berth:fail/target:1", errdefs.ErrNotFound},                                     // no such name
		{"docker://" + reg + "/cp/src:1", "docker-archive:" + filepath.Join(dir, "e.tar"), errdefs.ErrInvalidArgument}, // no name for the archive
		{"oci:" + filepath.Join(dir, "nothing"), "berth:fail/target:1", errdefs.ErrInvalidArgument},
		{"docker://" + reg + "/cp/none:1", "oci:" + filepath.Join(dir, "z"), errdefs.ErrNotFound},
	} {
		s, _ := ParseLocation(tt.src)
		d, _ := ParseLocation(tt.dst)
		err := cl.Copy(ctx, st, s, d, CopyOptions{})
		if err == nil || !errors.Is(err, tt.kind) {
			t.Errorf("copy %s %s: %v, want %v", tt.src, tt.dst, err, tt.kind)
		}
	}
	// None of them stored anything.
	if _, err := st.Get(ctx, "fail/target:1"); !errdefs.IsNotFound(err) {
		t.Errorf("a failed copy stored fail/target:1: %v", err)
	}
	imgs, _ := st.List(ctx)
	for _, i := range imgs {
		if len(i.Names) == 0 {
			t.Errorf("a failed copy left an unnamed image %s", i.ID)
		}
	}
}
