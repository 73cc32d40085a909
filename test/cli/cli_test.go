// Package cli holds berth's command-line tests: testscript files in
// testdata/, numbered by area as podman's system tests are, each driving
// the real bin/berth with its own state directory.
package cli

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/archive"
	tu "github.com/berthproject/berth/internal/testutil"
	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/crypto/bcrypt"
)

// Layer sets scripts build archives from (mkarchive).
var layerSets = map[string][]tu.Entry{
	"base": {tu.Dir("etc"), tu.File("etc/os-release", "ID=berth\n"), tu.Dir("bin"), tu.File("bin/sh", "#!shell"), tu.Symlink("bin/ash", "sh")},
	"app":  {tu.Dir("app"), tu.File("app/main", "app v1"), tu.File("etc/.wh.os-release", "")},
	"app2": {tu.Dir("app"), tu.File("app/main", "app v2")},
	"big":  {tu.Dir("data"), tu.File("data/blob", strings.Repeat("0123456789abcdef", 1<<16))},
	// Hostile: escapes by name and through a symlink; unpack must refuse
	// or keep them inside.
	"escape-dotdot":  {tu.File("../../../../tmp/berth-escaped", "pwned")},
	"escape-symlink": {tu.Symlink("evil", "/tmp"), tu.File("evil/berth-escaped-link", "pwned")},
	"bad-whiteout":   {tu.File(".wh...", "")},
}

// topT is the test running the scripts: the helpers below take a
// testing.TB, and get one that fails the script instead.
var topT testing.TB

type scriptTB struct {
	testing.TB
	ts *testscript.TestScript
}

func (s scriptTB) Helper()                           {}
func (s scriptTB) Fatal(args ...any)                 { s.ts.Fatalf("%s", fmt.Sprint(args...)) }
func (s scriptTB) Fatalf(format string, args ...any) { s.ts.Fatalf(format, args...) }

func tb(ts *testscript.TestScript) testing.TB { return scriptTB{TB: topT, ts: ts} }

// TestCLI runs the image (0xx) and registry (2xx) scripts once and the
// container scripts (1xx) with each runtime berth supports: its own, runc
// and crun.
func TestCLI(t *testing.T) {
	topT = t
	all, _ := filepath.Glob("testdata/*.txtar")
	var images, containers []string
	for _, f := range all {
		if strings.HasPrefix(filepath.Base(f), "1") {
			containers = append(containers, f)
		} else {
			images = append(images, f)
		}
	}
	t.Run("images", func(t *testing.T) { runScripts(t, images, "") })
	wd, _ := os.Getwd()
	for _, rt := range []struct{ name, runtime, bin string }{
		{"berth-runtime", "berth-runtime", ""},
		{"runc", "runc", "runc"},
		{"crun", filepath.Join(wd, "crun-hybrid"), "crun"},
	} {
		t.Run(rt.name, func(t *testing.T) {
			if rt.bin != "" {
				if _, err := exec.LookPath(rt.bin); err != nil {
					t.Skipf("needs %s from Debian (make test installs it)", rt.bin)
				}
			}
			runScripts(t, containers, rt.runtime)
		})
	}
}

func runScripts(t *testing.T, files []string, runtime string) {
	berth := tu.Binary(t, "berth")
	for _, b := range []string{"berth-monitor", "berth-init", "berth-runtime", "berth-registry"} {
		tu.Binary(t, b)
	}
	testscript.Run(t, testscript.Params{
		Files:               files,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			if runtime != "" {
				env.Setenv("BERTH_RUNTIME", runtime)
			}
			env.Setenv("PATH", filepath.Dir(berth)+string(os.PathListSeparator)+os.Getenv("PATH"))
			env.Setenv("BERTH_ROOT", filepath.Join(env.WorkDir, "root"))
			env.Setenv("BERTH_RUNROOT", filepath.Join(env.WorkDir, "run"))
			env.Setenv("BUSYBOX", tu.BusyboxPath)
			// Credentials and registry settings of the script's own.
			env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
			env.Setenv("DOCKER_CONFIG", filepath.Join(env.WorkDir, "home", ".docker"))
			env.Setenv("XDG_RUNTIME_DIR", filepath.Join(env.WorkDir, "xdg"))
			env.Setenv("REGISTRY_AUTH_FILE", "")
			// The trust policy of the script's own, not the host's.
			accept := filepath.Join(env.WorkDir, "home", "accept-policy.json")
			os.MkdirAll(filepath.Dir(accept), 0o755)
			if err := os.WriteFile(accept, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
				return err
			}
			env.Setenv("BERTH_SIGNATURE_POLICY", accept)
			env.Setenv("BERTH_CUSTODY_POLICY", filepath.Join(env.WorkDir, "home", "custody.json"))
			work := env.WorkDir
			env.Defer(func() {
				// Leave no mount behind, whatever the script did.
				cmd := exec.Command(berth, "--root", filepath.Join(work, "root"), "--runroot", filepath.Join(work, "run"), "image", "unmount", "--all")
				cmd.Run()
			})
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "root":
				return os.Geteuid() == 0, nil
			case "busybox":
				_, err := os.Stat(tu.BusyboxPath)
				return err == nil, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"mkarchive":   mkarchive,
			"mkrootfs":    mkrootfs,
			"treeeq":      treeeq,
			"corrupt":     corrupt,
			"gzip":        gzipFile,
			"capture":     capture,
			"mkbad":       mkbad,
			"mkbusybox":   mkbusybox,
			"noleaks":     noleaks,
			"freeport":    freeport,
			"waithttp":    waithttp,
			"htpasswd":    htpasswd,
			"mkcert":      mkcert,
			"badregistry": badregistry,
			"tamper":      tamper,
		},
	})
}

// mkarchive oci|docker FILE NAME LAYERSET... [label=K=V] [cmd=ARG]
// writes an image made of the named layer sets; NAME "-" for none.
func mkarchive(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 {
		ts.Fatalf("usage: mkarchive oci|docker FILE NAME LAYERSET...")
	}
	var layers [][]tu.Entry
	var o tu.ImageOptions
	for _, a := range args[3:] {
		if k, v, ok := strings.Cut(a, "="); ok {
			switch k {
			case "label":
				lk, lv, _ := strings.Cut(v, "=")
				if o.Labels == nil {
					o.Labels = map[string]string{}
				}
				o.Labels[lk] = lv
			case "cmd":
				o.Cmd = append(o.Cmd, v)
			case "env":
				o.Env = append(o.Env, v)
			case "created":
				c, err := time.Parse(time.RFC3339, v)
				ts.Check(err)
				o.Created = c
			default:
				ts.Fatalf("mkarchive: unknown option %s", k)
			}
			continue
		}
		set, ok := layerSets[a]
		if !ok {
			ts.Fatalf("mkarchive: unknown layer set %q", a)
		}
		layers = append(layers, set)
	}
	img := tu.BuildImage(tb(ts), o, layers...)
	name := args[2]
	var data []byte
	switch args[0] {
	case "oci":
		n := ""
		if name != "-" {
			n = name
		}
		data = tu.OCIArchive(tb(ts), []*tu.TestImage{img}, []string{n})
	case "docker":
		var tags [][]string
		if name != "-" {
			tags = [][]string{{name}}
		}
		data = tu.DockerArchive(tb(ts), []*tu.TestImage{img}, tags)
	default:
		ts.Fatalf("mkarchive: format %q: oci or docker", args[0])
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), data, 0o644))
}

// mkrootfs DIR fills DIR with a busybox root file system.
func mkrootfs(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: mkrootfs DIR")
	}
	ts.Check(tu.MakeBusyboxRootfs(ts.MkAbs(args[0])))
}

// treeeq DIR1 DIR2: the two trees hold the same entries with the same
// types, modes, owners, contents, link targets and xattrs.
func treeeq(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: treeeq DIR1 DIR2")
	}
	d := tu.DiffTrees(tu.TreeOf(tb(ts), ts.MkAbs(args[0]), tu.TreeOptions{}), tu.TreeOf(tb(ts), ts.MkAbs(args[1]), tu.TreeOptions{}))
	if neg && len(d) == 0 {
		ts.Fatalf("trees are equal")
	}
	if !neg && len(d) > 0 {
		ts.Fatalf("trees differ:\n%s", strings.Join(d, "\n"))
	}
}

// corrupt FILE|DIGEST flips the first byte of a file, or of the blob
// with that digest in $BERTH_ROOT's content store, in place.
func corrupt(ts *testscript.TestScript, neg bool, args []string) {
	p := ts.MkAbs(args[0])
	if alg, hex, ok := strings.Cut(args[0], ":"); ok {
		p = filepath.Join(ts.Getenv("BERTH_ROOT"), "content", "blobs", alg, hex)
	}
	b, err := os.ReadFile(p)
	ts.Check(err)
	b[0] ^= 0xff
	os.Chmod(p, 0o644)
	ts.Check(os.WriteFile(p, b, 0o444))
}

// gzip FILE OUT compresses FILE into OUT.
func gzipFile(ts *testscript.TestScript, neg bool, args []string) {
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	var buf bytes.Buffer
	w, err := archive.CompressStream(&buf, archive.Gzip)
	ts.Check(err)
	w.Write(b)
	ts.Check(w.Close())
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), buf.Bytes(), 0o644))
}

// capture VAR sets VAR to the last command's stdout, trimmed.
func capture(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: capture VAR")
	}
	ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile("stdout")))
}

// mkbad DIR writes one archive of each kind a load must refuse into DIR,
// named after its kind ("wrong digest" is DIR/wrong-digest.tar).
func mkbad(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: mkbad DIR")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o755))
	for kind, b := range tu.BadArchives(tb(ts)) {
		ts.Check(os.WriteFile(filepath.Join(dir, strings.ReplaceAll(kind, " ", "-")+".tar"), b, 0o644))
	}
}

// mkbusybox FILE writes docker.io/library/busybox:latest, a whole busybox
// root file system in one layer (CMD sh), as a docker-archive.
func mkbusybox(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: mkbusybox FILE")
	}
	dir, err := os.MkdirTemp("", "berth-busybox-")
	ts.Check(err)
	defer os.RemoveAll(dir)
	ts.Check(tu.MakeBusyboxRootfs(dir))
	var entries []tu.Entry
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case fi.IsDir():
			entries = append(entries, tu.Entry{Name: rel + "/", Type: '5', Mode: int64(fi.Mode().Perm()) | stickyBit(fi)})
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			entries = append(entries, tu.Symlink(rel, l))
		default:
			b, _ := os.ReadFile(p)
			entries = append(entries, tu.Entry{Name: rel, Body: string(b), Mode: int64(fi.Mode().Perm())})
		}
		return nil
	})
	img := tu.BuildImage(tb(ts), tu.ImageOptions{Cmd: []string{"sh"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}, entries)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), tu.DockerArchive(tb(ts), []*tu.TestImage{img}, [][]string{{"busybox:latest"}}), 0o644))
}

func stickyBit(fi os.FileInfo) int64 {
	if fi.Mode()&os.ModeSticky != 0 {
		return 0o1000
	}
	return 0
}

// noleaks ID: nothing of the container is left: no record, no run
// directory, no snapshot, no mount and no cgroup.
func noleaks(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || len(args[0]) != 64 {
		ts.Fatalf("usage: noleaks CONTAINER_ID (the full ID)")
	}
	id := args[0]
	var left []string
	for _, p := range []string{
		filepath.Join(ts.Getenv("BERTH_ROOT"), "containers", id),
		filepath.Join(ts.Getenv("BERTH_RUNROOT"), "containers", id),
	} {
		if _, err := os.Stat(p); err == nil {
			left = append(left, p)
		}
	}
	infos, _ := filepath.Glob(filepath.Join(ts.Getenv("BERTH_ROOT"), "snapshot", "*", "snapshots", "*", "info.json"))
	for _, f := range infos {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), id) {
			left = append(left, "snapshot "+f)
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, id) {
				left = append(left, "mount "+l)
			}
		}
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/berth/" + id)
	cgs2, _ := filepath.Glob("/sys/fs/cgroup/berth/" + id)
	for _, c := range append(cgs, cgs2...) {
		left = append(left, "cgroup "+c)
	}
	if neg {
		if len(left) == 0 {
			ts.Fatalf("nothing of %s is left", id[:12])
		}
		return
	}
	if len(left) > 0 {
		ts.Fatalf("container %s left:\n%s", id[:12], strings.Join(left, "\n"))
	}
}

// freeport VAR sets VAR to a TCP port free on 127.0.0.1 (other work on
// this machine may hold 5000).
func freeport(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: freeport VAR")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	ts.Setenv(args[0], strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	l.Close()
}

// waithttp URL waits (10 s at most) until URL answers, whatever the status.
func waithttp(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waithttp URL")
	}
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(args[0]); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	ts.Fatalf("%s did not answer in 10s", args[0])
}

// htpasswd FILE USER PASSWORD writes a bcrypt htpasswd file.
func htpasswd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: htpasswd FILE USER PASSWORD")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(args[2]), bcrypt.MinCost)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(args[1]+":"+string(h)+"\n"), 0o600))
}

// mkcert DIR writes a self-signed certificate for 127.0.0.1 and localhost
// (DIR/cert.pem, which is also its CA) and its key (DIR/key.pem).
func mkcert(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: mkcert DIR")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o755))
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ts.Check(err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "berth test registry"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	ts.Check(err)
	kb, err := x509.MarshalECPrivateKey(k)
	ts.Check(err)
	ts.Check(os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	ts.Check(os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
}

// badregistry VAR starts, in the test process, a registry that misbehaves
// in every way a pull must survive, and sets VAR to its host:port:
// /big (a 5 MiB manifest), /html (an HTML page), /odd (an unknown media
// type), /lie (a manifest that is not the digest asked for), /s1 (schema 1).
func badregistry(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: badregistry VAR")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	mux := http.NewServeMux()
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == "/v2/":
			w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
			w.Write([]byte("{}"))
		case strings.HasPrefix(p, "/v2/x/big/manifests/"):
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Write([]byte(`{"schemaVersion":2,"annotations":{"a":"` + strings.Repeat("x", 5<<20) + `"}}`))
		case strings.HasPrefix(p, "/v2/x/html/manifests/"):
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html><body>Sign in</body></html>"))
		case strings.HasPrefix(p, "/v2/x/odd/manifests/"):
			w.Header().Set("Content-Type", "application/vnd.example.thing")
			w.Write([]byte("{}"))
		case strings.HasPrefix(p, "/v2/x/s1/manifests/"):
			w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws")
			w.Write([]byte(`{"schemaVersion":1}`))
		case strings.HasPrefix(p, "/v2/x/lie/manifests/"):
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Write([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`))
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`))
		}
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	ts.Defer(func() { srv.Close() })
	ts.Setenv(args[0], l.Addr().String())
}

// tamper ROOT DIGEST payload|version alters every custody record the
// store at ROOT has attached to manifest DIGEST: payload changes a
// layer's created_by under the signature, version makes the predicate
// version 2.
func tamper(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: tamper ROOT DIGEST payload|version")
	}
	path := filepath.Join(ts.MkAbs(args[0]), "trust", "attached", "sha256", strings.TrimPrefix(args[1], "sha256:")+".json")
	args = args[1:]
	b, err := os.ReadFile(path)
	ts.Check(err)
	var att struct {
		Signatures json.RawMessage `json:"signatures,omitempty"`
		Records    [][]byte        `json:"records"`
	}
	ts.Check(json.Unmarshal(b, &att))
	if len(att.Records) == 0 {
		ts.Fatalf("%s holds no custody record", path)
	}
	for i, r := range att.Records {
		var env map[string]any
		ts.Check(json.Unmarshal(r, &env))
		body, err := base64.StdEncoding.DecodeString(env["payload"].(string))
		ts.Check(err)
		var st map[string]any
		ts.Check(json.Unmarshal(body, &st))
		pred := st["predicate"].(map[string]any)
		switch args[1] {
		case "payload":
			layers := pred["layers"].([]any)
			layers[0].(map[string]any)["createdBy"] = "sh -c 'something else'"
		case "version":
			pred["version"] = 2
		default:
			ts.Fatalf("tamper: %q: payload or version", args[1])
		}
		body, _ = json.Marshal(st)
		env["payload"] = base64.StdEncoding.EncodeToString(body)
		att.Records[i], _ = json.Marshal(env)
	}
	out, _ := json.Marshal(att)
	ts.Check(os.WriteFile(path, out, 0o600))
}
