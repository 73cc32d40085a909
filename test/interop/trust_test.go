package interop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tu "github.com/berthproject/berth/internal/testutil"
)

// cimage builds the peer: upstream containers/image with sigstore (what
// podman and skopeo run, but Debian builds them without it), from the
// module proxy.
func cimage(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "cimage")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper containers_image_storage_stub", "-o", out, ".")
	cmd.Dir = filepath.Join(tu.ModuleRoot(t), "test", "interop", "cimage")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("the containers/image peer does not build here (it needs its modules from the proxy): %v\n%s", err, b)
	}
	return out
}

// TestSigstoreInterop: containers/image's copy, under a policy.json that
// requires a sigstore signature by berth's key (attachments on), accepts
// what berth signed and refuses unsigned, wrongly signed and re-pointed
// signatures; berth accepts what containers/image's signer made.
func TestSigstoreInterop(t *testing.T) {
	e := newEnv(t)
	for _, b := range []string{"berth-registry", "berth-monitor", "berth-init", "berth-runtime"} {
		tu.Binary(t, b)
	}
	peer := cimage(t)
	t.Setenv("BERTH_PASSWORD", "interop")
	t.Setenv("BERTH_SIGNATURE_POLICY", "")
	t.Setenv("BERTH_CUSTODY_POLICY", filepath.Join(e.dir, "custody.json"))
	accept := filepath.Join(e.dir, "accept.json")
	os.WriteFile(accept, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644)
	for _, k := range []string{"team", "mallory"} {
		e.berthRun(t, "key", "generate", filepath.Join(e.dir, k))
	}
	r := e.startBerthRegistry(t)
	e.busyboxImage(t, "localhost/bb:1")
	b := func(args ...string) string {
		return e.berthRun(t, append([]string{"--signature-policy", accept}, args...)...)
	}
	signed, unsigned, mallory := r.addr+"/trust/signed:1", r.addr+"/trust/unsigned:1", r.addr+"/trust/mallory:1"
	b("tag", "localhost/bb:1", signed)
	b("push", "-q", "--sign-by", filepath.Join(e.dir, "team.key"), signed)
	// Another image (a different layer), unsigned and mallory-signed.
	b("run", "--name", "c", signed, "sh", "-c", "echo other > /other")
	b("commit", "c", unsigned)
	b("push", "-q", unsigned)
	b("tag", unsigned, mallory)
	b("push", "-q", "--sign-by", filepath.Join(e.dir, "mallory.key"), mallory)

	policy := filepath.Join(e.dir, "policy.json")
	os.WriteFile(policy, []byte(fmt.Sprintf(`{"default":[{"type":"reject"}],"transports":{"docker":{"%s/trust":[{"type":"sigstoreSigned","keyPath":"%s","signedIdentity":{"type":"matchRepository"}}]}}}`,
		r.addr, filepath.Join(e.dir, "team.pub"))), 0o644)
	regd := filepath.Join(e.dir, "registries.d")
	os.MkdirAll(regd, 0o755)
	os.WriteFile(filepath.Join(regd, "default.yaml"), []byte("default-docker:\n  use-sigstore-attachments: true\n"), 0o644)
	copyTo := func(src string) (string, error) {
		cmd := exec.Command(peer, "copy", policy, regd, "docker://"+src, "oci:"+filepath.Join(e.dir, "out")+":x")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := copyTo(signed); err != nil {
		t.Fatalf("containers/image refuses berth's signature: %v\n%s", err, out)
	}
	for name, src := range map[string]string{"unsigned": unsigned, "signed by another key": mallory} {
		if out, err := copyTo(src); err == nil {
			t.Errorf("%s: containers/image accepted it\n%s", name, out)
		}
	}
	// berth's signature of one manifest put beside another: refused.
	sigDigest := func(ref string) string {
		return strings.TrimSpace(e.run(t, "skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+ref))
	}
	sd, ud := sigDigest(signed), sigDigest(unsigned)
	tag := func(d string) string { return strings.Replace(d, ":", "-", 1) + ".sig" }
	e.run(t, "skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
		"docker://"+r.addr+"/trust/signed:"+tag(sd), "docker://"+r.addr+"/trust/unsigned:"+tag(ud))
	if out, err := copyTo(unsigned); err == nil || !strings.Contains(out, "digest") {
		t.Errorf("a signature of another manifest: containers/image said %v\n%s", err, out)
	}

	// containers/image signs with berth's key file; berth verifies.
	byPeer := r.addr + "/trust/by-cimage:1"
	if out, err := exec.Command(peer, "sign", filepath.Join(e.dir, "team.key"), "interop", "docker://"+unsigned, "docker://"+byPeer).CombinedOutput(); err != nil {
		t.Fatalf("containers/image sign: %v\n%s", err, out)
	}
	strict := filepath.Join(e.dir, "strict.json")
	os.WriteFile(strict, []byte(fmt.Sprintf(`{"default":[{"type":"reject"}],"transports":{"docker":{"%s/trust":[{"type":"sigstoreSigned","keyPath":"%s"}]}}}`,
		r.addr, filepath.Join(e.dir, "team.pub"))), 0o644)
	other := []string{"--root", filepath.Join(e.dir, "berth2"), "--runroot", filepath.Join(e.dir, "berth2-run"), "--signature-policy", strict}
	e.run(t, e.berth, append(other, "pull", "-q", byPeer)...)
	if out := e.run(t, e.berth, append(other, "verify", "--key", filepath.Join(e.dir, "team.pub"), byPeer)...); !strings.Contains(out, "Verified OK") {
		t.Fatalf("berth verify: %s", out)
	}
	cmd := exec.Command(e.berth, append(other, "pull", "-q", unsigned)...)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "is for manifest") {
		t.Fatalf("berth pulled an image under another manifest's signature: %v\n%s", err, out)
	}
}
