// Package buildtest builds a corpus of Dockerfiles with berth build and
// checks each result: the files, config fields and history lines its
// want.txt states, and, built the same way with podman build, the same
// file tree and the same Env, Cmd, Entrypoint, WorkingDir, User,
// ExposedPorts, Volumes, Labels, StopSignal, Healthcheck (and OnBuild,
// Shell).
//
// Each case is a directory testdata/corpus/NN-name: its Dockerfile, the
// build context (the directory itself), and want.txt, one assertion a
// line (see parseWant). Cases that want an error are built by berth only,
// with a tag that already names an image: a failed build must leave it.
//
// There is no network: the base image is busybox-static made into a root
// file system here, imported under the same name into berth and into a
// podman storage of the test's own (never the machine's).
package buildtest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	tu "github.com/berthproject/berth/internal/testutil"
)

// baseRef names the base image in both tools. A name with a registry
// host: a bare name would normalise differently (berth and podman both
// say docker.io/library/..., but podman also searches other registries).
const baseRef = "localhost/bb:test"

// noPathRef is the base image with an empty config.
const noPathRef = "localhost/bb-nopath:test"

// keepDockerfile is the good build whose tag every error case reuses.
const keepDockerfile = "FROM " + baseRef + "\nRUN echo kept > /kept\nLABEL keep=1\n"

// podmanBuildFlags make podman build comparable and runnable here:
// docker format (OCI configs have no Healthcheck, OnBuild or Shell, and
// buildah drops them with a warning), no pulls, no network, runc (crun
// refuses this machine's hybrid cgroups) and the rlimits this machine
// allows (see /work/shared/MACHINE.md).
var podmanBuildFlags = []string{
	"--format", "docker", "--pull=never", "--network", "none", "--runtime", "runc",
	"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
	"--isolation", "oci", "--layers",
}

// comparedFields are the config fields berth and podman must agree on.
var comparedFields = []string{"Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts",
	"Volumes", "Labels", "StopSignal", "Healthcheck", "OnBuild", "Shell"}

// suite is the test's berth store and podman storage.
type suite struct {
	berth   string
	root    string // berth --root
	runroot string
	pod     string // podman's storage, its runroot and tmpdir under it
	tmp     string
	keepID  string
}

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("build corpus: needs %s (make test-deps installs it): %v", name, err)
	}
}

func TestCorpus(t *testing.T) {
	tu.RequireRoot(t)
	tu.RequireBusybox(t)
	for _, tool := range []string{"podman", "skopeo", "runc"} {
		requireTool(t, tool)
	}
	start := time.Now()
	s := newSuite(t)
	cases, err := filepath.Glob(filepath.Join("testdata", "corpus", "*", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(cases)
	good := 0
	for _, df := range cases {
		w, err := parseWant(filepath.Join(filepath.Dir(df), "want.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if len(w.errors) == 0 {
			good++
		}
	}
	if good < 30 {
		t.Errorf("the corpus has %d good Dockerfiles; the issue asks for at least 30", good)
	}
	t.Run("case", func(t *testing.T) {
		for _, df := range cases {
			dir := filepath.Dir(df)
			t.Run(filepath.Base(dir), func(t *testing.T) {
				t.Parallel()
				s.runCase(t, dir)
			})
		}
	})
	t.Logf("%d cases (%d good) in %s", len(cases), good, time.Since(start).Round(time.Millisecond))
}

func newSuite(t *testing.T) *suite {
	t.Helper()
	for _, b := range []string{"berth-monitor", "berth-init", "berth-runtime"} {
		tu.Binary(t, b)
	}
	dir := t.TempDir()
	// Containers running as other users (USER app) must reach the store.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// podman refuses a runroot longer than 50 characters.
	pod, err := os.MkdirTemp("/tmp", "bbpod")
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{berth: tu.Binary(t, "berth"), root: filepath.Join(dir, "berth"), runroot: filepath.Join(dir, "berth-run"),
		pod: pod, tmp: dir}
	t.Cleanup(func() {
		exec.Command("podman", s.podmanArgs("system", "reset", "-f")...).Run()
		exec.Command("umount", "-R", pod).Run()
		os.RemoveAll(pod)
		exec.Command(s.berth, s.berthArgs("image", "unmount", "--all")...).Run()
	})

	rootfs := filepath.Join(dir, "rootfs")
	tu.BusyboxRootfs(t, rootfs)
	// An image user to --chown to by name, and a sticky /tmp (os.Chmod
	// takes 0o1777 as 0o777: the sticky bit is os.ModeSticky).
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(rootfs, "tmp"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "busybox.tar")
	s.run(t, "tar", "-C", rootfs, "--numeric-owner", "--owner=0", "--group=0", "-cf", base, ".")
	changes := []string{"-c", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin", "-c", `CMD ["sh"]`}
	s.run(t, s.berth, s.berthArgs(append(append([]string{"import"}, changes...), base, baseRef)...)...)
	s.run(t, "podman", s.podmanArgs(append(append([]string{"import", "-q"}, changes...), base, baseRef)...)...)
	// The same without PATH or CMD: BuildKit gives such a base a PATH.
	s.run(t, s.berth, s.berthArgs("import", base, noPathRef)...)
	s.run(t, "podman", s.podmanArgs("import", "-q", base, noPathRef)...)

	kd := filepath.Join(dir, "keep")
	if err := os.MkdirAll(kd, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kd, "Dockerfile"), []byte(keepDockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	s.run(t, s.berth, s.berthArgs("build", "-q", "--pull=never", "-t", "localhost/keep:1", kd)...)
	s.keepID = s.imageID(t, "localhost/keep:1")
	return s
}

func (s *suite) berthArgs(args ...string) []string {
	return append([]string{"--root", s.root, "--runroot", s.runroot}, args...)
}

func (s *suite) podmanArgs(args ...string) []string {
	return append([]string{
		"--root", filepath.Join(s.pod, "root"), "--runroot", filepath.Join(s.pod, "run"),
		"--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--runtime", "runc",
		"--events-backend", "none", "--tmpdir", filepath.Join(s.pod, "tmp"),
	}, args...)
}

// storage is podman's store as a containers-storage transport prefix.
func (s *suite) storage() string {
	return "containers-storage:[overlay@" + filepath.Join(s.pod, "root") + "+" + filepath.Join(s.pod, "run") + "]"
}

// exec runs a command with a timeout and returns its combined output and
// error.
func (s *suite) exec(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (s *suite) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := s.exec(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func (s *suite) berthRun(t *testing.T, args ...string) string {
	t.Helper()
	return s.run(t, s.berth, s.berthArgs(args...)...)
}

func (s *suite) podman(t *testing.T, args ...string) string {
	t.Helper()
	return s.run(t, "podman", s.podmanArgs(args...)...)
}

func (s *suite) imageID(t *testing.T, ref string) string {
	t.Helper()
	return strings.TrimSpace(s.berthRun(t, "inspect", "--type", "image", "--format", "{{.Id}}", ref))
}

// want is a case's want.txt.
type want struct {
	flags   []string    // build flags for both tools
	secrets [][2]string // id, value
	pre     [][2]string // subdir, tag: built first, in both tools
	checks  []check
	errors  []string
	skip    string            // why podman is not compared
	ignore  map[string]string // path or config field → why podman's differs
}

type check struct {
	line int
	kind string
	args []string
}

// parseWant reads want.txt: one assertion a line, # comments.
//
//	flag ARG...                  a flag for both builds (--build-arg K=V, --target S, --label K=V)
//	secret ID VALUE              --secret id=ID for both builds, VALUE in a file outside the
//	                             context; VALUE must then be in no layer, file, config or history
//	pre SUBDIR TAG               build SUBDIR of the case (its own context) as TAG first, in both
//	file PATH MODE UID:GID [C]   a regular file (MODE octal, with 4000/2000/1000 bits) whose
//	                             content is C (\n, \t, \\ escapes), if C is given
//	contains PATH TEXT           a regular file whose content contains TEXT (escapes as above)
//	dir PATH MODE UID:GID        a directory
//	symlink PATH TARGET          a symbolic link
//	absent PATH                  no such entry
//	config[@REF] FIELD JSON      .Config.FIELD of the image (or of REF) is JSON (null for none)
//	history N TEXT               the Nth history entry, newest first from 1, has TEXT (escapes
//	                             as above) in created_by
//	history-count N              the image has N history entries
//	error TEXT                   berth build fails saying TEXT (the case is berth only)
//	podman skip REASON           podman is not compared, for REASON
//	podman ignore WHAT REASON    WHAT (/path, /dir/ with all below it, or a config field) is not
//	                             compared with podman:
//	                             podman deviates from Docker there, for REASON (the case's
//	                             other lines say what berth must give)
//
// A PATH may spell a space \s.
// ${GOARCH} in a line is the machine's architecture.
func parseWant(p string) (*want, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	w := &want{ignore: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.ReplaceAll(line, "${GOARCH}", runtime.GOARCH)
		kind, rest, _ := strings.Cut(line, " ")
		bad := func() (*want, error) { return nil, fmt.Errorf("%s:%d: bad line %q", p, n, line) }
		switch kind {
		case "flag":
			w.flags = append(w.flags, strings.Fields(rest)...)
		case "secret":
			id, v, ok := strings.Cut(rest, " ")
			if !ok {
				return bad()
			}
			w.secrets = append(w.secrets, [2]string{id, v})
		case "pre":
			f := strings.Fields(rest)
			if len(f) != 2 {
				return bad()
			}
			w.pre = append(w.pre, [2]string{f[0], f[1]})
		case "error":
			w.errors = append(w.errors, rest)
		case "podman":
			if r, ok := strings.CutPrefix(rest, "skip "); ok {
				w.skip = r
				break
			}
			f := strings.SplitN(strings.TrimPrefix(rest, "ignore "), " ", 2)
			if !strings.HasPrefix(rest, "ignore ") || len(f) != 2 {
				return bad()
			}
			if strings.HasPrefix(f[0], "/") {
				dir := strings.HasSuffix(f[0], "/")
				f[0] = strings.TrimPrefix(path.Clean(unescape(f[0])), "/")
				if dir {
					f[0] += "/"
				}
			}
			w.ignore[f[0]] = f[1]
		case "file", "contains", "dir", "symlink", "absent", "history", "history-count":
			c := check{line: n, kind: kind}
			max := map[string]int{"file": 4, "contains": 2, "dir": 3, "symlink": 2, "absent": 1, "history": 2, "history-count": 1}[kind]
			c.args = strings.SplitN(rest, " ", max)
			min := map[string]int{"file": 3}[kind]
			if min == 0 {
				min = max
			}
			if len(c.args) < min {
				return bad()
			}
			w.checks = append(w.checks, c)
		default:
			if kind != "config" && !strings.HasPrefix(kind, "config@") {
				return bad()
			}
			f, j, ok := strings.Cut(rest, " ")
			if !ok || !json.Valid([]byte(j)) {
				return bad()
			}
			w.checks = append(w.checks, check{line: n, kind: kind, args: []string{f, j}})
		}
	}
	return w, sc.Err()
}

func unescape(s string) string {
	return strings.NewReplacer(`\n`, "\n", `\t`, "\t", `\s`, " ", `\\`, `\`).Replace(s)
}

// tagOf is a case's image name, the same in both tools.
func tagOf(dir string) string {
	return "localhost/corpus-" + strings.ToLower(filepath.Base(dir)) + ":1"
}

func (s *suite) runCase(t *testing.T, dir string) {
	w, err := parseWant(filepath.Join(dir, "want.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var secretFlags []string
	for _, sec := range w.secrets {
		f := filepath.Join(t.TempDir(), sec[0])
		if err := os.WriteFile(f, []byte(sec[1]), 0o600); err != nil {
			t.Fatal(err)
		}
		secretFlags = append(secretFlags, "--secret", "id="+sec[0]+",src="+f)
	}
	tag := tagOf(dir)
	dir = copyContext(t, dir)
	if len(w.errors) > 0 {
		s.errorCase(t, dir, w, secretFlags)
		return
	}
	podman := w.skip == ""
	for _, p := range w.pre {
		s.berthRun(t, "build", "-q", "--pull=never", "-t", p[1], filepath.Join(dir, p[0]))
		if podman {
			s.podman(t, append(append([]string{"build", "-q"}, podmanBuildFlags...), "-t", p[1], filepath.Join(dir, p[0]))...)
		}
	}
	args := append(append(append([]string{"build", "--progress=plain", "--pull=never", "-t", tag}, w.flags...), secretFlags...), dir)
	out, err := s.exec(s.berth, s.berthArgs(args...)...)
	if err != nil {
		t.Fatalf("berth build: %v\n%s", err, out)
	}
	bTree, bTar := s.berthTree(t, tag)
	bCfg := s.berthConfig(t, tag)
	s.checkWant(t, w, tag, bTree, bCfg)
	for _, sec := range w.secrets {
		s.checkSecretGone(t, tag, sec[1], bTar)
	}
	if !podman {
		t.Logf("podman not compared: %s", w.skip)
		return
	}

	pargs := append(append(append(append([]string{"build", "-q"}, podmanBuildFlags...), "-t", tag), w.flags...), secretFlags...)
	s.podman(t, append(pargs, dir)...)
	pTree := s.podmanTree(t, tag)
	pCfg := s.podmanConfig(t, tag)
	for p, why := range w.ignore {
		if comparedField(p) {
			continue
		}
		t.Logf("/%s not compared with podman: %s", p, why)
		for _, tree := range []map[string]node{pTree, bTree} {
			for k := range tree {
				if k == p || k == strings.TrimSuffix(p, "/") || (strings.HasSuffix(p, "/") && strings.HasPrefix(k, p)) {
					delete(tree, k)
				}
			}
		}
	}
	if d := diffTrees(pTree, bTree); len(d) > 0 {
		t.Errorf("file trees differ (- podman, + berth):\n%s", strings.Join(d, "\n"))
	}
	for _, f := range comparedFields {
		if why, ok := w.ignore[f]; ok {
			t.Logf("Config.%s not compared with podman: %s", f, why)
			continue
		}
		pv, bv := normField(f, pCfg[f]), normField(f, bCfg[f])
		if f == "Env" {
			// buildah moves a variable set again to the end of Env;
			// BuildKit replaces it in place. Without duplicates the order
			// means nothing; want.txt's config Env lines check berth's.
			pv, bv = sorted(pv), sorted(bv)
		}
		if !reflect.DeepEqual(pv, bv) {
			t.Errorf("Config.%s: podman %s, berth %s", f, jsonOf(pv), jsonOf(bv))
		}
	}
}

// errorCase builds a bad Dockerfile with berth, tagged as the keep image:
// the build must fail saying every error line, and leave the tag alone.
func (s *suite) errorCase(t *testing.T, dir string, w *want, secretFlags []string) {
	// A tag of the case's own, so that a build that wrongly succeeds
	// cannot move another case's; it names the keep image (a cached
	// rebuild of keepDockerfile gives the same ID).
	keep := strings.Replace(tagOf(dir), "/corpus-", "/keep-", 1)
	s.berthRun(t, "tag", "localhost/keep:1", keep)
	args := append(append(append([]string{"build", "--progress=plain", "--pull=never", "-t", keep}, w.flags...), secretFlags...), dir)
	out, err := s.exec(s.berth, s.berthArgs(args...)...)
	if err == nil {
		t.Errorf("berth build succeeded; want an error saying %q\n%s", w.errors, out)
	}
	for _, e := range w.errors {
		if !strings.Contains(out, e) {
			t.Errorf("berth build's output lacks %q:\n%s", e, out)
		}
	}
	if id := s.imageID(t, keep); id != s.keepID {
		t.Errorf("after the failed build %s names %s; want %s (still the image it named)", keep, id, s.keepID)
	}
}

// copyContext copies a case to a temporary directory with the modes a
// checkout may not give (files 0644, or 0755 when executable; directories
// 0755: a umask of 002 would otherwise change every COPY's result), next
// to a file outside.txt that is outside its context.
func copyContext(t *testing.T, src string) string {
	t.Helper()
	parent := t.TempDir()
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "outside.txt"), []byte("outside the context: never to be copied\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(parent, filepath.Base(src))
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case fi.IsDir():
			if err := os.Mkdir(to, 0o755); err != nil {
				return err
			}
			return os.Chmod(to, 0o755)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if fi.Mode()&0o100 != 0 {
				mode = 0o755
			}
			if err := os.WriteFile(to, b, mode); err != nil {
				return err
			}
			return os.Chmod(to, mode)
		default:
			return fmt.Errorf("%s: the corpus holds only files and directories", p)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// node is one entry of an exported file tree: what a build must get
// right. Not mtimes (builds stamp their own), not xattrs (none of the
// corpus sets any, and podman export writes none).
type node struct {
	Type     string
	Mode     int64
	UID, GID int
	Size     int64
	SHA256   string
	Target   string
	body     []byte
}

func (n node) String() string {
	s := fmt.Sprintf("%s %04o %d:%d", n.Type, n.Mode, n.UID, n.GID)
	switch n.Type {
	case "file":
		s += fmt.Sprintf(" size=%d sha256=%.12s", n.Size, n.SHA256)
		if n.Size <= 64 {
			s += fmt.Sprintf(" %q", n.body)
		}
	case "symlink":
		s += " -> " + n.Target
	}
	return s
}

// treeOfTar reads an export: path (relative, no leading ./ or /) to node.
// A hard link is recorded as the file it links to: which of two names a
// tool writes as the link is its own choice.
func treeOfTar(t *testing.T, r io.Reader) map[string]node {
	t.Helper()
	tree := map[string]node{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read export: %v", err)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if name == "" {
			continue
		}
		n := node{Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			n.Type, n.Size, n.SHA256, n.body = "file", int64(len(b)), hex.EncodeToString(sum[:]), b
		case tar.TypeLink:
			target := strings.TrimPrefix(path.Clean("/"+h.Linkname), "/")
			tn, ok := tree[target]
			if !ok {
				t.Fatalf("export: hard link %s to %s, which came before it", name, h.Linkname)
			}
			n = tn
		case tar.TypeDir:
			n.Type = "dir"
		case tar.TypeSymlink:
			n.Type, n.Target, n.Mode = "symlink", h.Linkname, 0
		case tar.TypeChar:
			n.Type = fmt.Sprintf("char %d,%d", h.Devmajor, h.Devminor)
		case tar.TypeBlock:
			n.Type = fmt.Sprintf("block %d,%d", h.Devmajor, h.Devminor)
		case tar.TypeFifo:
			n.Type = "fifo"
		default:
			n.Type = fmt.Sprintf("type %c", h.Typeflag)
		}
		tree[name] = n
	}
	return tree
}

// runtimeMade are the paths a container runtime, not the build, puts in
// a root file system; the tree comparison skips them (and below them).
var runtimeMade = []string{
	// Bind-mounted by the runtime into every RUN; the base image holds
	// placeholders, which a runtime may rewrite.
	"etc/hosts", "etc/hostname", "etc/resolv.conf",
	// podman writes it into every container it runs.
	"run/.containerenv",
	// Kernel file systems and the runtime's /dev: only their mount point
	// directories (kept, in the base image) belong to the image.
	"proc/", "sys/", "dev/",
}

func ignored(p string) bool {
	for _, r := range runtimeMade {
		if p == r || (strings.HasSuffix(r, "/") && strings.HasPrefix(p, r)) {
			return true
		}
	}
	return false
}

func diffTrees(a, b map[string]node) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		if !ignored(k) {
			sorted = append(sorted, k)
		}
	}
	sort.Strings(sorted)
	var out []string
	for _, k := range sorted {
		na, oka := a[k]
		nb, okb := b[k]
		switch {
		case !oka:
			out = append(out, fmt.Sprintf("+ /%s: %s", k, nb))
		case !okb:
			out = append(out, fmt.Sprintf("- /%s: %s", k, na))
		case na.String() != nb.String():
			out = append(out, fmt.Sprintf("~ /%s: podman %s, berth %s", k, na, nb))
		}
	}
	return out
}

// berthTree exports a container of the image; it also returns the raw
// export for the secret check.
func (s *suite) berthTree(t *testing.T, ref string) (map[string]node, []byte) {
	t.Helper()
	id := strings.TrimSpace(s.berthRun(t, "create", "--entrypoint", "", ref, "/bin/true"))
	defer s.exec(s.berth, s.berthArgs("rm", "-f", id)...)
	f := filepath.Join(t.TempDir(), "export.tar")
	s.berthRun(t, "export", "-o", f, id)
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return treeOfTar(t, bytes.NewReader(b)), b
}

func (s *suite) podmanTree(t *testing.T, ref string) map[string]node {
	t.Helper()
	id := strings.TrimSpace(s.podman(t, "create", "--entrypoint", "", ref, "/bin/true"))
	defer s.exec("podman", s.podmanArgs("rm", "-f", id)...)
	f := filepath.Join(t.TempDir(), "export.tar")
	s.podman(t, "export", "-o", f, id)
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return treeOfTar(t, bytes.NewReader(b))
}

func (s *suite) berthConfig(t *testing.T, ref string) map[string]json.RawMessage {
	t.Helper()
	out := s.berthRun(t, "inspect", "--type", "image", "--format", "{{json .Config}}", ref)
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("berth inspect %s: %v\n%s", ref, err, out)
	}
	return m
}

// podmanConfig is the image's config as podman stored it (skopeo reads
// the raw blob: podman inspect leaves Healthcheck, OnBuild and Shell out
// of .Config).
func (s *suite) podmanConfig(t *testing.T, ref string) map[string]json.RawMessage {
	t.Helper()
	out := s.run(t, "skopeo", "inspect", "--raw", "--config", s.storage()+ref)
	var c struct {
		Config map[string]json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, out)
	}
	return c.Config
}

// normField makes a config field comparable: decoded, with an empty list,
// map or string the same as none (buildah writes "Cmd": [] and "Volumes":
// {} where BuildKit writes nothing: the same config), and without the
// io.buildah.version label buildah adds to every image it builds.
func normField(field string, raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "unparsable: " + string(raw)
	}
	if field == "Labels" {
		if m, ok := v.(map[string]any); ok {
			delete(m, "io.buildah.version")
		}
	}
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			return nil
		}
	case map[string]any:
		if len(x) == 0 {
			return nil
		}
	case string:
		if x == "" {
			return nil
		}
	}
	return v
}

func comparedField(s string) bool {
	for _, f := range comparedFields {
		if f == s {
			return true
		}
	}
	return false
}

func sorted(v any) any {
	l, ok := v.([]any)
	if !ok {
		return v
	}
	out := append([]any(nil), l...)
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (s *suite) history(t *testing.T, ref string) []string {
	t.Helper()
	// One JSON string a line: a created_by may span lines (a heredoc).
	out := s.berthRun(t, "history", "--no-trunc", "--format", "{{json .CreatedBy}}", ref)
	var hist []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var h string
		if err := json.Unmarshal([]byte(l), &h); err != nil {
			t.Fatalf("berth history %s: %v\n%s", ref, err, out)
		}
		hist = append(hist, h)
	}
	return hist
}

func (s *suite) checkWant(t *testing.T, w *want, ref string, tree map[string]node, cfg map[string]json.RawMessage) {
	t.Helper()
	var hist []string
	for _, c := range w.checks {
		where := fmt.Sprintf("want.txt:%d: %s %s", c.line, c.kind, strings.Join(c.args, " "))
		p := strings.TrimPrefix(path.Clean("/"+unescape(c.args[0])), "/")
		n, ok := tree[p]
		switch c.kind {
		case "absent":
			if ok {
				t.Errorf("%s: there is %s", where, n)
			}
		case "file", "dir":
			typ := c.kind
			mode, err := strconv.ParseInt(c.args[1], 8, 64)
			if err != nil {
				t.Fatalf("%s: mode: %v", where, err)
			}
			owner := c.args[2]
			switch {
			case !ok:
				t.Errorf("%s: no such entry", where)
			case n.Type != typ || n.Mode != mode || fmt.Sprintf("%d:%d", n.UID, n.GID) != owner:
				t.Errorf("%s: got %s", where, n)
			case len(c.args) == 4 && string(n.body) != unescape(c.args[3]):
				t.Errorf("%s: content %q", where, n.body)
			}
		case "contains":
			switch {
			case !ok || n.Type != "file":
				t.Errorf("%s: no such file (%s)", where, n)
			case !bytes.Contains(n.body, []byte(unescape(c.args[1]))):
				t.Errorf("%s: content %q", where, n.body)
			}
		case "symlink":
			if !ok || n.Type != "symlink" || n.Target != c.args[1] {
				t.Errorf("%s: got %s (present: %v)", where, n, ok)
			}
		case "history", "history-count":
			if hist == nil {
				hist = s.history(t, ref)
			}
			i, err := strconv.Atoi(c.args[0])
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if c.kind == "history-count" {
				if len(hist) != i {
					t.Errorf("%s: %d entries:\n%s", where, len(hist), jsonOf(hist))
				}
				continue
			}
			if i < 1 || i > len(hist) || !strings.Contains(hist[i-1], unescape(c.args[1])) {
				t.Errorf("%s: history (newest first):\n%s", where, jsonOf(hist))
			}
		default: // config, config@REF
			c2 := cfg
			if _, r, ok := strings.Cut(c.kind, "@"); ok {
				c2 = s.berthConfig(t, r)
			}
			got := normField("", c2[c.args[0]])
			if !reflect.DeepEqual(normField("", json.RawMessage(c.args[1])), got) {
				t.Errorf("%s: got %s", where, jsonOf(got))
			}
		}
	}
}

// checkSecretGone asserts a secret's value is nowhere in the image: not in
// any layer, the config, the history (all in berth save's archive, layers
// uncompressed here when compressed), nor in any file of its tree.
func (s *suite) checkSecretGone(t *testing.T, ref, value string, export []byte) {
	t.Helper()
	if bytes.Contains(export, []byte(value)) {
		t.Errorf("the secret's value is in a file of the image")
	}
	for _, h := range s.history(t, ref) {
		if strings.Contains(h, value) {
			t.Errorf("the secret's value is in the history: %s", h)
		}
	}
	f := filepath.Join(t.TempDir(), "save.tar")
	s.berthRun(t, "save", "-o", f, ref)
	fh, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	tr := tar.NewReader(fh)
	members := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		members++
		if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if bytes.Contains(b, []byte(value)) {
			t.Errorf("the secret's value is in %s of berth save's archive", h.Name)
		}
	}
	if members < 3 {
		t.Errorf("berth save wrote %d members: nothing to look in", members)
	}
}
