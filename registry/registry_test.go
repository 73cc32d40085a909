package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/registry/server"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

// serve runs berth's registry server for the test.
func serve(t *testing.T, o server.Options) *server.Server {
	t.Helper()
	if o.StorageDir == "" {
		o.StorageDir = t.TempDir()
	}
	o.Addr, o.Log = "127.0.0.1:0", io.Discard
	// A connection a client opened and never used holds a graceful stop
	// for 5 s (net/http counts it idle only then): the tests need none.
	o.DrainTimeout = 100 * time.Millisecond
	s, err := server.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() { s.Shutdown(context.Background()); <-done })
	return s
}

// seed pushes a random image of n layers to addr/repo.
func seed(t *testing.T, addr, repo string, n int) v1.Image {
	t.Helper()
	img, err := random.Image(64<<10, int64(n))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(addr+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return img
}

func newStore(t *testing.T) *image.Store {
	t.Helper()
	s, err := image.Open(image.Options{Root: t.TempDir(), RunRoot: t.TempDir(), Driver: "vfs"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// client makes a client that reads no registries.conf, certs or
// credentials of the machine's.
func client(t *testing.T, o Options) *Client {
	t.Helper()
	if o.RegistriesConf == nil {
		o.RegistriesConf = []string{}
	}
	if o.CertDirs == nil {
		o.CertDirs = []string{}
	}
	if o.AuthFile == "" {
		o.AuthFile = filepath.Join(t.TempDir(), "auth.json")
	}
	o.Backoff = 1
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	cl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func TestPullPushRoundTrip(t *testing.T) {
	srv := serve(t, server.Options{})
	img := seed(t, srv.Addr(), "team/app:1", 3)
	want, _ := img.Digest()
	cl := client(t, Options{})
	st := newStore(t)
	ctx := context.Background()

	var progress bytes.Buffer
	pulled, err := cl.Pull(ctx, st, srv.Addr()+"/team/app:1", PullOptions{Progress: Lines(&progress, false)})
	if err != nil {
		t.Fatal(err)
	}
	if len(pulled) != 1 || pulled[0].Digest.String() != want.String() || !pulled[0].Fetched || pulled[0].Ref != srv.Addr()+"/team/app:1" {
		t.Fatalf("pulled %+v, want %s", pulled, want)
	}
	if n := strings.Count(progress.String(), "Pull complete"); n != 3 {
		t.Fatalf("%d layers reported complete, want 3:\n%s", n, progress.String())
	}
	got, err := st.Get(ctx, srv.Addr()+"/team/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if cfg, _ := img.ConfigName(); got.ID.String() != cfg.String() {
		t.Fatalf("image ID %s, config %s", got.ID, cfg)
	}
	if byDigest, err := st.Get(ctx, srv.Addr()+"/team/app@"+want.String()); err != nil || byDigest.ID != got.ID {
		t.Fatalf("by its repo digest: %v", err)
	}
	if rep, err := st.Check(ctx, false); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("store check after pull: %+v %v", rep, err)
	}

	// Again: nothing is fetched.
	again, err := cl.Pull(ctx, st, srv.Addr()+"/team/app:1", PullOptions{})
	if err != nil || again[0].Fetched {
		t.Fatalf("second pull: %+v %v", again, err)
	}

	// Pushed elsewhere, the manifest is the same bytes: the same digest.
	pushed, err := cl.Push(ctx, st, srv.Addr()+"/team/app:1", srv.Addr()+"/other/app:copy", PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pushed.Digest.String() != want.String() {
		t.Fatalf("pushed %s, pulled %s", pushed.Digest, want)
	}
	ref, _ := name.ParseReference(srv.Addr()+"/other/app:copy", name.Insecure)
	if d, err := remote.Head(ref); err != nil || d.Digest != want {
		t.Fatalf("remote head after push: %v %v", d, err)
	}
	b, err := cl.ManifestInspect(ctx, srv.Addr()+"/other/app:copy")
	if err != nil || !strings.Contains(string(b), `"schemaVersion"`) {
		t.Fatalf("manifest inspect: %s %v", b, err)
	}
}

func TestPullIndexPicksPlatform(t *testing.T) {
	srv := serve(t, server.Options{})
	idx, err := random.Index(32<<10, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	// random.Index gives no platforms: name them.
	im, _ := idx.IndexManifest()
	ref, _ := name.ParseReference(srv.Addr()+"/multi/app:1", name.Insecure)
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	_ = im
	cl := client(t, Options{})
	_, err = cl.Pull(context.Background(), newStore(t), srv.Addr()+"/multi/app:1", PullOptions{})
	// No manifest of the index is for this platform.
	if err == nil || !errdefs.IsNotFound(err) && !strings.Contains(err.Error(), "platform") {
		t.Fatalf("pull of an index without this platform: %v", err)
	}
}

// faults is a proxy in front of a registry that breaks what it is told to.
type faults struct {
	mu       sync.Mutex
	backend  *url.URL
	requests map[string]int
	// resetBlob: cut the connection after this many bytes of a blob GET,
	// the given number of times.
	resetAfter int
	resets     int
	// fail5xx: answer 500 this many times.
	fail5xx int
	// corrupt: serve this blob digest with one byte changed.
	corrupt string
	// breakBlob: always cut this blob.
	breakBlob string
	// override answers a path with a body and type of the test's.
	override map[string][2]string
	// ranges are the Range headers of blob GETs, by path.
	ranges map[string][]string
}

func proxy(t *testing.T, backend string) (*faults, string) {
	t.Helper()
	u, _ := url.Parse("http://" + backend)
	f := &faults{backend: u, requests: map[string]int{}, override: map[string][2]string{}, ranges: map[string][]string{}}
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	return f, strings.TrimPrefix(ts.URL, "http://")
}

func (f *faults) count(substr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for p, c := range f.requests {
		if strings.Contains(p, substr) {
			n += c
		}
	}
	return n
}

func (f *faults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests[r.Method+" "+r.URL.Path]++
	if r.Method == http.MethodGet {
		f.ranges[r.URL.Path] = append(f.ranges[r.URL.Path], r.Header.Get("Range"))
	}
	if o, ok := f.override[r.URL.Path]; ok {
		f.mu.Unlock()
		w.Header().Set("Content-Type", o[1])
		io.WriteString(w, o[0])
		return
	}
	isBlob := r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:")
	if f.fail5xx > 0 && r.URL.Path != "/v2/" {
		f.fail5xx--
		f.mu.Unlock()
		http.Error(w, "try later", http.StatusInternalServerError)
		return
	}
	cut := isBlob && (f.resets > 0 && r.Header.Get("Range") == "" || f.breakBlob != "" && strings.HasSuffix(r.URL.Path, f.breakBlob))
	if cut && f.resets > 0 {
		f.resets--
	}
	corrupt := isBlob && f.corrupt != "" && strings.HasSuffix(r.URL.Path, f.corrupt)
	f.mu.Unlock()

	req, _ := http.NewRequestWithContext(r.Context(), r.Method, f.backend.String()+r.URL.RequestURI(), r.Body)
	req.Header = r.Header.Clone()
	req.ContentLength = r.ContentLength
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		w.Header().Set("Location", strings.Replace(loc, f.backend.Host, r.Host, 1))
	}
	if cut {
		w.WriteHeader(resp.StatusCode)
		io.CopyN(w, resp.Body, int64(f.resetAfter))
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
		return
	}
	if corrupt {
		b, _ := io.ReadAll(resp.Body)
		if len(b) > 0 {
			b[len(b)/2] ^= 0xff
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(b)
		return
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func TestPullSurvivesFaults(t *testing.T) {
	srv := serve(t, server.Options{})
	seed(t, srv.Addr(), "f/app:1", 2)
	f, addr := proxy(t, srv.Addr())
	cl := client(t, Options{})
	ctx := context.Background()

	// Connections reset mid-blob, twice: the stream is taken up again
	// with Range and the pull succeeds.
	f.resetAfter, f.resets = 1000, 2
	st := newStore(t)
	if _, err := cl.Pull(ctx, st, addr+"/f/app:1", PullOptions{}); err != nil {
		t.Fatalf("pull through resets: %v", err)
	}
	if f.resets != 0 {
		t.Fatal("the resets did not happen")
	}
	// 500s are retried.
	f.fail5xx = 2
	if _, err := cl.Pull(ctx, newStore(t), addr+"/f/app:1", PullOptions{}); err != nil {
		t.Fatalf("pull through 500s: %v", err)
	}
}

func TestPullRejectsCorruptBlob(t *testing.T) {
	srv := serve(t, server.Options{})
	img := seed(t, srv.Addr(), "c/app:1", 2)
	layers, _ := img.Layers()
	bad, _ := layers[1].Digest()
	f, addr := proxy(t, srv.Addr())
	f.corrupt = bad.String()
	st := newStore(t)
	cl := client(t, Options{})
	ctx := context.Background()
	_, err := cl.Pull(ctx, st, addr+"/c/app:1", PullOptions{})
	// The decompressor or the digest check finds it, whichever reads the
	// bad byte first; either way the error names the layer.
	if err == nil || !strings.Contains(err.Error(), bad.String()) {
		t.Fatalf("pull of a corrupt blob: %v", err)
	}
	if imgs, _ := st.List(ctx); len(imgs) != 0 {
		t.Fatalf("a corrupt pull listed %v", imgs)
	}
	if _, err := st.Content().Info(ctx, digest.Digest(bad.String())); err == nil {
		t.Fatal("the corrupt blob was kept")
	}
	if rep, err := st.Check(ctx, false); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("store check after a corrupt pull: %+v %v", rep, err)
	}
	// A config whose bytes are not its digest's: the digest check, nothing else, finds it.
	cfgName, _ := img.ConfigName()
	f.corrupt = cfgName.String()
	if _, err := cl.Pull(ctx, newStore(t), addr+"/c/app:1", PullOptions{}); !errdefs.IsDataLoss(err) {
		t.Fatalf("pull of a corrupt config: %v", err)
	}
	f.corrupt = bad.String()

	// Served right, it comes in, and the good layer is not fetched again.
	good, _ := layers[0].Digest()
	before := f.count(good.String())
	f.corrupt = ""
	if _, err := cl.Pull(ctx, st, addr+"/c/app:1", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if again := f.count(good.String()) - before; again != 0 {
		t.Fatalf("the finished layer was fetched %d more times", again)
	}
}

func TestPullResumesInterrupted(t *testing.T) {
	srv := serve(t, server.Options{})
	img := seed(t, srv.Addr(), "r/app:1", 3)
	layers, _ := img.Layers()
	last, _ := layers[2].Digest()
	f, addr := proxy(t, srv.Addr())
	f.breakBlob, f.resetAfter = last.String(), 10
	st := newStore(t)
	cl := client(t, Options{Retries: 1})
	ctx := context.Background()
	if _, err := cl.Pull(ctx, st, addr+"/r/app:1", PullOptions{}); err == nil {
		t.Fatal("a pull whose layer never comes whole succeeded")
	}
	f.mu.Lock()
	f.breakBlob = ""
	f.requests = map[string]int{}
	f.mu.Unlock()
	if _, err := cl.Pull(ctx, st, addr+"/r/app:1", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, l := range layers[:2] {
		d, _ := l.Digest()
		if n := f.count(d.String()); n != 0 {
			t.Errorf("layer %d, finished before, fetched %d times again", i, n)
		}
	}
	if n := f.count(last.String()); n == 0 {
		t.Error("the missing layer was not fetched")
	}
}

func TestPullBadInput(t *testing.T) {
	srv := serve(t, server.Options{})
	seed(t, srv.Addr(), "b/app:1", 1)
	f, addr := proxy(t, srv.Addr())
	big := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":"` + strings.Repeat("a", MaxManifest) + `"}}`
	f.override["/v2/b/big/manifests/1"] = [2]string{big, "application/vnd.oci.image.manifest.v1+json"}
	f.override["/v2/b/html/manifests/1"] = [2]string{"<html><body>login</body></html>", "text/html"}
	f.override["/v2/b/odd/manifests/1"] = [2]string{"{}", "application/vnd.example.thing+json"}
	f.override["/v2/b/s1/manifests/1"] = [2]string{`{"schemaVersion":1}`, "application/vnd.docker.distribution.manifest.v1+prettyjws"}
	cl := client(t, Options{})
	ctx := context.Background()
	for _, tt := range []struct {
		ref  string
		kind error
		want string
	}{
		{addr + "/b/big:1", errdefs.ErrInvalidArgument, "over the 4 MiB limit"},
		{addr + "/b/html:1", errdefs.ErrInvalidArgument, "answered text/html"},
		{addr + "/b/odd:1", errdefs.ErrNotImplemented, "unknown manifest media type"},
		{addr + "/b/s1:1", errdefs.ErrNotImplemented, "schema 1"},
		{addr + "/b/app@sha256:" + strings.Repeat("0", 64), errdefs.ErrNotFound, "manifest unknown"},
		{addr + "/b/missing:1", errdefs.ErrNotFound, "manifest unknown"},
		{"Not A Valid Name!", errdefs.ErrInvalidArgument, "invalid reference"},
	} {
		st := newStore(t)
		_, err := cl.Pull(ctx, st, tt.ref, PullOptions{})
		if err == nil || !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("pull %s: %v, want %v containing %q", tt.ref, err, tt.kind, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("pull %s: a multi-line error: %q", tt.ref, err)
		}
		if imgs, _ := st.List(ctx); len(imgs) != 0 {
			t.Errorf("pull %s stored %v", tt.ref, imgs)
		}
	}
	// A manifest served under a digest that is not its own.
	mb, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"})
	wrong := "sha256:" + strings.Repeat("1", 64)
	f.override["/v2/b/lie/manifests/"+wrong] = [2]string{string(mb), "application/vnd.oci.image.manifest.v1+json"}
	if _, err := cl.Pull(ctx, newStore(t), addr+"/b/lie@"+wrong, PullOptions{}); !errdefs.IsDataLoss(err) {
		t.Errorf("a manifest of another digest: %v", err)
	}
}

func TestLoginLogout(t *testing.T) {
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	htpasswd := filepath.Join(dir, "htpasswd")
	os.WriteFile(htpasswd, []byte("bob:"+string(hash)+"\n"), 0o600)
	srv := serve(t, server.Options{Htpasswd: htpasswd})
	authFile := filepath.Join(dir, "config.json")
	cl := client(t, Options{AuthFile: authFile})
	ctx := context.Background()

	if err := cl.Login(ctx, srv.Addr(), "bob", "wrong"); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("login with a wrong password: %v", err)
	}
	if _, err := os.Stat(authFile); err == nil {
		t.Fatal("a refused login wrote credentials")
	}
	if err := cl.Login(ctx, srv.Addr(), "bob", "pw"); err != nil {
		t.Fatal(err)
	}
	var cf struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	b, _ := os.ReadFile(authFile)
	if err := json.Unmarshal(b, &cf); err != nil || cf.Auths[srv.Addr()].Auth != base64.StdEncoding.EncodeToString([]byte("bob:pw")) {
		t.Fatalf("credentials file: %s %v", b, err)
	}
	// Pushes and pulls use them.
	img, _ := random.Image(1024, 1)
	ref, _ := name.ParseReference(srv.Addr()+"/auth/app:1", name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "bob", Password: "pw"})); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Pull(ctx, newStore(t), srv.Addr()+"/auth/app:1", PullOptions{}); err != nil {
		t.Fatalf("pull with stored credentials: %v", err)
	}
	if err := cl.Logout(srv.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := cl.Logout(srv.Addr()); !errdefs.IsNotFound(err) {
		t.Fatalf("second logout: %v", err)
	}
	cl2 := client(t, Options{AuthFile: authFile})
	if _, err := cl2.Pull(ctx, newStore(t), srv.Addr()+"/auth/app:1", PullOptions{}); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("pull after logout: %v", err)
	}
}

func TestMirror(t *testing.T) {
	mirror := serve(t, server.Options{})
	img := seed(t, mirror.Addr(), "library/thing:1", 1)
	want, _ := img.Digest()
	dir := t.TempDir()
	conf := filepath.Join(dir, "registries.conf")
	// The image's own registry does not answer; its mirror has it.
	os.WriteFile(conf, []byte(`
[[registry]]
location = "unreachable.invalid:5000"
[[registry.mirror]]
location = "`+mirror.Addr()+`"
insecure = true
`), 0o600)
	cl := client(t, Options{RegistriesConf: []string{conf}})
	pulled, err := cl.Pull(context.Background(), newStore(t), "unreachable.invalid:5000/library/thing:1", PullOptions{})
	if err != nil || pulled[0].Digest.String() != want.String() {
		t.Fatalf("pull through the mirror: %+v %v", pulled, err)
	}
	// Named as asked, not as the mirror.
	if pulled[0].Ref != "unreachable.invalid:5000/library/thing:1" {
		t.Fatalf("ref %s", pulled[0].Ref)
	}
}

func TestHosts(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "registries.conf")
	os.WriteFile(conf, []byte(`
[[registry]]
location = "insecure.example:5000"
insecure = true
[[registry]]
location = "blocked.example"
blocked = true
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "mirror.example"
`), 0o600)
	h, err := LoadHosts([]string{conf, filepath.Join(dir, "missing.conf")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{"insecure.example:5000": true, "localhost:5000": true, "127.0.0.1:5000": true, "[::1]:5000": true, "quay.io": false} {
		if got := h.Insecure(host); got != want {
			t.Errorf("Insecure(%s) = %v", host, got)
		}
	}
	if !h.Blocked("blocked.example") || h.Blocked("quay.io") {
		t.Error("blocked")
	}
	if m := h.Mirrors("index.docker.io"); len(m) != 1 || m[0].Location != "mirror.example" {
		t.Errorf("docker.io mirrors %v", m)
	}
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("[[registry]\nlocation = "), 0o600)
	if _, err := LoadHosts([]string{bad}, nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a broken registries.conf: %v", err)
	}
	cl := client(t, Options{RegistriesConf: []string{conf}})
	if _, err := cl.Pull(context.Background(), newStore(t), "blocked.example/x:1", PullOptions{}); !errdefs.IsPermissionDenied(err) {
		t.Errorf("pull from a blocked registry: %v", err)
	}
}

func TestNextPage(t *testing.T) {
	for _, tt := range []struct{ cur, link, want string }{
		{"http://r/v2/a/tags/list", `</v2/a/tags/list?n=2&last=b>; rel="next"`, "http://r/v2/a/tags/list?n=2&last=b"},
		{"http://r/v2/a/tags/list", "", ""},
		{"http://r/v2/a/tags/list", `</x>; rel="prev"`, ""},
	} {
		if got := nextPage(tt.cur, tt.link); got != tt.want {
			t.Errorf("nextPage(%q) = %q, want %q", tt.link, got, tt.want)
		}
	}
}

func TestTransportCA(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs.d")
	os.MkdirAll(filepath.Join(certs, "registry.example:5000"), 0o755)
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	defer ts.Close()
	caPEM := pemOf(ts.Certificate().Raw)
	os.WriteFile(filepath.Join(certs, "registry.example:5000", "ca.crt"), caPEM, 0o644)
	h, err := LoadHosts(nil, []string{filepath.Join(dir, "nothing"), certs})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := h.Transport("registry.example:5000")
	if err != nil {
		t.Fatal(err)
	}
	tr := rt.(*http.Transport)
	if tr.TLSClientConfig.InsecureSkipVerify {
		t.Fatal("a registry with a CA of its own is not verified")
	}
	// The CA verifies the server's certificate.
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, strings.TrimPrefix(ts.URL, "https://"))
	}
	tr.TLSClientConfig.ServerName = "example.com" // httptest's certificate names it
	resp, err := (&http.Client{Transport: tr}).Get("https://registry.example:5000/v2/")
	if err != nil {
		t.Fatalf("TLS with the registry's CA: %v", err)
	}
	resp.Body.Close()
	// Without it, the same server is refused.
	h2, _ := LoadHosts(nil, nil)
	rt2, _ := h2.Transport("registry.example:5000")
	tr2 := rt2.(*http.Transport)
	tr2.DialContext = tr.DialContext
	tr2.TLSClientConfig.ServerName = "example.com"
	if _, err := (&http.Client{Transport: tr2}).Get("https://registry.example:5000/v2/"); err == nil {
		t.Fatal("a certificate of an unknown CA was accepted")
	}
	// A cert dir file that is not PEM is an error, not ignored.
	os.WriteFile(filepath.Join(certs, "registry.example:5000", "bad.crt"), []byte("nope"), 0o644)
	if _, err := h.Transport("registry.example:5000"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("a bad CA file: %v", err)
	}
}

func pemOf(der []byte) []byte {
	return []byte("-----BEGIN CERTIFICATE-----\n" + base64.StdEncoding.EncodeToString(der) + "\n-----END CERTIFICATE-----\n")
}

// TestPushMounts: pushing a pulled image to another repository of the same
// registry mounts its blobs instead of uploading them.
func TestPushMounts(t *testing.T) {
	srv := serve(t, server.Options{})
	seed(t, srv.Addr(), "m/src:1", 2)
	f, addr := proxy(t, srv.Addr())
	cl := client(t, Options{})
	st := newStore(t)
	ctx := context.Background()
	if _, err := cl.Pull(ctx, st, addr+"/m/src:1", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Push(ctx, st, addr+"/m/src:1", addr+"/m/dst:1", PushOptions{}); err != nil {
		t.Fatal(err)
	}
	// Only the config (not a layer, so not mounted; a few hundred bytes)
	// is uploaded: one PATCH and its PUT.
	if n := f.count("PATCH /v2/m/dst/"); n > 1 {
		t.Fatalf("%d blob uploads to the new repository: want the layers mounted", n)
	}
	if f.count("POST /v2/m/dst/blobs/uploads/") == 0 {
		t.Fatal("no mount was asked for")
	}
	ref, _ := name.ParseReference(addr+"/m/dst:1", name.Insecure)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("a mounted layer: %v", err)
		}
		rc.Close()
	}
}

// TestPullResumesLayerWithRange: a layer a pull left half fetched (no
// retries left, as when the process is killed) is taken up where it
// stopped by the next pull, with Range, not fetched from its start.
func TestPullResumesLayerWithRange(t *testing.T) {
	srv := serve(t, server.Options{})
	img, err := random.Image(512<<10, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(srv.Addr()+"/rr/app:1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	f, addr := proxy(t, srv.Addr())
	f.breakBlob, f.resetAfter = ld.String(), 100<<10
	st := newStore(t)
	ctx := context.Background()
	if _, err := client(t, Options{Retries: 1}).Pull(ctx, st, addr+"/rr/app:1", PullOptions{}); err == nil {
		t.Fatal("the pull whose layer was cut succeeded")
	}
	f.mu.Lock()
	f.breakBlob = ""
	f.ranges = map[string][]string{}
	f.mu.Unlock()
	if _, err := client(t, Options{}).Pull(ctx, st, addr+"/rr/app:1", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	p := "/v2/rr/app/blobs/" + ld.String()
	got := f.ranges[p]
	if len(got) != 1 || !strings.HasPrefix(got[0], "bytes=") || got[0] == "bytes=0-" {
		t.Fatalf("the second pull fetched the layer with Range %q: want one request from where the first stopped", got)
	}
	if rep, err := st.Check(ctx, false); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("store check: %+v %v", rep, err)
	}
}

// TestPushRecompresses: --compression-format zstd pushes zstd layers in an
// OCI manifest; pulled back, it is the same image (config, ID) and the
// stored one is unchanged.
func TestPushRecompresses(t *testing.T) {
	srv := serve(t, server.Options{})
	seed(t, srv.Addr(), "z/src:1", 2)
	cl := client(t, Options{})
	st := newStore(t)
	ctx := context.Background()
	pulled, err := cl.Pull(ctx, st, srv.Addr()+"/z/src:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := cl.Push(ctx, st, srv.Addr()+"/z/src:1", srv.Addr()+"/z/zstd:1", PushOptions{Compression: ZstdLayers})
	if err != nil {
		t.Fatal(err)
	}
	if pushed.Digest == pulled[0].Digest {
		t.Fatal("a recompressed push kept the manifest digest")
	}
	ref, _ := name.ParseReference(srv.Addr()+"/z/zstd:1", name.Insecure)
	d, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		MediaType string
		Layers    []struct{ MediaType string }
	}
	json.Unmarshal(d.Manifest, &m)
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || len(m.Layers) != 2 {
		t.Fatalf("manifest %s", d.Manifest)
	}
	for _, l := range m.Layers {
		if l.MediaType != "application/vnd.oci.image.layer.v1.tar+zstd" {
			t.Fatalf("layer media type %s", l.MediaType)
		}
	}
	// Pulled into another store: the same image, unpacked from zstd.
	st2 := newStore(t)
	back, err := cl.Pull(ctx, st2, srv.Addr()+"/z/zstd:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if back[0].ID != pulled[0].ID {
		t.Fatalf("image %s after zstd, %s before", back[0].ID, pulled[0].ID)
	}
	if rep, err := st2.Check(ctx, false); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("store check: %+v %v", rep, err)
	}
	// The stored image still has its own manifest.
	img, _ := st.Get(ctx, srv.Addr()+"/z/src:1")
	if img.Manifest.Digest != pulled[0].Digest {
		t.Fatal("the push changed the stored image")
	}
	// Pushing zstd layers as zstd recompresses nothing; as gzip it does.
	again, err := cl.Push(ctx, st2, srv.Addr()+"/z/zstd:1", srv.Addr()+"/z/zstd2:1", PushOptions{Compression: ZstdLayers})
	if err != nil || again.Digest != pushed.Digest {
		t.Fatalf("zstd to zstd: %v %v", again, err)
	}
	if _, err := ParseCompression("lz4"); !errdefs.IsInvalidArgument(err) {
		t.Fatal("lz4 accepted")
	}
}

// TestReferrers: an artifact pushed with a subject is found through the
// referrers API of berth's server, and through the tag schema's fallback
// index on a registry that has no referrers API.
func TestReferrers(t *testing.T) {
	berthSrv := serve(t, server.Options{})
	plain := httptest.NewServer(ggcrregistry.New()) // no referrers API
	defer plain.Close()
	for name_, addr := range map[string]string{"referrers API": berthSrv.Addr(), "tag fallback": strings.TrimPrefix(plain.URL, "http://")} {
		t.Run(name_, func(t *testing.T) {
			img := seed(t, addr, "sig/app:1", 1)
			subj, _ := img.Digest()
			sig, err := random.Image(128, 1)
			if err != nil {
				t.Fatal(err)
			}
			desc, _ := partial.Descriptor(img)
			sig = mutate.Subject(mutate.ConfigMediaType(sig, "application/vnd.berth.signature.v1+json"), *desc).(v1.Image)
			sd, _ := sig.Digest()
			ref, _ := name.ParseReference(addr+"/sig/app@"+sd.String(), name.Insecure)
			if err := remote.Write(ref, sig); err != nil {
				t.Fatal(err)
			}
			cl := client(t, Options{})
			got, err := cl.Referrers(context.Background(), addr+"/sig/app", digest.Digest(subj.String()), "")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Digest.String() != sd.String() || got[0].ArtifactType != "application/vnd.berth.signature.v1+json" {
				t.Fatalf("referrers %+v, want %s", got, sd)
			}
			none, err := cl.Referrers(context.Background(), addr+"/sig/app", digest.Digest(subj.String()), "application/vnd.other")
			if err != nil || len(none) != 0 {
				t.Fatalf("filtered: %+v %v", none, err)
			}
		})
	}
}

// TestTokenAuth: a registry that sends clients to a token server (as
// Docker Hub and most registries do): the credentials go to the token
// server, the registry gets only the bearer token.
func TestTokenAuth(t *testing.T) {
	backend := serve(t, server.Options{})
	seed(t, backend.Addr(), "tok/app:1", 1)
	const token = "berth-test-token"
	var tokenServer *httptest.Server
	tokenServer = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != "dave" || p != "pw" || r.URL.Query().Get("service") != "berth-test" || !strings.Contains(r.URL.Query().Get("scope"), "repository:tok/app:pull") {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"token": token})
	}))
	defer tokenServer.Close()
	front, addr := proxy(t, backend.Addr())
	_ = front
	// The proxy asks for the token on every registry request.
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+tokenServer.URL+`/token",service="berth-test",scope="repository:tok/app:pull"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		r.Header.Del("Authorization")
		u, _ := url.Parse("http://" + addr)
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, u.String()+r.URL.RequestURI(), r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer gate.Close()
	reg := strings.TrimPrefix(gate.URL, "http://")
	authFile := filepath.Join(t.TempDir(), "auth.json")
	cl := client(t, Options{AuthFile: authFile})
	ctx := context.Background()
	if _, err := cl.Pull(ctx, newStore(t), reg+"/tok/app:1", PullOptions{}); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("pull without credentials: %v", err)
	}
	os.WriteFile(authFile, []byte(`{"auths":{"`+reg+`":{"auth":"`+base64.StdEncoding.EncodeToString([]byte("dave:pw"))+`"}}}`), 0o600)
	cl = client(t, Options{AuthFile: authFile})
	if _, err := cl.Pull(ctx, newStore(t), reg+"/tok/app:1", PullOptions{}); err != nil {
		t.Fatalf("pull with a token: %v", err)
	}
}

// TestCredentialHelper: config.json's credsStore is a docker-credential-*
// program: login stores through it, pulls read through it.
func TestCredentialHelper(t *testing.T) {
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	htpasswd := filepath.Join(dir, "htpasswd")
	os.WriteFile(htpasswd, []byte("erin:"+string(hash)+"\n"), 0o600)
	srv := serve(t, server.Options{Htpasswd: htpasswd})
	seedAuth(t, srv.Addr(), "helper/app:1", "erin", "pw")
	// A helper that keeps credentials in a file of its own.
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	store := filepath.Join(dir, "helper-store.json")
	os.WriteFile(filepath.Join(bin, "docker-credential-berthtest"), []byte(`#!/bin/sh
case "$1" in
store) cat > `+store+` ;;
get) cat >/dev/null; if [ -s `+store+` ]; then cat `+store+`; else echo "credentials not found in native keychain"; exit 1; fi ;;
erase) cat >/dev/null; rm -f `+store+` ;;
list) echo '{}' ;;
esac
`), 0o755)
	authFile := filepath.Join(dir, "config.json")
	os.WriteFile(authFile, []byte(`{"credsStore":"berthtest"}`), 0o600)
	cl := client(t, Options{AuthFile: authFile})
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	ctx := context.Background()
	if err := cl.Login(ctx, srv.Addr(), "erin", "pw"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(store); !strings.Contains(string(b), `"Secret":"pw"`) {
		t.Fatalf("the helper was not given the credentials: %s", b)
	}
	if b, _ := os.ReadFile(authFile); strings.Contains(string(b), "auth\"") {
		t.Fatalf("the password went to config.json too: %s", b)
	}
	if _, err := cl.Pull(ctx, newStore(t), srv.Addr()+"/helper/app:1", PullOptions{}); err != nil {
		t.Fatalf("pull with the helper's credentials: %v", err)
	}
	if err := cl.Logout(srv.Addr()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(store); err == nil {
		t.Fatal("logout left the helper's credentials")
	}
}

func seedAuth(t *testing.T, addr, repo, user, pass string) {
	t.Helper()
	img, _ := random.Image(1024, 1)
	ref, _ := name.ParseReference(addr+"/"+repo, name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatal(err)
	}
}

// TestSlowRegistry: a registry that takes its time to answer (but
// answers) is waited for.
func TestSlowRegistry(t *testing.T) {
	srv := serve(t, server.Options{})
	seed(t, srv.Addr(), "slow/app:1", 2)
	u, _ := url.Parse("http://" + srv.Addr())
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, u.String()+r.URL.RequestURI(), r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		// The body trickles.
		buf := make([]byte, 16<<10)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				w.(http.Flusher).Flush()
				time.Sleep(5 * time.Millisecond)
			}
			if err != nil {
				return
			}
		}
	}))
	defer slow.Close()
	cl := client(t, Options{})
	if _, err := cl.Pull(context.Background(), newStore(t), strings.TrimPrefix(slow.URL, "http://")+"/slow/app:1", PullOptions{}); err != nil {
		t.Fatalf("pull from a slow registry: %v", err)
	}
}
