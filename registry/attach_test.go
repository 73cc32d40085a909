package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/registry/server"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func tagOf(suffix string) func(digest.Digest) string {
	return func(d digest.Digest) string { return d.Algorithm().String() + "-" + d.Encoded() + suffix }
}

// artifactOf makes an artifact of one layer.
func artifactOf(t *testing.T, subject *ocispec.Descriptor, layer []byte, artifactType string) image.Artifact {
	t.Helper()
	ld := digest.FromBytes(layer)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType, Config: ocispec.DescriptorEmptyJSON,
		Layers: []ocispec.Descriptor{{MediaType: "application/vnd.dev.cosign.simplesigning.v1+json", Digest: ld, Size: int64(len(layer))}}, Subject: subject}
	m.SchemaVersion = 2
	b, _ := json.Marshal(m)
	return image.Artifact{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType, Manifest: b,
		Blobs: map[digest.Digest][]byte{ld: layer, ocispec.DescriptorEmptyJSON.Digest: []byte("{}")}}
}

func TestAttachedRoundTrip(t *testing.T) {
	srv := serve(t, server.Options{})
	img := seed(t, srv.Addr(), "att/app:1", 1)
	h, _ := img.Digest()
	subj := digest.Digest(h.String())
	raw, _ := img.RawManifest()
	sd := &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: subj, Size: int64(len(raw))}
	cl := client(t, Options{})
	ctx := context.Background()
	repo := srv.Addr() + "/att/app"
	kinds := []AttachKind{{Tag: tagOf(".sig"), ArtifactType: "application/vnd.test.sig"}, {Tag: tagOf(".att"), ArtifactType: "application/vnd.test.att"}}

	// Nothing attached: no artifact, no error.
	got, err := cl.Attached(ctx, repo, subj, kinds)
	if err != nil || len(got) != 0 {
		t.Fatalf("nothing attached: %d artifacts, %v", len(got), err)
	}
	// A tagged artifact (cosign's way) and a referrer (the OCI way).
	tagged := artifactOf(t, nil, []byte(`{"tagged":1}`), "")
	tagged.Tag = tagOf(".sig")(subj)
	ref := artifactOf(t, sd, []byte(`{"referrer":1}`), "application/vnd.test.att")
	if err := cl.PushArtifacts(ctx, repo, []image.Artifact{tagged, ref}); err != nil {
		t.Fatal(err)
	}
	got, err = cl.Attached(ctx, repo, subj, kinds)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d artifacts, want the tagged one and the referrer", len(got))
	}
	for _, a := range got {
		want := tagged
		if a.Tag == "" {
			want = ref
		}
		if !bytes.Equal(a.Manifest, want.Manifest) || len(a.Blobs) != len(want.Blobs) {
			t.Errorf("artifact %s: not what was pushed", a.Descriptor().Digest)
		}
	}
}

// TestAttachedRefusesHugeBlob: a signature blob of 10 MB is refused before
// it is read.
func TestAttachedRefusesHugeBlob(t *testing.T) {
	srv := serve(t, server.Options{})
	img := seed(t, srv.Addr(), "att/big:1", 1)
	h, _ := img.Digest()
	subj := digest.Digest(h.String())
	cl := client(t, Options{})
	ctx := context.Background()
	repo := srv.Addr() + "/att/big"
	big := artifactOf(t, nil, bytes.Repeat([]byte("x"), 10<<20), "")
	big.Tag = tagOf(".sig")(subj)
	if err := cl.PushArtifacts(ctx, repo, []image.Artifact{big}); err != nil {
		t.Fatal(err)
	}
	_, err := cl.Attached(ctx, repo, subj, []AttachKind{{Tag: tagOf(".sig"), ArtifactType: "x"}})
	if err == nil || !strings.Contains(err.Error(), "10485760 bytes: an attached signature or record is at most 1048576") {
		t.Fatalf("a 10 MB signature blob: %v", err)
	}
}
