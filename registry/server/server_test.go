package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"
)

// start runs a server on a free port for the test's length.
func start(t *testing.T, o Options) *Server {
	t.Helper()
	if o.StorageDir == "" && o.ConfigFile == "" {
		o.StorageDir = t.TempDir()
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s
}

func do(t *testing.T, c *http.Client, method, url string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func pushRandom(t *testing.T, s *Server, repo string) (v1.Image, name.Reference) {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(s.Addr()+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	return img, ref
}

func TestServePushPull(t *testing.T) {
	s := start(t, Options{})
	resp, _ := do(t, nil, "GET", s.URL()+"/v2/", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v2/: %d", resp.StatusCode)
	}
	resp, b := do(t, nil, "GET", s.URL()+"/healthz", nil, nil)
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "{}" {
		t.Fatalf("healthz: %d %s", resp.StatusCode, b)
	}
	img, ref := pushRandom(t, s, "team/app:1")
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("pulled %s, pushed %s", d, want)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed() // verified against its digest as it is read
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	// The storage is distribution's layout.
	if _, err := os.Stat(filepath.Join(s.StorageDir(), "docker/registry/v2/repositories/team/app/_manifests")); err != nil {
		t.Fatal(err)
	}
}

func TestReferrersAndSubject(t *testing.T) {
	s := start(t, Options{})
	img, _ := pushRandom(t, s, "sig/app:1")
	subj, _ := img.Digest()
	mf, _ := img.RawManifest()

	empty := []byte("{}")
	emptyD := digest.FromBytes(empty)
	if resp, b := do(t, nil, "POST", s.URL()+"/v2/sig/app/blobs/uploads/?digest="+emptyD.String(), empty, nil); resp.StatusCode != 201 {
		t.Fatalf("monolithic POST: %d %s", resp.StatusCode, b)
	}
	artifact := func(at string) []byte {
		m := ocispec.Manifest{
			MediaType:    ocispec.MediaTypeImageManifest,
			ArtifactType: at,
			Config:       ocispec.Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: emptyD, Size: 2},
			Layers:       []ocispec.Descriptor{{MediaType: "application/vnd.oci.empty.v1+json", Digest: emptyD, Size: 2}},
			Subject:      &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest(subj.String()), Size: int64(len(mf))},
			Annotations:  map[string]string{"kind": at},
		}
		m.SchemaVersion = 2
		b, _ := json.Marshal(m)
		return b
	}
	var pushed []digest.Digest
	for _, at := range []string{"application/vnd.berth.signature", "application/vnd.berth.custody"} {
		b := artifact(at)
		d := digest.FromBytes(b)
		resp, body := do(t, nil, "PUT", s.URL()+"/v2/sig/app/manifests/"+d.String(), b, map[string]string{"Content-Type": ocispec.MediaTypeImageManifest})
		if resp.StatusCode != 201 {
			t.Fatalf("PUT artifact: %d %s", resp.StatusCode, body)
		}
		if got := resp.Header.Get("OCI-Subject"); got != subj.String() {
			t.Fatalf("OCI-Subject %q, want %s", got, subj)
		}
		pushed = append(pushed, d)
	}
	list := func(q string) (*http.Response, ocispec.Index) {
		resp, b := do(t, nil, "GET", s.URL()+"/v2/sig/app/referrers/"+subj.String()+q, nil, nil)
		var idx ocispec.Index
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(b, &idx); err != nil {
				t.Fatal(err)
			}
		}
		return resp, idx
	}
	resp, idx := list("")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ocispec.MediaTypeImageIndex || len(idx.Manifests) != 2 {
		t.Fatalf("referrers: %d %q %+v", resp.StatusCode, resp.Header.Get("Content-Type"), idx)
	}
	for _, m := range idx.Manifests {
		if m.ArtifactType == "" || m.Annotations["kind"] != m.ArtifactType || (m.Digest != pushed[0] && m.Digest != pushed[1]) {
			t.Fatalf("referrer %+v", m)
		}
	}
	resp, idx = list("?artifactType=application/vnd.berth.custody")
	if resp.Header.Get("OCI-Filters-Applied") != "artifactType" || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != pushed[1] {
		t.Fatalf("filtered: %q %+v", resp.Header.Get("OCI-Filters-Applied"), idx)
	}
	// Nothing refers to a manifest no one pushed, in a repository no one
	// made: an empty list, not a 404.
	resp, b := do(t, nil, "GET", s.URL()+"/v2/nobody/here/referrers/"+digest.FromString("x").String(), nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"manifests":[]`) {
		t.Fatalf("unknown repository: %d %s", resp.StatusCode, b)
	}
	if resp, _ := do(t, nil, "GET", s.URL()+"/v2/sig/app/referrers/sha256:nothex", nil, nil); resp.StatusCode != 400 {
		t.Fatalf("bad digest: %d", resp.StatusCode)
	}
}

func sha512Of(b []byte) digest.Digest {
	h := sha512.Sum512(b)
	return digest.NewDigestFromEncoded(digest.SHA512, hex.EncodeToString(h[:]))
}

func TestSHA512(t *testing.T) {
	s := start(t, Options{})
	blob := []byte("a blob named by its sha512")
	d := sha512Of(blob)
	resp, b := do(t, nil, "POST", s.URL()+"/v2/x/y/blobs/uploads/?digest="+d.String(), blob, nil)
	if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != d.String() || resp.Header.Get("Location") != "/v2/x/y/blobs/"+d.String() {
		t.Fatalf("POST: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	resp, b = do(t, nil, "GET", s.URL()+"/v2/x/y/blobs/"+d.String(), nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(b, blob) || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("GET: %d %v %q", resp.StatusCode, resp.Header, b)
	}
	// A wrong digest is refused.
	if resp, _ := do(t, nil, "POST", s.URL()+"/v2/x/y/blobs/uploads/?digest="+sha512Of([]byte("other")).String(), blob, nil); resp.StatusCode != 400 {
		t.Fatalf("wrong digest: %d", resp.StatusCode)
	}
	// Mounted into another repository by the same digest.
	resp, b = do(t, nil, "POST", s.URL()+"/v2/x/z/blobs/uploads/?mount="+d.String()+"&from=x/y", nil, nil)
	if resp.StatusCode != 201 || resp.Header.Get("Location") != "/v2/x/z/blobs/"+d.String() {
		t.Fatalf("mount: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	if resp, b := do(t, nil, "GET", s.URL()+"/v2/x/z/blobs/"+d.String(), nil, nil); resp.StatusCode != 200 || !bytes.Equal(b, blob) {
		t.Fatalf("GET mounted: %d %s", resp.StatusCode, b)
	}

	// A manifest by its sha512 digest.
	cfg := []byte("{}")
	cd := sha512Of(cfg)
	do(t, nil, "POST", s.URL()+"/v2/x/y/blobs/uploads/?digest="+cd.String(), cfg, nil)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: 2},
		Layers: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: int64(len(blob))}}}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	md := sha512Of(mb)
	hdr := map[string]string{"Content-Type": ocispec.MediaTypeImageManifest}
	resp, b = do(t, nil, "PUT", s.URL()+"/v2/x/y/manifests/"+md.String(), mb, hdr)
	if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != md.String() || resp.Header.Get("Location") != "/v2/x/y/manifests/"+md.String() {
		t.Fatalf("PUT manifest: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	resp, b = do(t, nil, "GET", s.URL()+"/v2/x/y/manifests/"+md.String(), nil, map[string]string{"Accept": ocispec.MediaTypeImageManifest})
	if resp.StatusCode != 200 || !bytes.Equal(b, mb) || resp.Header.Get("Docker-Content-Digest") != md.String() {
		t.Fatalf("GET manifest: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	if resp, _ := do(t, nil, "PUT", s.URL()+"/v2/x/y/manifests/"+sha512Of([]byte("not it")).String(), mb, hdr); resp.StatusCode != 400 {
		t.Fatalf("manifest by a wrong digest: %d", resp.StatusCode)
	}
}

func TestBasicAuth(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	os.WriteFile(htpasswd, []byte("alice:"+string(hash)+"\n"), 0o600)
	s := start(t, Options{Htpasswd: htpasswd, Realm: "test"})
	resp, _ := do(t, nil, "GET", s.URL()+"/v2/", nil, nil)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `Basic realm="test"`) {
		t.Fatalf("no credentials: %d %v", resp.StatusCode, resp.Header)
	}
	// The OCI additions ask the same access controller.
	if resp, _ := do(t, nil, "GET", s.URL()+"/v2/a/b/referrers/"+digest.FromString("x").String(), nil, nil); resp.StatusCode != 401 {
		t.Fatalf("referrers without credentials: %d", resp.StatusCode)
	}
	if resp, _ := do(t, nil, "POST", s.URL()+"/v2/a/b/blobs/uploads/?digest="+digest.FromString("x").String(), []byte("x"), nil); resp.StatusCode != 401 {
		t.Fatalf("monolithic POST without credentials: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", s.URL()+"/v2/", nil)
	req.SetBasicAuth("alice", "s3cret")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("with credentials: %v %v", resp, err)
	}
	req.SetBasicAuth("alice", "wrong")
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != 401 {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, certPEM, 0o600)
	os.WriteFile(key, keyPEM, 0o600)
	s := start(t, Options{TLSCert: cert, TLSKey: key})
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL %s", s.URL())
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if resp, _ := do(t, c, "GET", s.URL()+"/v2/", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("GET over TLS: %d", resp.StatusCode)
	}
	if _, err := http.Get(s.URL() + "/v2/"); err == nil {
		t.Fatal("an unknown CA was accepted")
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	start(t, Options{StorageDir: dir}) // made once, writable
	s := start(t, Options{StorageDir: dir, ReadOnly: true})
	resp, b := do(t, nil, "POST", s.URL()+"/v2/a/b/blobs/uploads/", nil, nil)
	if resp.StatusCode != 405 {
		t.Fatalf("upload to a read-only registry: %d %s", resp.StatusCode, b)
	}
}

func TestGC(t *testing.T) {
	dir := t.TempDir()
	s := start(t, Options{StorageDir: dir})
	keep, _ := pushRandom(t, s, "gc/keep:1")
	gone, goneRef := pushRandom(t, s, "gc/gone:1")
	gd, _ := gone.Digest()
	if err := remote.Delete(goneRef.Context().Digest(gd.String())); err != nil {
		t.Fatal(err)
	}
	blobs := func() int {
		n := 0
		filepath.Walk(filepath.Join(dir, "docker/registry/v2/blobs"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Name() == "data" {
				n++
			}
			return nil
		})
		return n
	}
	before := blobs()
	if err := GC(context.Background(), Options{StorageDir: dir}, GCOptions{DryRun: true, Log: io.Discard}); err != nil {
		t.Fatal(err)
	}
	if blobs() != before {
		t.Fatal("a dry run deleted blobs")
	}
	if err := GC(context.Background(), Options{StorageDir: dir}, GCOptions{Log: io.Discard}); err != nil {
		t.Fatal(err)
	}
	// The deleted image's manifest, config and two layers go; the kept
	// image stays whole.
	if after := blobs(); after != before-4 {
		t.Fatalf("%d blobs before, %d after gc: want 4 fewer", before, after)
	}
	kd, _ := keep.Digest()
	ref, _ := name.ParseReference(s.Addr()+"/gc/keep@"+kd.String(), name.Insecure)
	if _, err := remote.Image(ref); err != nil {
		t.Fatalf("the kept image after gc: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("version: [not yaml"), 0o600)
	for _, tt := range []struct {
		name string
		o    Options
		want string
	}{
		{"no storage", Options{}, "no storage directory"},
		{"cert without key", Options{StorageDir: dir, TLSCert: "c.pem"}, "go together"},
		{"missing htpasswd", Options{StorageDir: dir, Htpasswd: filepath.Join(dir, "nope")}, "htpasswd"},
		{"bad config file", Options{ConfigFile: bad}, "registry config"},
		{"missing config file", Options{ConfigFile: filepath.Join(dir, "nope.yml")}, "registry config"},
	} {
		_, err := Config(tt.o)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := Config(Options{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("no storage: %v is not an invalid argument", err)
	}
	// A config file's other settings stay; the flags win.
	cfgFile := filepath.Join(dir, "config.yml")
	os.WriteFile(cfgFile, []byte("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /from/file\nhttp:\n  addr: 127.0.0.1:6000\n"), 0o600)
	cfg, err := Config(Options{ConfigFile: cfgFile, Addr: "127.0.0.1:7000"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:7000" || cfg.Storage.Parameters()["rootdirectory"] != "/from/file" {
		t.Fatalf("config %s %v", cfg.HTTP.Addr, cfg.Storage.Parameters())
	}
}

func TestHTTPSecretKept(t *testing.T) {
	dir := t.TempDir()
	a, err := Config(Options{StorageDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Config(Options{StorageDir: dir})
	if a.HTTP.Secret == "" || a.HTTP.Secret != b.HTTP.Secret {
		t.Fatalf("secrets %q and %q: want one kept with the storage", a.HTTP.Secret, b.HTTP.Secret)
	}
}

func TestConfigIgnoresPodmanAuthFile(t *testing.T) {
	t.Setenv("REGISTRY_AUTH_FILE", "/run/user/0/containers/auth.json")
	s := start(t, Options{})
	if resp, _ := do(t, nil, "GET", s.URL()+"/v2/", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("with Podman's REGISTRY_AUTH_FILE set: %d", resp.StatusCode)
	}
	if os.Getenv("REGISTRY_AUTH_FILE") != "/run/user/0/containers/auth.json" {
		t.Fatal("REGISTRY_AUTH_FILE was not restored")
	}
}

func TestBadAuthConfigIsAnError(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config.yml")
	os.WriteFile(cfgFile, []byte("version: 0.1\nstorage:\n  inmemory: {}\nauth:\n  nosuchmethod: {}\n"), 0o600)
	_, err := New(context.Background(), Options{ConfigFile: cfgFile, Addr: "127.0.0.1:0", Log: io.Discard})
	if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("an unknown auth method: %v", err)
	}
}
