package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/errdefs"
	"golang.org/x/sys/unix"
)

// A tree is written and read back as a map: "d/" is a directory, a value
// "-> target" a symlink, anything else a file's content.

func ctMkTree(t *testing.T, root string, m map[string]string) {
	t.Helper()
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		p := filepath.Join(root, k)
		v := m[k]
		switch {
		case strings.HasSuffix(k, "/"):
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(v, "-> "):
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(strings.TrimPrefix(v, "-> "), p); err != nil {
				t.Fatal(err)
			}
		default:
			ctWrite(t, p, v)
		}
	}
}

func ctReadTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		switch d.Type() {
		case fs.ModeDir:
			out[rel+"/"] = ""
		case fs.ModeSymlink:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "-> " + target
		case 0:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		default:
			out[rel] = "?" + d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ctDiff(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("missing %q", k)
		} else if g != w {
			t.Errorf("%q = %q, want %q", k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %q (%q)", k, g)
		}
	}
}

// ctContextSpec is a CopySpec reading from the context dir, with its
// .dockerignore applied as the builder applies it.
func ctContextSpec(t *testing.T, dir string) CopySpec {
	t.Helper()
	c, err := OpenContext(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return CopySpec{SrcRoot: dir, Ignore: c.Excluded, IgnoreDir: c.SkipDir, FromContext: true}
}

func TestCopy(t *testing.T) {
	tests := []struct {
		name    string
		ctx     map[string]string
		dest    map[string]string // the target before
		sources []string
		inline  []InlineFile
		to      string
		want    map[string]string // the whole target after
		err     error
		errText string
	}{
		{
			name:    "file to a new path",
			ctx:     map[string]string{"a.txt": "A"},
			sources: []string{"a.txt"},
			to:      "/b.txt",
			want:    map[string]string{"b.txt": "A"},
		},
		{
			name:    "file to a new path with missing parents",
			ctx:     map[string]string{"a.txt": "A"},
			sources: []string{"a.txt"},
			to:      "/x/y/b.txt",
			want:    map[string]string{"x/": "", "x/y/": "", "x/y/b.txt": "A"},
		},
		{
			name:    "file into an existing directory without a slash",
			ctx:     map[string]string{"a.txt": "A"},
			dest:    map[string]string{"d/": ""},
			sources: []string{"a.txt"},
			to:      "/d",
			want:    map[string]string{"d/": "", "d/a.txt": "A"},
		},
		{
			name:    "trailing slash makes a directory",
			ctx:     map[string]string{"a.txt": "A"},
			sources: []string{"a.txt"},
			to:      "/new/dir/",
			want:    map[string]string{"new/": "", "new/dir/": "", "new/dir/a.txt": "A"},
		},
		{
			name:    "absolute source is relative to the context",
			ctx:     map[string]string{"sub/a.txt": "A"},
			sources: []string{"/sub/a.txt"},
			to:      "/",
			want:    map[string]string{"a.txt": "A"},
		},
		{
			name:    "wildcard",
			ctx:     map[string]string{"a.txt": "A", "b.txt": "B", "c.md": "C", "sub/d.txt": "D"},
			sources: []string{"*.txt"},
			to:      "/out/",
			want:    map[string]string{"out/": "", "out/a.txt": "A", "out/b.txt": "B"},
		},
		{
			name:    "wildcard in a directory component",
			ctx:     map[string]string{"p1/f": "1", "p2/f": "2", "p3/g": "3"},
			sources: []string{"p?/f"},
			to:      "/out/",
			want:    map[string]string{"out/": "", "out/f": "2"}, // both are named f: the last one wins, as in Docker
		},
		{
			name:    "wildcard with one match into a file path",
			ctx:     map[string]string{"a.txt": "A", "c.md": "C"},
			sources: []string{"*.txt"},
			to:      "/file",
			want:    map[string]string{"file": "A"},
		},
		{
			name:    "wildcard with several matches into a non-directory",
			ctx:     map[string]string{"a.txt": "A", "b.txt": "B"},
			sources: []string{"*.txt"},
			to:      "/file",
			err:     errdefs.ErrInvalidArgument,
			errText: "When using COPY with more than one source file, the destination must be a directory and end with a /",
		},
		{
			name:    "wildcard matching nothing",
			ctx:     map[string]string{"a.txt": "A"},
			sources: []string{"*.go"},
			to:      "/",
			err:     errdefs.ErrNotFound,
			errText: "*.go",
		},
		{
			name:    "directory copies its contents",
			ctx:     map[string]string{"src/f": "F", "src/sub/g": "G", "src/empty/": ""},
			sources: []string{"src"},
			to:      "/app",
			want:    map[string]string{"app/": "", "app/f": "F", "app/sub/": "", "app/sub/g": "G", "app/empty/": ""},
		},
		{
			name:    "directory merges into an existing one",
			ctx:     map[string]string{"src/f": "F", "src/sub/g": "G"},
			dest:    map[string]string{"app/old": "O", "app/sub/h": "H", "app/f": "old F"},
			sources: []string{"src/"},
			to:      "/app/",
			want:    map[string]string{"app/": "", "app/f": "F", "app/old": "O", "app/sub/": "", "app/sub/g": "G", "app/sub/h": "H"},
		},
		{
			name:    "whole context",
			ctx:     map[string]string{"a": "A", "d/b": "B"},
			sources: []string{"."},
			to:      "/app/",
			want:    map[string]string{"app/": "", "app/a": "A", "app/d/": "", "app/d/b": "B"},
		},
		{
			name:    "several sources into a directory",
			ctx:     map[string]string{"a": "A", "d/b": "B"},
			sources: []string{"a", "d"},
			to:      "/out/",
			want:    map[string]string{"out/": "", "out/a": "A", "out/b": "B"},
		},
		{
			name:    "several sources into a non-directory",
			ctx:     map[string]string{"a": "A", "b": "B"},
			sources: []string{"a", "b"},
			to:      "/out",
			err:     errdefs.ErrInvalidArgument,
			errText: "the destination must be a directory and end with a /",
		},
		{
			name:    "source outside the context",
			ctx:     map[string]string{"a": "A"},
			sources: []string{"../a"},
			to:      "/",
			err:     errdefs.ErrInvalidArgument,
			errText: "outside the build context",
		},
		{
			name:    "source outside the context after cleaning",
			ctx:     map[string]string{"a": "A"},
			sources: []string{"sub/../../a"},
			to:      "/",
			err:     errdefs.ErrInvalidArgument,
			errText: "outside the build context",
		},
		{
			name:    "missing source",
			ctx:     map[string]string{"a": "A"},
			sources: []string{"nope.txt"},
			to:      "/",
			err:     errdefs.ErrNotFound,
			errText: "COPY failed: file not found in build context or excluded by .dockerignore: stat nope.txt: file does not exist",
		},
		{
			name:    "symlink named as a source is followed",
			ctx:     map[string]string{"real.txt": "R", "link": "-> real.txt"},
			sources: []string{"link"},
			to:      "/out/",
			want:    map[string]string{"out/": "", "out/link": "R"},
		},
		{
			name:    "symlinked directory named as a source is followed",
			ctx:     map[string]string{"real/f": "F", "link": "-> real"},
			sources: []string{"link"},
			to:      "/out/",
			want:    map[string]string{"out/": "", "out/f": "F"},
		},
		{
			name:    "symlinks inside a directory stay symlinks",
			ctx:     map[string]string{"d/f": "F", "d/rel": "-> f", "d/abs": "-> /etc/passwd", "d/dangling": "-> nowhere"},
			sources: []string{"d"},
			to:      "/out/",
			want:    map[string]string{"out/": "", "out/f": "F", "out/rel": "-> f", "out/abs": "-> /etc/passwd", "out/dangling": "-> nowhere"},
		},
		{
			name:    "absolute symlink source resolves inside the context",
			ctx:     map[string]string{"link": "-> /etc/hostname"},
			sources: []string{"link"},
			to:      "/out/",
			err:     errdefs.ErrNotFound,
		},
		{
			name:    "escaping relative symlink source resolves inside the context",
			ctx:     map[string]string{"inner/x": "X", "link": "-> ../../../../inner/x"},
			sources: []string{"link"},
			to:      "/got",
			want:    map[string]string{"got": "X"},
		},
		{
			name:    "existing file is replaced",
			ctx:     map[string]string{"a": "new"},
			dest:    map[string]string{"a": "old"},
			sources: []string{"a"},
			to:      "/a",
			want:    map[string]string{"a": "new"},
		},
		{
			name:    "existing symlink is replaced, not written through",
			ctx:     map[string]string{"a": "new"},
			dest:    map[string]string{"etc/passwd": "root", "a": "-> /etc/passwd"},
			sources: []string{"a"},
			to:      "/a",
			want:    map[string]string{"etc/": "", "etc/passwd": "root", "a": "new"},
		},
		{
			name:    "file where a directory is",
			ctx:     map[string]string{"d/x": "X"},
			dest:    map[string]string{"out/x/y": "Y"},
			sources: []string{"d"},
			to:      "/out",
			err:     errdefs.ErrInvalidArgument,
			errText: "/out/x",
		},
		{
			name:    "directory where a file is",
			ctx:     map[string]string{"d/x/y": "Y"},
			dest:    map[string]string{"out/x": "X"},
			sources: []string{"d"},
			to:      "/out",
			err:     errdefs.ErrInvalidArgument,
			errText: "/out/x",
		},
		{
			name:    "destination parent is a file",
			ctx:     map[string]string{"a": "A"},
			dest:    map[string]string{"f": "F"},
			sources: []string{"a"},
			to:      "/f/a",
			err:     errdefs.ErrInvalidArgument,
			errText: "/f is not a directory",
		},
		{
			name:    "destination through a relative symlink in the target",
			ctx:     map[string]string{"a": "A"},
			dest:    map[string]string{"real/": "", "app": "-> real"},
			sources: []string{"a"},
			to:      "/app/",
			want:    map[string]string{"real/": "", "real/a": "A", "app": "-> real"},
		},
		{
			name:    "dockerignore",
			ctx:     map[string]string{".dockerignore": "*.log\n!keep.log\n**/*.tmp\nsecret\n", "a.log": "L", "keep.log": "K", "d/x.tmp": "T", "d/y": "Y", "secret/key": "S", "z": "Z"},
			sources: []string{"."},
			to:      "/app/",
			want:    map[string]string{"app/": "", "app/.dockerignore": "*.log\n!keep.log\n**/*.tmp\nsecret\n", "app/keep.log": "K", "app/d/": "", "app/d/y": "Y", "app/z": "Z"},
		},
		{
			name:    "dockerignore re-includes below an excluded directory",
			ctx:     map[string]string{".dockerignore": ".dockerignore\nbuild\n!build/out\n", "build/tmp/x": "X", "build/out/bin": "B", "a": "A"},
			sources: []string{"."},
			to:      "/",
			want:    map[string]string{"a": "A", "build/": "", "build/out/": "", "build/out/bin": "B"},
		},
		{
			name:    "excluded source is not found",
			ctx:     map[string]string{".dockerignore": "secret\n", "secret": "S"},
			sources: []string{"secret"},
			to:      "/",
			err:     errdefs.ErrNotFound,
			errText: "excluded by .dockerignore",
		},
		{
			name:    "symlink to an excluded file is not found",
			ctx:     map[string]string{".dockerignore": "secret\n", "secret": "S", "link": "-> secret"},
			sources: []string{"link"},
			to:      "/",
			err:     errdefs.ErrNotFound,
		},
		{
			name:    "wildcard skips excluded matches",
			ctx:     map[string]string{".dockerignore": "b.txt\n", "a.txt": "A", "b.txt": "B"},
			sources: []string{"*.txt"},
			to:      "/out/",
			want:    map[string]string{"out/": "", "out/a.txt": "A"},
		},
		{
			name:    "wildcard whose matches are all excluded",
			ctx:     map[string]string{".dockerignore": "*.txt\n", "a.txt": "A"},
			sources: []string{"*.txt"},
			to:      "/out/",
			err:     errdefs.ErrNotFound,
		},
		{
			name:   "one heredoc to a file path",
			inline: []InlineFile{{Name: "EOF", Data: "hello\n"}},
			to:     "/etc/motd",
			want:   map[string]string{"etc/": "", "etc/motd": "hello\n"},
		},
		{
			name:   "heredocs into a directory",
			inline: []InlineFile{{Name: "a", Data: "A"}, {Name: "b", Data: "B"}},
			to:     "/d/",
			want:   map[string]string{"d/": "", "d/a": "A", "d/b": "B"},
		},
		{
			name:   "one heredoc into a directory",
			inline: []InlineFile{{Name: "run.sh", Data: "echo"}},
			to:     "/d/",
			want:   map[string]string{"d/": "", "d/run.sh": "echo"},
		},
		{
			name:   "several heredocs into a non-directory",
			inline: []InlineFile{{Name: "a", Data: "A"}, {Name: "b", Data: "B"}},
			to:     "/d",
			err:    errdefs.ErrInvalidArgument,
		},
		{
			name:   "heredoc name with a slash",
			inline: []InlineFile{{Name: "../x", Data: "A"}},
			to:     "/d/",
			err:    errdefs.ErrInvalidArgument,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctxDir, destDir := t.TempDir(), t.TempDir()
			ctMkTree(t, ctxDir, tt.ctx)
			ctMkTree(t, destDir, tt.dest)
			s := ctContextSpec(t, ctxDir)
			s.Sources, s.Inline, s.DestRoot, s.Dest = tt.sources, tt.inline, destDir, tt.to
			err := Copy(context.Background(), s)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Copy: got %v, want %v", err, tt.err)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("Copy: got %q, want it to say %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ctDiff(t, ctReadTree(t, destDir), tt.want)
		})
	}
}

// A symlink in the target that points at a host path (absolute, or out
// with ../) must lead inside DestRoot.
func TestCopyDestSymlinkDoesNotEscape(t *testing.T) {
	host := t.TempDir() // stands for the host's /etc
	tests := []struct {
		name    string
		link    string
		to      string
		sources []string
		inside  string // where the file must land, relative to DestRoot
	}{
		{"absolute symlink as parent", host, "/app/", []string{"a", "d"}, filepath.Join(host, "a")},
		// A file to /app would replace the symlink (it leads nowhere in
		// the target); a directory goes where it leads.
		{"absolute symlink as destination directory", host, "/app", []string{"d"}, filepath.Join(host, "a")},
		{"relative symlink out", "../../../../../../.." + host, "/app/", []string{"a", "d"}, filepath.Join(host, "a")},
		{"symlink to root", "/", "/app/sub/", []string{"a", "d"}, "sub/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctxDir, destDir := t.TempDir(), t.TempDir()
			ctMkTree(t, ctxDir, map[string]string{"a": "A", "d/a": "A"})
			if err := os.Symlink(tt.link, filepath.Join(destDir, "app")); err != nil {
				t.Fatal(err)
			}
			for _, src := range tt.sources {
				s := ctContextSpec(t, ctxDir)
				s.Sources, s.DestRoot, s.Dest = []string{src}, destDir, tt.to
				if err := Copy(context.Background(), s); err != nil {
					t.Fatal(err)
				}
				if b, err := os.ReadFile(filepath.Join(destDir, tt.inside)); err != nil || string(b) != "A" {
					t.Errorf("%s: %s in the target: %q, %v", src, tt.inside, b, err)
				}
				if ents, _ := os.ReadDir(host); len(ents) != 0 {
					t.Fatalf("%s: wrote outside the target: %v", src, ents)
				}
			}
		})
	}
}

// A symlink inside a directory being copied over must not be written
// through (a file replaces it), nor descended into (a directory is
// refused there).
func TestCopyDestSymlinkInTree(t *testing.T) {
	host := t.TempDir()
	ctMkTree(t, host, map[string]string{"victim": "V"})
	ctxDir, destDir := t.TempDir(), t.TempDir()
	ctMkTree(t, ctxDir, map[string]string{"d/victim": "EVIL", "e/sub/x": "EVIL"})
	ctMkTree(t, destDir, map[string]string{"app/victim": "-> " + filepath.Join(host, "victim"), "app/sub": "-> " + host})

	s := ctContextSpec(t, ctxDir)
	s.Sources, s.DestRoot, s.Dest = []string{"d"}, destDir, "/app/"
	if err := Copy(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	s.Sources = []string{"e"}
	if err := Copy(context.Background(), s); !errdefs.IsInvalidArgument(err) {
		t.Errorf("directory onto a symlink: got %v, want invalid argument", err)
	}
	ctDiff(t, ctReadTree(t, host), map[string]string{"victim": "V"})
	if b, _ := os.ReadFile(filepath.Join(destDir, "app/victim")); string(b) != "EVIL" {
		t.Errorf("app/victim = %q, want the copied file", b)
	}
}

func TestCopyModesAndTimes(t *testing.T) {
	ctxDir, destDir := t.TempDir(), t.TempDir()
	ctMkTree(t, ctxDir, map[string]string{"d/f": "F", "d/sub/g": "G", "d/link": "-> f", "exe": "#!"})
	ctChmod(t, filepath.Join(ctxDir, "d"), 0o750)
	ctChmod(t, filepath.Join(ctxDir, "d/sub"), 0o500) // read-only: must still be filled
	ctChmod(t, filepath.Join(ctxDir, "d/f"), 0o600)
	ctChmod(t, filepath.Join(ctxDir, "exe"), 0o755|os.ModeSetuid)
	old := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
	for _, p := range []string{"d/f", "d/sub/g", "d/sub", "d", "exe"} {
		if err := os.Chtimes(filepath.Join(ctxDir, p), old, old); err != nil {
			t.Fatal(err)
		}
	}
	linkTime := []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(ctxDir, "d/link"), linkTime, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
	ctMkTree(t, destDir, map[string]string{"keep/": ""})
	ctChmod(t, filepath.Join(destDir, "keep"), 0o700)
	t.Cleanup(func() { // so that TempDir can remove them when not root
		os.Chmod(filepath.Join(ctxDir, "d/sub"), 0o755)
		os.Chmod(filepath.Join(destDir, "new/d/sub"), 0o755)
	})

	run := func(s CopySpec, sources []string, to string) {
		t.Helper()
		s.Sources, s.DestRoot, s.Dest = sources, destDir, to
		if err := Copy(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	run(ctContextSpec(t, ctxDir), []string{"d"}, "/new/d")
	run(ctContextSpec(t, ctxDir), []string{"exe"}, "/keep/x/")

	tests := []struct {
		path  string
		mode  os.FileMode
		mtime bool // the source's mtime is kept
	}{
		{"new", 0o755 | fs.ModeDir, false},           // a missing parent
		{"new/d", 0o750 | fs.ModeDir, true},          // made for the source directory: its mode
		{"new/d/sub", 0o500 | fs.ModeDir, true},      // read-only, set after its content
		{"new/d/f", 0o600, true},                     //
		{"new/d/sub/g", 0o644, true},                 //
		{"new/d/link", 0o777 | fs.ModeSymlink, true}, //
		{"keep", 0o700 | fs.ModeDir, false},          // existing: kept
		{"keep/x", 0o755 | fs.ModeDir, false},        // made for several (a slash): 0755
		{"keep/x/exe", 0o755 | fs.ModeSetuid, true},  // setuid kept
	}
	for _, tt := range tests {
		fi, err := os.Lstat(filepath.Join(destDir, tt.path))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != tt.mode {
			t.Errorf("%s: mode %v, want %v", tt.path, fi.Mode(), tt.mode)
		}
		if got := fi.ModTime(); tt.mtime && !got.Equal(old) {
			t.Errorf("%s: mtime %v, want %v", tt.path, got, old)
		}
	}

	// --chmod applies to files and to the directories the copy makes from
	// source directories alike, not to missing parents.
	mode := os.FileMode(0o751) // x bits kept, so that a non-root test can look inside
	s := ctContextSpec(t, ctxDir)
	s.Mode = &mode
	run(s, []string{"d"}, "/chmod/sub/d")
	for p, want := range map[string]os.FileMode{
		"chmod":           0o755 | fs.ModeDir,
		"chmod/sub":       0o755 | fs.ModeDir,
		"chmod/sub/d":     0o751 | fs.ModeDir,
		"chmod/sub/d/f":   0o751,
		"chmod/sub/d/sub": 0o751 | fs.ModeDir,
	} {
		fi, err := os.Lstat(filepath.Join(destDir, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
	for _, p := range []string{"chmod/sub/d/sub", "chmod/sub/d"} {
		ctChmod(t, filepath.Join(destDir, p), 0o755)
	}

	// Heredoc files are 0644, or --chmod.
	s = ctContextSpec(t, ctxDir)
	s.Inline = []InlineFile{{Name: "x", Data: "X"}}
	run(s, nil, "/inline/x")
	mode = 0o4711
	s.Mode = &mode
	run(s, nil, "/inline/y")
	for p, want := range map[string]os.FileMode{"inline/x": 0o644, "inline/y": 0o711 | fs.ModeSetuid} {
		if fi, err := os.Lstat(filepath.Join(destDir, p)); err != nil || fi.Mode() != want {
			t.Errorf("%s: %v, %v; want mode %v", p, fi.Mode(), err, want)
		}
	}
}

func ctChmod(t *testing.T, p string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

func ctOwner(t *testing.T, p string) [2]int {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return [2]int{int(st.Uid), int(st.Gid)}
}

func TestCopyChown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to other users needs root")
	}
	ctxDir, stageDir := t.TempDir(), t.TempDir()
	ctMkTree(t, ctxDir, map[string]string{"d/f": "F", "d/link": "-> f"})
	ctMkTree(t, stageDir, map[string]string{"d/f": "F", "d/link": "-> f"})
	for _, root := range []string{ctxDir, stageDir} {
		for _, p := range []string{"d", "d/f", "d/link"} {
			if err := os.Lchown(filepath.Join(root, p), 4321, 4322); err != nil {
				t.Fatal(err)
			}
		}
	}
	uid, gid := 1234, 1235
	tests := []struct {
		name     string
		spec     CopySpec
		want     [2]int // the copied entries
		wantPar  [2]int // the missing parents
		inline   bool
		parentOf string
	}{
		{"context is 0:0 by default", ctContextSpec(t, ctxDir), [2]int{0, 0}, [2]int{0, 0}, false, ""},
		{"stage keeps its owners", CopySpec{SrcRoot: stageDir}, [2]int{4321, 4322}, [2]int{0, 0}, false, ""},
		{"chown from the context", func() CopySpec { s := ctContextSpec(t, ctxDir); s.UID, s.GID = &uid, &gid; return s }(), [2]int{uid, gid}, [2]int{uid, gid}, false, ""},
		{"chown from a stage", CopySpec{SrcRoot: stageDir, UID: &uid, GID: &gid}, [2]int{uid, gid}, [2]int{uid, gid}, false, ""},
		{"heredoc", CopySpec{SrcRoot: ctxDir, FromContext: true, Inline: []InlineFile{{Name: "h", Data: "H"}}}, [2]int{0, 0}, [2]int{0, 0}, true, ""},
		{"heredoc with chown", CopySpec{SrcRoot: ctxDir, FromContext: true, UID: &uid, GID: &gid, Inline: []InlineFile{{Name: "h", Data: "H"}}}, [2]int{uid, gid}, [2]int{uid, gid}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			destDir := t.TempDir()
			ctMkTree(t, destDir, map[string]string{"existing/": ""})
			s := tt.spec
			s.DestRoot, s.Dest = destDir, "/existing/parent/d/"
			if !tt.inline {
				s.Sources = []string{"d"}
			}
			if err := Copy(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			if got := ctOwner(t, filepath.Join(destDir, "existing")); got != [2]int{0, 0} {
				t.Errorf("existing directory: owner %v, want kept 0:0", got)
			}
			if got := ctOwner(t, filepath.Join(destDir, "existing/parent")); got != tt.wantPar {
				t.Errorf("missing parent: owner %v, want %v", got, tt.wantPar)
			}
			names := []string{"f", "link"}
			if tt.inline {
				names = []string{"h"}
			}
			for _, n := range names {
				if got := ctOwner(t, filepath.Join(destDir, "existing/parent/d", n)); got != tt.want {
					t.Errorf("%s: owner %v, want %v", n, got, tt.want)
				}
			}
		})
	}
}

// ctTar makes a gzip-compressed tar of the given entries (a Linkname
// makes a symlink).
func ctTar(t *testing.T, compress bool, entries ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	var tw *tar.Writer
	var zw *gzip.Writer
	if compress {
		zw = gzip.NewWriter(&buf)
		tw = tar.NewWriter(zw)
	} else {
		tw = tar.NewWriter(&buf)
	}
	for _, h := range entries {
		h := h
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		body := h.Linkname
		if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeDir || h.Typeflag == tar.TypeLink {
			body = ""
		} else {
			h.Typeflag = tar.TypeReg
			h.Linkname = ""
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestCopyUnpack(t *testing.T) {
	// In ctTar, a regular entry's Linkname is its content.
	good := ctTar(t, true,
		tar.Header{Name: "top/", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: "top/f", Linkname: "F"},
		tar.Header{Name: "top/l", Typeflag: tar.TypeSymlink, Linkname: "f"},
	)
	plain := ctTar(t, false, tar.Header{Name: "p", Linkname: "P"})
	host := t.TempDir()
	hostile := ctTar(t, true,
		tar.Header{Name: "../../../../../../../../" + host + "/evil", Linkname: "EVIL"},
		tar.Header{Name: host + "/abs", Linkname: "EVIL"},
		tar.Header{Name: "out", Typeflag: tar.TypeSymlink, Linkname: host},
		tar.Header{Name: "out/through", Linkname: "EVIL"},
	)
	tests := []struct {
		name   string
		file   []byte
		unpack bool
		to     string
		want   map[string]string
	}{
		{"gzip tar is extracted", good, true, "/x", map[string]string{"x/": "", "x/top/": "", "x/top/f": "F", "x/top/l": "-> f"}},
		{"plain tar is extracted", plain, true, "/x/", map[string]string{"x/": "", "x/p": "P"}},
		{"COPY does not extract", good, false, "/x/", map[string]string{"x/": "", "x/archive": string(good)}},
		{"not an archive is copied", []byte("just text"), true, "/x/", map[string]string{"x/": "", "x/archive": "just text"}},
		{"gzip of something else is copied", ctGz(t, "not a tar, just text, long enough to not be mistaken for a tar header"), true, "/x/", map[string]string{"x/": "", "x/archive": string(ctGz(t, "not a tar, just text, long enough to not be mistaken for a tar header"))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctxDir, destDir := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(ctxDir, "archive"), tt.file, 0o644); err != nil {
				t.Fatal(err)
			}
			s := ctContextSpec(t, ctxDir)
			s.Sources, s.DestRoot, s.Dest, s.Unpack = []string{"archive"}, destDir, tt.to, tt.unpack
			if err := Copy(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			ctDiff(t, ctReadTree(t, destDir), tt.want)
		})
	}

	t.Run("hostile tar stays inside", func(t *testing.T) {
		ctxDir, destDir := t.TempDir(), t.TempDir()
		if err := os.WriteFile(filepath.Join(ctxDir, "evil.tgz"), hostile, 0o644); err != nil {
			t.Fatal(err)
		}
		s := ctContextSpec(t, ctxDir)
		s.Sources, s.DestRoot, s.Dest, s.Unpack = []string{"evil.tgz"}, destDir, "/x/", true
		err := Copy(context.Background(), s)
		// The archive package cleans "../" and absolute names against
		// the directory and resolves the symlink inside it: whether it
		// refuses an entry or writes it inside, nothing gets out.
		t.Logf("Copy: %v", err)
		if ents, _ := os.ReadDir(host); len(ents) != 0 {
			t.Fatalf("wrote outside the target: %v", ents)
		}
		if err == nil {
			got := ctReadTree(t, destDir)
			for _, name := range []string{"evil", "abs", "through"} {
				p := "x" + host + "/" + name
				if got[p] != "EVIL" {
					t.Errorf("%s = %q, want the entry contained in the destination", p, got[p])
				}
			}
		}
	})
}

func ctGz(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCopyFromStage(t *testing.T) {
	stageDir, destDir := t.TempDir(), t.TempDir()
	ctMkTree(t, stageDir, map[string]string{"usr/bin/tool": "T", "bin": "-> usr/bin", "etc/link": "-> /usr/bin/tool"})
	tests := []struct {
		name    string
		sources []string
		to      string
		want    string // file at to
	}{
		{"through an absolute symlink inside the stage", []string{"/etc/link"}, "/a", "T"},
		{"through a symlinked directory", []string{"/bin/tool"}, "/b", "T"},
		{"dot-dot stops at the stage root", []string{"../../usr/bin/tool"}, "/c", "T"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := CopySpec{SrcRoot: stageDir, Sources: tt.sources, DestRoot: destDir, Dest: tt.to}
			if err := Copy(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(destDir, tt.to)); err != nil || string(b) != tt.want {
				t.Errorf("%s = %q, %v; want %q", tt.to, b, err, tt.want)
			}
		})
	}
	s := CopySpec{SrcRoot: stageDir, Sources: []string{"/nope"}, DestRoot: destDir, Dest: "/"}
	if err := Copy(context.Background(), s); !errdefs.IsNotFound(err) || strings.Contains(err.Error(), "dockerignore") {
		t.Errorf("missing stage file: got %v, want not found (without mentioning the context)", err)
	}
}

func TestCopyUnsupportedType(t *testing.T) {
	ctxDir, destDir := t.TempDir(), t.TempDir()
	ctMkTree(t, ctxDir, map[string]string{"d/f": "F"})
	if err := unix.Mkfifo(filepath.Join(ctxDir, "d/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := ctContextSpec(t, ctxDir)
	s.Sources, s.DestRoot, s.Dest = []string{"d"}, destDir, "/"
	err := Copy(context.Background(), s)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "d/fifo") {
		t.Errorf("fifo: got %v, want invalid argument naming d/fifo", err)
	}
	// Excluded, it is not looked at.
	ctWrite(t, filepath.Join(ctxDir, ".dockerignore"), "d/fifo\n")
	s = ctContextSpec(t, ctxDir)
	s.Sources, s.DestRoot, s.Dest = []string{"d"}, destDir, "/"
	if err := Copy(context.Background(), s); err != nil {
		t.Errorf("excluded fifo: %v", err)
	}
}

func TestCopyCanceled(t *testing.T) {
	ctxDir, destDir := t.TempDir(), t.TempDir()
	ctMkTree(t, ctxDir, map[string]string{"d/a": "A", "d/b": "B"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := ctContextSpec(t, ctxDir)
	s.Sources, s.DestRoot, s.Dest = []string{"d"}, destDir, "/"
	if err := Copy(ctx, s); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if _, err := SourceDigest(ctx, s); !errors.Is(err, context.Canceled) {
		t.Errorf("SourceDigest: got %v, want context.Canceled", err)
	}
}

func TestSourceDigest(t *testing.T) {
	base := map[string]string{
		".dockerignore": "*.log\nnode_modules\n",
		"a.txt":         "A",
		"d/b":           "B",
		"d/link":        "-> b",
		"x.log":         "L",
		"node_modules/": "",
		"other":         "O",
	}
	digestOf := func(t *testing.T, tree map[string]string, sources []string, mutate func(dir string)) string {
		t.Helper()
		dir := t.TempDir()
		ctMkTree(t, dir, tree)
		if mutate != nil {
			mutate(dir)
		}
		s := ctContextSpec(t, dir)
		s.Sources = sources
		d, err := SourceDigest(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	with := func(changes map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range changes {
			if v == "<delete>" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	sources := []string{"*.txt", "d", "."}
	ref := digestOf(t, base, sources, nil)

	tests := []struct {
		name   string
		tree   map[string]string
		mutate func(dir string)
		same   bool
	}{
		{"identical", base, nil, true},
		{"other mtimes", base, func(dir string) {
			old := time.Unix(1e9, 0)
			for _, p := range []string{"a.txt", "d/b", "d", "."} {
				os.Chtimes(filepath.Join(dir, p), old, old)
			}
		}, true},
		{"ignored file changed", with(map[string]string{"x.log": "changed"}), nil, true},
		{"ignored file added", with(map[string]string{"node_modules/pkg/index.js": "x"}), nil, true},
		{"content", with(map[string]string{"d/b": "b"}), nil, false},
		{"name", with(map[string]string{"d/b": "<delete>", "d/c": "B", "d/link": "-> c"}), nil, false},
		{"symlink target", with(map[string]string{"d/link": "-> a"}), nil, false},
		{"file added", with(map[string]string{"d/new": ""}), nil, false},
		{"mode", base, func(dir string) { os.Chmod(filepath.Join(dir, "d/b"), 0o600) }, false},
		{"directory mode", base, func(dir string) { os.Chmod(filepath.Join(dir, "d"), 0o700) }, false},
		{"file becomes a symlink", with(map[string]string{"other": "-> O"}), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := digestOf(t, tt.tree, sources, tt.mutate)
			if (got == ref) != tt.same {
				t.Errorf("digest same = %v, want %v", got == ref, tt.same)
			}
		})
	}

	t.Run("wildcard selection", func(t *testing.T) {
		a := digestOf(t, base, []string{"*.txt"}, nil)
		b := digestOf(t, with(map[string]string{"b.txt": "new"}), []string{"*.txt"}, nil)
		c := digestOf(t, with(map[string]string{"other": "changed"}), []string{"*.txt"}, nil)
		if a == b {
			t.Error("a new match did not change the digest")
		}
		if a != c {
			t.Error("a file the wildcard does not select changed the digest")
		}
	})
	t.Run("owners count outside the context", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("chown to other users needs root")
		}
		dir := t.TempDir()
		ctMkTree(t, dir, map[string]string{"f": "F"})
		s := CopySpec{SrcRoot: dir, Sources: []string{"f"}}
		d1, err := SourceDigest(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(dir, "f"), 7, 7); err != nil {
			t.Fatal(err)
		}
		d2, err := SourceDigest(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		s.FromContext = true
		d3, err := SourceDigest(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		os.Chown(filepath.Join(dir, "f"), 0, 0)
		d4, err := SourceDigest(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if d1 == d2 {
			t.Error("stage: owner change did not change the digest")
		}
		if d3 != d4 {
			t.Error("context: owner change changed the digest")
		}
	})
	t.Run("errors as Copy", func(t *testing.T) {
		dir := t.TempDir()
		ctMkTree(t, dir, base)
		s := ctContextSpec(t, dir)
		for src, kind := range map[string]error{"nope": errdefs.ErrNotFound, "*.go": errdefs.ErrNotFound, "x.log": errdefs.ErrNotFound, "../x": errdefs.ErrInvalidArgument} {
			s.Sources = []string{src}
			if _, err := SourceDigest(context.Background(), s); !errors.Is(err, kind) {
				t.Errorf("%s: got %v, want %v", src, err, kind)
			}
		}
	})
}
