// Package crash kills berth in the middle of its work and checks that the
// store never needs a reset: after each kill, system check is clean and
// the images stored before are intact.
package crash

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/archive"
	tu "github.com/berthproject/berth/internal/testutil"
)

type store struct {
	t     *testing.T
	berth string
	root  string
	run   string
}

func (s *store) args(a ...string) []string {
	return append([]string{"--root", s.root, "--runroot", s.run}, a...)
}

func (s *store) berthOK(a ...string) string {
	s.t.Helper()
	out, err := exec.Command(s.berth, s.args(a...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("berth %s: %v\n%s", strings.Join(a, " "), err, out)
	}
	return string(out)
}

// tree is what an image's mount shows.
func (s *store) tree(ref string) map[string]tu.Node {
	s.t.Helper()
	p := strings.TrimSpace(s.berthOK("image", "mount", ref))
	defer s.berthOK("image", "unmount", ref)
	return tu.TreeOf(s.t, p, tu.TreeOptions{Mtimes: true})
}

// bulkyImage has enough layers, files and bytes that a load takes long
// enough to be killed at many different points.
func bulkyImage(t *testing.T, seed int) *tu.TestImage {
	var layers [][]tu.Entry
	for l := 0; l < 5; l++ {
		var es []tu.Entry
		dir := fmt.Sprintf("layer%d", l)
		es = append(es, tu.Dir(dir))
		for i := 0; i < 800; i++ {
			es = append(es, tu.File(fmt.Sprintf("%s/f%04d", dir, i), fmt.Sprintf("seed %d layer %d file %d\n", seed, l, i)))
		}
		big := bytes.Repeat([]byte(fmt.Sprintf("%d-%d:", seed, l)), 1<<20)
		es = append(es, tu.Entry{Name: dir + "/big", Body: string(big)})
		if l > 0 {
			es = append(es, tu.Entry{Name: fmt.Sprintf("layer%d/.wh.f0000", l-1)})
		}
		layers = append(layers, es)
	}
	return tu.BuildImage(t, tu.ImageOptions{Env: []string{fmt.Sprintf("SEED=%d", seed)}}, layers...)
}

func TestKilledLoadsLeaveAConsistentStore(t *testing.T) {
	tu.RequireRoot(t)
	dir := t.TempDir()
	s := &store{t: t, berth: tu.Binary(t, "berth"), root: filepath.Join(dir, "root"), run: filepath.Join(dir, "run")}
	defer exec.Command(s.berth, s.args("image", "unmount", "--all")...).Run()

	earlier := filepath.Join(dir, "earlier.tar")
	must(t, os.WriteFile(earlier, tu.OCIArchive(t, []*tu.TestImage{bulkyImage(t, 1)}, []string{"docker.io/library/earlier:1"}), 0o644))
	s.berthOK("load", "-i", earlier)
	before := s.tree("earlier:1")

	next := bulkyImage(t, 2)
	victim := filepath.Join(dir, "victim.tar")
	must(t, os.WriteFile(victim, tu.OCIArchive(t, []*tu.TestImage{next}, []string{"docker.io/library/victim:1"}), 0o644))
	// The docker-archive path (uncompressed layers, manifest written by
	// berth) gets killed too.
	victimDocker := filepath.Join(dir, "victim-docker.tar")
	must(t, os.WriteFile(victimDocker, tu.DockerArchive(t, []*tu.TestImage{next}, [][]string{{"victim:1"}}), 0o644))
	want := flatten(t, next)

	// Calibrate: how long a whole load takes here.
	start := time.Now()
	s.berthOK("load", "-i", victim)
	full := time.Since(start)
	s.berthOK("rmi", "victim:1")
	s.berthOK("image", "prune", "-f")
	t.Logf("a whole load takes %v; killing at 20 points across it", full)

	const runs = 20
	completed := 0
	for i := 0; i < runs; i++ {
		// Three ways in: an OCI archive file (layers unpacked from their
		// place in the file), a docker-archive file, and a stream on stdin
		// (everything ingested first).
		delay := full * time.Duration(i+1) / runs
		var cmd *exec.Cmd
		switch i % 3 {
		case 0:
			cmd = exec.Command(s.berth, s.args("load", "-i", victim)...)
		case 1:
			cmd = exec.Command(s.berth, s.args("load", "-i", victimDocker)...)
		default:
			cmd = exec.Command(s.berth, s.args("load")...)
			f, err := os.Open(victim)
			must(t, err)
			defer f.Close()
			cmd.Stdin = f
		}
		must(t, cmd.Start())
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		finished := err == nil

		out, err := exec.Command(s.berth, s.args("system", "check")...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "No problems found") {
			t.Fatalf("run %d (killed after %v): system check: %v\n%s", i, delay, err, out)
		}
		if d := tu.DiffTrees(before, s.tree("earlier:1")); len(d) > 0 {
			t.Fatalf("run %d (killed after %v): the earlier image changed:\n%s", i, delay, strings.Join(d, "\n"))
		}
		// The victim is there whole, or not at all.
		listed := strings.TrimSpace(s.berthOK("images", "-q", "victim"))
		if listed != "" {
			completed++
			p := strings.TrimSpace(s.berthOK("image", "mount", "victim:1"))
			got := tu.TreeOf(t, p, tu.TreeOptions{})
			s.berthOK("image", "unmount", "victim:1")
			if d := tu.DiffTrees(want, got); len(d) > 0 {
				t.Fatalf("run %d: the listed victim is not whole:\n%s", i, strings.Join(d[:min(len(d), 20)], "\n"))
			}
			s.berthOK("rmi", "victim:1")
		} else if finished {
			t.Fatalf("run %d: load exited 0 but the image is not listed", i)
		}
		// What the dead load left is garbage that prune collects (and
		// the next load may reuse).
		if i%4 == 3 {
			s.berthOK("image", "prune", "-f")
		}
	}
	t.Logf("%d of %d loads completed before their kill", completed, runs)
	if completed == runs {
		t.Fatal("every load finished before the kill: the test killed nothing")
	}
	// And afterwards the store works as ever.
	s.berthOK("image", "prune", "-f")
	s.berthOK("load", "-i", victim)
	if d := tu.DiffTrees(want, s.treePlain("victim:1")); len(d) > 0 {
		t.Fatalf("load after the kills:\n%s", strings.Join(d, "\n"))
	}
	out := s.berthOK("system", "check")
	if !strings.Contains(out, "No problems found") || strings.Contains(out, "Unused") {
		t.Fatalf("final check: %s", out)
	}
}

func (s *store) treePlain(ref string) map[string]tu.Node {
	p := strings.TrimSpace(s.berthOK("image", "mount", ref))
	defer s.berthOK("image", "unmount", ref)
	return tu.TreeOf(s.t, p, tu.TreeOptions{})
}

func flatten(t *testing.T, img *tu.TestImage) map[string]tu.Node {
	dir := t.TempDir()
	for _, l := range img.Layers {
		if _, err := archive.Apply(context.Background(), dir, bytes.NewReader(l), archive.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	return tu.TreeOf(t, dir, tu.TreeOptions{})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentProcesses runs loads of images sharing layers, removals
// and prunes as separate berth processes at once: the store stays
// consistent and every image that was loaded and not removed is whole.
func TestConcurrentProcesses(t *testing.T) {
	tu.RequireRoot(t)
	dir := t.TempDir()
	s := &store{t: t, berth: tu.Binary(t, "berth"), root: filepath.Join(dir, "root"), run: filepath.Join(dir, "run")}
	defer exec.Command(s.berth, s.args("image", "unmount", "--all")...).Run()
	const n = 6
	var imgs []*tu.TestImage
	var files []string
	for i := 0; i < n; i++ {
		img := bulkyImage(t, 10+i%2) // pairs share every layer
		imgs = append(imgs, img)
		f := filepath.Join(dir, fmt.Sprintf("img%d.tar", i))
		must(t, os.WriteFile(f, tu.OCIArchive(t, []*tu.TestImage{img}, []string{fmt.Sprintf("docker.io/library/c:%d", i)}), 0o644))
		files = append(files, f)
	}
	s.berthOK("load", "-i", files[0])
	var cmds []*exec.Cmd
	for i := 1; i < n; i++ {
		cmds = append(cmds, exec.Command(s.berth, s.args("load", "-i", files[i])...))
	}
	cmds = append(cmds,
		exec.Command(s.berth, s.args("rmi", "c:0")...),
		exec.Command(s.berth, s.args("image", "prune", "-f")...),
		exec.Command(s.berth, s.args("system", "df")...),
	)
	outs := make([]*bytes.Buffer, len(cmds))
	for i, c := range cmds {
		outs[i] = &bytes.Buffer{}
		c.Stdout, c.Stderr = outs[i], outs[i]
		must(t, c.Start())
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c.Args, " "), err, outs[i])
		}
	}
	out := s.berthOK("system", "check")
	if !strings.Contains(out, "No problems found") {
		t.Fatalf("check: %s", out)
	}
	for i := 1; i < n; i++ {
		if d := tu.DiffTrees(flatten(t, imgs[i]), s.treePlain(fmt.Sprintf("c:%d", i))); len(d) > 0 {
			t.Fatalf("c:%d:\n%s", i, strings.Join(d, "\n"))
		}
	}
	if listed := strings.TrimSpace(s.berthOK("images", "-q", "c:0")); listed != "" {
		t.Fatalf("c:0 was removed but is listed: %s", listed)
	}
}
