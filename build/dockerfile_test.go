package build

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/errdefs"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
)

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
		line            int
	}{
		{"unknown instruction", "FROM a\nFROB x\n", "unknown instruction: FROB", 2},
		{"missing argument", "FROM a\nRUN true\nENV\n", "ENV requires at least one argument", 3},
		{"unterminated heredoc", "FROM a\nRUN <<EOF\necho\n", "unterminated heredoc", 2},
		{"no FROM", "# nothing\n", "file with no instructions", 0},
		{"instruction before FROM", "RUN true\nFROM a\n", "", 0},
		{"bad flag", "FROM a\nCOPY --nope=1 x y\n", "unknown flag: --nope", 2},
		{"parents", "FROM a\nCOPY --parents x y\n", "--parents is not supported", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseDockerfile("Dockerfile", []byte(tc.src))
			if err == nil {
				t.Fatal("parsed")
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("%v is not a SyntaxError", err)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%v is not an invalid argument", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.line > 0 && se.Line != tc.line {
				t.Errorf("line %d, want %d (%v)", se.Line, tc.line, err)
			}
			if tc.line > 0 && !strings.HasPrefix(err.Error(), "Dockerfile:") {
				t.Errorf("error %q does not start with the file", err)
			}
			if strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("error %q is more than one line", err)
			}
		})
	}
}

func TestPlanStages(t *testing.T) {
	for _, tc := range []struct {
		name, src, target string
		args              map[string]string
		order             []int
		bases             []string
		err               string
	}{
		{name: "one", src: "FROM a\n", order: []int{0}, bases: []string{"a"}},
		{name: "unneeded stages are skipped", src: "FROM a AS x\nFROM b AS y\nFROM c\nCOPY --from=x /f /f\n", order: []int{0, 2}},
		{name: "stage base", src: "FROM a AS base\nFROM base\n", order: []int{0, 1}},
		{name: "target", src: "FROM a AS one\nFROM b AS two\nFROM c\n", target: "TWO", order: []int{1}},
		{name: "missing target", src: "FROM a\n", target: "nope", err: `target stage "nope" could not be found`},
		{name: "cycle", src: "FROM a AS x\nCOPY --from=y /f /\nFROM a AS y\nCOPY --from=x /f /\n", err: "circular dependency between stages"},
		{name: "self", src: "FROM a AS x\nCOPY --from=x /f /\n", err: "circular dependency"},
		{name: "mount from", src: "FROM a AS x\nFROM b\nRUN --mount=type=bind,from=x,target=/m true\n", order: []int{0, 1}},
		{name: "numbered", src: "FROM a\nFROM b\nCOPY --from=0 /f /\n", order: []int{0, 1}},
		{name: "meta args", src: "ARG V=1\nARG IMG=base:$V\nFROM $IMG\n", bases: []string{"base:1"}, order: []int{0}},
		{name: "build arg over meta arg", src: "ARG IMG=base\nFROM $IMG\n", args: map[string]string{"IMG": "other"}, bases: []string{"other"}, order: []int{0}},
		{name: "empty base", src: "ARG IMG\nFROM $IMG\n", err: "empty after expansion"},
		{name: "native platform", src: "FROM --platform=$BUILDPLATFORM a\n", order: []int{0}},
		{name: "other platform", src: "FROM --platform=linux/s390x a\n", err: "this machine's platform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			df, err := parseDockerfile("Dockerfile", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			args := autoArgs()
			fa, err := df.fromArgs(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range fa {
				args[k] = v
			}
			p, _, err := df.planStages(tc.target, args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equal(p.order, tc.order) {
				t.Errorf("order %v, want %v", p.order, tc.order)
			}
			if tc.bases != nil && !equalS(p.bases, tc.bases) {
				t.Errorf("bases %v, want %v", p.bases, tc.bases)
			}
		})
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalS(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

func runCommand(t *testing.T, src string) *instructions.RunCommand {
	t.Helper()
	df, err := parseDockerfile("Dockerfile", []byte("FROM a\n"+src))
	if err != nil {
		t.Fatal(err)
	}
	return df.stages[0].Commands[0].(*instructions.RunCommand)
}

func TestRunArgs(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		shell     []string
		want      []string
	}{
		{"shell form", "RUN echo hi", nil, []string{"/bin/sh", "-c", "echo hi"}},
		{"exec form", `RUN ["echo", "hi"]`, nil, []string{"echo", "hi"}},
		{"SHELL", "RUN echo hi", []string{"/bin/bash", "-eu", "-c"}, []string{"/bin/bash", "-eu", "-c", "echo hi"}},
		{"heredoc", "RUN <<EOF\necho one\necho two\nEOF", nil, []string{"/bin/sh", "-c", "echo one\necho two\n"}},
		{"shebang heredoc", "RUN <<EOF\n#!/bin/busybox sh\necho hi\nEOF", nil, []string{"/bin/sh", "-c", "/dev/pipes/EOF"}},
		{"heredoc to a command", "RUN cat <<EOF > /f\nhello\nEOF", nil, []string{"/bin/sh", "-c", "cat <<EOF > /f\nhello\nEOF"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := runCommand(t, tc.src)
			cfg := &dockerspec.DockerOCIImageConfig{}
			cfg.Shell = tc.shell
			got, err := runArgs(cfg, c)
			if err != nil {
				t.Fatal(err)
			}
			if !equalS(got, tc.want) {
				t.Errorf("args %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRunHistory(t *testing.T) {
	v := "1"
	st := &stage{args: []instructions.KeyValuePairOptional{{Key: "A", Value: &v}, {Key: "B"}}}
	st.cfg.Config.Env = []string{"B=env"}
	got := runHistory(st, []string{"/bin/sh", "-c", "make"})
	if want := "RUN |2 A=1 B=env /bin/sh -c make"; got != want {
		t.Errorf("history %q, want %q", got, want)
	}
	if got := runHistory(&stage{}, []string{"true"}); got != "RUN true" {
		t.Errorf("history %q without args", got)
	}
}

func TestWithoutMountParents(t *testing.T) {
	cs := []archive.Change{
		{Kind: archive.ChangeAdd, Path: "/run"},
		{Kind: archive.ChangeAdd, Path: "/run/secrets"},
		{Kind: archive.ChangeAdd, Path: "/built"},
		{Kind: archive.ChangeAdd, Path: "/cache"},
		{Kind: archive.ChangeAdd, Path: "/keep"},
		{Kind: archive.ChangeAdd, Path: "/keep/m"},
		{Kind: archive.ChangeAdd, Path: "/keep/file"},
	}
	got := withoutMountParents(cs, []string{"/run/secrets/tok", "/cache", "/keep/m"})
	var paths []string
	for _, c := range got {
		paths = append(paths, c.Path)
	}
	if want := []string{"/built", "/keep", "/keep/file"}; !equalS(paths, want) {
		t.Errorf("kept %v, want %v", paths, want)
	}
}

func TestClampTar(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	old := time.Unix(1600000000, 0).UTC()
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	for _, h := range []*tar.Header{
		{Name: "new", Mode: 0o644, Size: 1, ModTime: time.Now(), AccessTime: time.Now(), ChangeTime: time.Now(), Format: tar.FormatPAX, Typeflag: tar.TypeReg},
		{Name: "old", Mode: 0o644, Size: 1, ModTime: old, Typeflag: tar.TypeReg},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte("x"))
	}
	tw.Close()
	var out bytes.Buffer
	cw := newClampWriter(&out, epoch)
	if _, err := io.Copy(cw, &in); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&out)
	want := map[string]time.Time{"new": epoch, "old": old}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(want[h.Name]) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, want[h.Name])
		}
		if !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: atime/ctime kept", h.Name)
		}
		b, _ := io.ReadAll(tr)
		if string(b) != "x" {
			t.Errorf("%s: content %q", h.Name, b)
		}
	}
	// A broken tar is an error, not a silent truncation.
	cw = newClampWriter(io.Discard, epoch)
	cw.Write([]byte("not a tar at all, but long enough to be read as a header block......"))
	if err := cw.Close(); err == nil {
		t.Error("a broken tar was accepted")
	}
}

func TestStepKey(t *testing.T) {
	a := stepKey("x", "y")
	if a != stepKey("x", "y") {
		t.Error("not deterministic")
	}
	// The parts are delimited: moving a boundary changes the key.
	if a == stepKey("xy") || a == stepKey("x", "", "y") {
		t.Error("parts run together")
	}
	if a.Validate() != nil || a.Algorithm() != digest.SHA256 {
		t.Errorf("bad key %s", a)
	}
}

func TestParsePolicyAndEpoch(t *testing.T) {
	for in, want := range map[string]PullPolicy{"": PullMissing, "missing": PullMissing, "never": PullNever, "always": PullAlways, "true": PullAlways, "false": PullMissing} {
		got, err := ParsePullPolicy(in)
		if err != nil || got != want {
			t.Errorf("ParsePullPolicy(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParsePullPolicy("sometimes"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("sometimes: %v", err)
	}
	if tm, err := ParseEpoch("1700000000"); err != nil || tm.Unix() != 1700000000 {
		t.Errorf("epoch: %v %v", tm, err)
	}
	for _, bad := range []string{"", "-1", "yesterday"} {
		if _, err := ParseEpoch(bad); err == nil {
			t.Errorf("epoch %q accepted", bad)
		}
	}
}

func TestCache(t *testing.T) {
	dir := t.TempDir()
	c, err := openCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	k, id := stepKey("k"), digest.FromString("image")
	if _, ok := c.get(k); ok {
		t.Fatal("hit in an empty cache")
	}
	if err := c.put(k, id); err != nil {
		t.Fatal(err)
	}
	// Another build's cache sees it, and entries of concurrent builds merge.
	c2, _ := openCache(dir)
	if got, ok := c2.get(k); !ok || got != id {
		t.Fatalf("reopened: %v %v", got, ok)
	}
	k2 := stepKey("k2")
	if err := c.put(k2, id); err != nil {
		t.Fatal(err)
	}
	if err := c2.put(stepKey("k3"), id); err != nil {
		t.Fatal(err)
	}
	c3, _ := openCache(dir)
	for _, k := range []digest.Digest{k, k2, stepKey("k3")} {
		if _, ok := c3.get(k); !ok {
			t.Errorf("lost %s", k)
		}
	}
	// A damaged file costs the cache, not the build.
	if err := os.WriteFile(filepath.Join(dir, "cache.json"), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	c4, err := openCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c4.get(k); ok {
		t.Error("hit from a damaged cache")
	}
}

// FuzzDockerfile feeds the front end (parse, meta args, stage planning)
// arbitrary Dockerfiles: errors, never a panic or a hang.
func FuzzDockerfile(f *testing.F) {
	for _, s := range []string{
		"FROM a\nRUN echo hi\n",
		"ARG X=1\nFROM b:$X AS s\nCOPY --from=s /a /b\nFROM s\n",
		"FROM a AS x\nCOPY --from=y / /\nFROM a AS y\nCOPY --from=x / /\n",
		"FROM a\nRUN <<EOF\nhi\nEOF\n",
		"FROM --platform=$BUILDPLATFORM a\nONBUILD RUN x\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		df, err := parseDockerfile("Dockerfile", []byte(src))
		if err != nil {
			return
		}
		args, err := df.fromArgs(nil)
		if err != nil {
			return
		}
		df.planStages("", args)
	})
}
