package interop

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tu "github.com/berthproject/berth/internal/testutil"
	"golang.org/x/crypto/bcrypt"
)

// registryProc is a registry server the test started.
type registryProc struct {
	addr string // host:port
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startBerthRegistry runs `berth registry serve` with extra flags.
func (e *env) startBerthRegistry(t *testing.T, flags ...string) *registryProc {
	t.Helper()
	addr := freePort(t)
	args := e.berthArgs(append([]string{"registry", "serve", "--addr", addr, "--no-access-log", "--storage", filepath.Join(e.dir, "regstore-"+strings.ReplaceAll(addr, ":", "_"))}, flags...)...)
	return startServer(t, exec.Command(e.berth, args...), addr, len(flags) > 0 && strings.Contains(strings.Join(flags, " "), "--tls-cert"))
}

// startDockerRegistry runs Debian's docker-registry (distribution 2.8).
func (e *env) startDockerRegistry(t *testing.T) *registryProc {
	t.Helper()
	bin := requireTool(t, "docker-registry")
	addr := freePort(t)
	cfg := filepath.Join(e.dir, "docker-registry.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}\nhttp: {addr: %s}\n", filepath.Join(e.dir, "docker-registry"), addr)), 0o644)
	return startServer(t, exec.Command(bin, "serve", cfg), addr, false)
}

func startServer(t *testing.T, cmd *exec.Cmd, addr string, useTLS bool) *registryProc {
	t.Helper()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for i := 0; i < 100; i++ {
		if resp, err := c.Get(scheme + "://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return &registryProc{addr: addr}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("registry on %s did not start:\n%s", addr, log.String())
	return nil
}

// busyboxImage loads a busybox image into berth as name.
func (e *env) busyboxImage(t *testing.T, name string) {
	t.Helper()
	tu.RequireBusybox(t)
	root := t.TempDir()
	if err := tu.MakeBusyboxRootfs(root); err != nil {
		t.Fatal(err)
	}
	img := tu.BuildImage(t, tu.ImageOptions{Cmd: []string{"sh"}}, entriesOf(t, root))
	src := filepath.Join(e.dir, "bb.tar")
	if err := os.WriteFile(src, tu.OCIArchive(t, []*tu.TestImage{img}, []string{name}), 0o644); err != nil {
		t.Fatal(err)
	}
	e.berthRun(t, "load", "-i", src)
}

var podmanRun = []string{"run", "--rm", "--network", "none", "--pull", "never", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"}

// TestRegistryInterop: berth push is read by skopeo and podman, and what
// they push berth pulls and runs, through berth's registry server and
// Debian's docker-registry.
func TestRegistryInterop(t *testing.T) {
	e := newEnv(t)
	e.busyboxImage(t, "localhost/bb:1")
	for _, which := range []string{"berth registry serve", "docker-registry"} {
		t.Run(strings.ReplaceAll(which, " ", "-"), func(t *testing.T) {
			var r *registryProc
			if which == "docker-registry" {
				r = e.startDockerRegistry(t)
			} else {
				r = e.startBerthRegistry(t)
			}
			// berth → skopeo, podman.
			ref := r.addr + "/interop/from-berth:1"
			e.berthRun(t, "tag", "localhost/bb:1", ref)
			out := e.berthRun(t, "push", ref)
			dgst := pushedDigest(t, out)
			if got := strings.TrimSpace(e.run(t, "skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+ref)); got != dgst {
				t.Fatalf("skopeo sees %s, berth pushed %s", got, dgst)
			}
			e.run(t, "skopeo", "copy", "-q", "--src-tls-verify=false", "docker://"+ref, "oci:"+filepath.Join(e.dir, "skopeo-"+strings.ReplaceAll(which, " ", "-"))+":x")
			e.podman(t, "pull", "-q", "--tls-verify=false", ref)
			if got := e.podman(t, append(podmanRun, ref, "echo", "podman ran what berth pushed")...); got != "podman ran what berth pushed\n" {
				t.Fatalf("podman run: %q", got)
			}
			// podman and skopeo → berth.
			pref := r.addr + "/interop/from-podman:1"
			e.podman(t, "tag", ref, pref)
			e.podman(t, "push", "-q", "--tls-verify=false", pref)
			sref := r.addr + "/interop/from-skopeo:1"
			e.run(t, "skopeo", "copy", "-q", "--dest-tls-verify=false", "oci:"+filepath.Join(e.dir, "skopeo-"+strings.ReplaceAll(which, " ", "-"))+":x", "docker://"+sref)
			for _, in := range []string{pref, sref} {
				e.berthRun(t, "pull", "-q", in)
				if got := e.berthRun(t, "run", "--rm", in, "echo", "berth ran "+in); got != "berth ran "+in+"\n" {
					t.Fatalf("berth run %s: %q", in, got)
				}
			}
		})
	}
}

// TestRegistryAuthTLSInterop: a registry behind TLS (a CA made here) and
// basic auth; berth login's credentials (Docker's config.json) serve
// podman through --authfile.
func TestRegistryAuthTLSInterop(t *testing.T) {
	e := newEnv(t)
	e.busyboxImage(t, "localhost/bb:1")
	certPEM, keyPEM := makeCert(t)
	dir := e.dir
	os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600)
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw-of-carol"), bcrypt.MinCost)
	os.WriteFile(filepath.Join(dir, "htpasswd"), []byte("carol:"+string(hash)+"\n"), 0o600)
	r := e.startBerthRegistry(t, "--tls-cert", filepath.Join(dir, "cert.pem"), "--tls-key", filepath.Join(dir, "key.pem"), "--htpasswd", filepath.Join(dir, "htpasswd"))
	certs := filepath.Join(dir, "certs")
	os.MkdirAll(filepath.Join(certs, r.addr), 0o755)
	os.WriteFile(filepath.Join(certs, r.addr, "ca.crt"), certPEM, 0o644)
	authfile := filepath.Join(dir, "docker", "config.json")

	login := exec.Command(e.berth, e.berthArgs("login", "--authfile", authfile, "--cert-dir", certs, "-u", "carol", "--password-stdin", r.addr)...)
	login.Stdin = strings.NewReader("pw-of-carol\n")
	if out, err := login.CombinedOutput(); err != nil || !strings.Contains(string(out), "Login Succeeded") {
		t.Fatalf("berth login: %v\n%s", err, out)
	}
	ref := r.addr + "/secure/bb:1"
	e.berthRun(t, "tag", "localhost/bb:1", ref)
	e.berthRun(t, "push", "--authfile", authfile, "--cert-dir", certs, ref)
	// podman, with berth's credentials file and the CA.
	e.podman(t, "pull", "-q", "--authfile", authfile, "--cert-dir", filepath.Join(certs, r.addr), ref)
	pref := r.addr + "/secure/from-podman:1"
	e.podman(t, "tag", ref, pref)
	e.podman(t, "push", "-q", "--authfile", authfile, "--cert-dir", filepath.Join(certs, r.addr), pref)
	e.berthRun(t, "pull", "-q", "--authfile", authfile, "--cert-dir", certs, pref)
	// Without credentials, podman is refused: the registry does check.
	cmd := exec.Command("podman", e.podmanArgs("pull", "-q", "--authfile", filepath.Join(dir, "none.json"), "--cert-dir", filepath.Join(certs, r.addr), pref)...)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("podman pulled without credentials:\n%s", out)
	}
}

func pushedDigest(t *testing.T, out string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, "digest: "); i >= 0 {
			return strings.Fields(l[i+len("digest: "):])[0]
		}
	}
	t.Fatalf("berth push printed no digest:\n%s", out)
	return ""
}

func makeCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "berth interop"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}
