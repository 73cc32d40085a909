package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/errdefs"
)

func TestContextExcluded(t *testing.T) {
	tests := []struct {
		name     string
		ignore   string
		excluded []string
		included []string
	}{
		{
			name:     "none",
			ignore:   "",
			included: []string{"a", "b/c", ".dockerignore"},
		},
		{
			name:     "plain and comments",
			ignore:   "# comment\n*.log\n/secret\n",
			excluded: []string{"a.log", "secret", "secret/key", "secret/sub/key"},
			included: []string{"sub/a.log", "a.txt", "secrets", ""},
		},
		{
			name:     "double star",
			ignore:   "**/*.log\n",
			excluded: []string{"a.log", "sub/a.log", "sub/deep/a.log"},
			included: []string{"sub/a.txt"},
		},
		{
			name:     "re-include",
			ignore:   "*.log\n!keep.log\nbuild\n!build/out\n",
			excluded: []string{"a.log", "build", "build/tmp/x"},
			included: []string{"keep.log", "build/out", "build/out/bin"},
		},
		{
			name:     "last pattern wins",
			ignore:   "!a.log\n*.log\n",
			excluded: []string{"a.log"},
		},
		{
			name:     "dockerignore itself",
			ignore:   ".dockerignore\nDockerfile\n",
			excluded: []string{".dockerignore", "Dockerfile"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.ignore != "" {
				ctWrite(t, filepath.Join(dir, ".dockerignore"), tt.ignore)
			}
			c, err := OpenContext(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tt.excluded {
				if !c.Excluded(p) {
					t.Errorf("Excluded(%q) = false, want true", p)
				}
			}
			for _, p := range tt.included {
				if c.Excluded(p) {
					t.Errorf("Excluded(%q) = true, want false", p)
				}
			}
		})
	}
}

func TestContextSkipDir(t *testing.T) {
	dir := t.TempDir()
	ctWrite(t, filepath.Join(dir, ".dockerignore"), "node_modules\nbuild\n!build/out\ncache\n!**/keep\nvendor\n")
	c, err := OpenContext(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dir  string
		skip bool
	}{
		{"src", false},          // not excluded
		{"build", false},        // excluded, but build/out is re-included
		{"node_modules", false}, // "!**/keep" could match below any directory
		{"build/out", false},
	}
	for _, tt := range tests {
		if got := c.SkipDir(tt.dir); got != tt.skip {
			t.Errorf("SkipDir(%q) = %v, want %v", tt.dir, got, tt.skip)
		}
	}

	// Without a "**" re-include, excluded directories are pruned.
	ctWrite(t, filepath.Join(dir, ".dockerignore"), "node_modules\nbuild\n!build/out\n!src/*.go\n")
	if c, err = OpenContext(dir, ""); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]bool{"node_modules": true, "build": false, "build/tmp": true, "src": false, "other": false} {
		if got := c.SkipDir(d); got != want {
			t.Errorf("SkipDir(%q) = %v, want %v", d, got, want)
		}
	}
}

func TestContextIgnoreFilePrecedence(t *testing.T) {
	dir := t.TempDir()
	ctWrite(t, filepath.Join(dir, ".dockerignore"), "from-dot\n")
	ctWrite(t, filepath.Join(dir, "Dockerfile"), "FROM scratch\n")
	ctWrite(t, filepath.Join(dir, "Dockerfile.dockerignore"), "from-dockerfile\n")
	elsewhere := t.TempDir()
	ctWrite(t, filepath.Join(elsewhere, "app.Dockerfile"), "FROM scratch\n")
	ctWrite(t, filepath.Join(elsewhere, "app.Dockerfile.dockerignore"), "from-elsewhere\n")

	tests := []struct {
		name       string
		dockerfile string
		excluded   string
		included   []string
		file       string
	}{
		{"no dockerfile", "", "from-dot", []string{"from-dockerfile", "from-elsewhere"}, filepath.Join(dir, ".dockerignore")},
		{"dockerfile's own wins", filepath.Join(dir, "Dockerfile"), "from-dockerfile", []string{"from-dot"}, filepath.Join(dir, "Dockerfile.dockerignore")},
		{"dockerfile outside the context", filepath.Join(elsewhere, "app.Dockerfile"), "from-elsewhere", []string{"from-dot", "from-dockerfile"}, filepath.Join(elsewhere, "app.Dockerfile.dockerignore")},
		{"dockerfile without its own", filepath.Join(elsewhere, "Other.Dockerfile"), "from-dot", []string{"from-elsewhere"}, filepath.Join(dir, ".dockerignore")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := OpenContext(dir, tt.dockerfile)
			if err != nil {
				t.Fatal(err)
			}
			if c.IgnoreFile != tt.file {
				t.Errorf("IgnoreFile = %q, want %q", c.IgnoreFile, tt.file)
			}
			if !c.Excluded(tt.excluded) {
				t.Errorf("Excluded(%q) = false, want true", tt.excluded)
			}
			for _, p := range tt.included {
				if c.Excluded(p) {
					t.Errorf("Excluded(%q) = true, want false", p)
				}
			}
		})
	}
}

func TestOpenContextErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenContext(filepath.Join(dir, "missing"), ""); !errdefs.IsNotFound(err) {
		t.Errorf("missing context: got %v, want not found", err)
	}
	ctWrite(t, filepath.Join(dir, "file"), "x")
	if _, err := OpenContext(filepath.Join(dir, "file"), ""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("file as context: got %v, want invalid argument", err)
	}
	bad := t.TempDir()
	ctWrite(t, filepath.Join(bad, ".dockerignore"), "[\n")
	if _, err := OpenContext(bad, ""); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), ".dockerignore") {
		t.Errorf("bad pattern: got %v, want invalid argument naming .dockerignore", err)
	}
	if c, err := OpenContext(t.TempDir(), ""); err != nil || c.IgnoreFile != "" || c.Excluded("x") {
		t.Errorf("no ignore file: got %+v, %v", c, err)
	}
}

func ctWrite(t *testing.T, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
