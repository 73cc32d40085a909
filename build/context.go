package build

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/berthproject/berth/errdefs"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// Context is a build context directory with its .dockerignore applied.
//
// As in Docker, the .dockerignore and the Dockerfile themselves are still
// read by the builder when they are excluded; exclusions only apply to what
// COPY and ADD can see, where an excluded path is "not found".
type Context struct {
	// Dir is the context directory, absolute and clean.
	Dir string
	// IgnoreFile is the ignore file that was read ("" when there is none).
	IgnoreFile string

	// mu guards pm: a PatternMatcher compiles its patterns lazily and is
	// not safe for concurrent use.
	mu sync.Mutex
	pm *patternmatcher.PatternMatcher
}

// OpenContext opens the build context dir. Its exclusions are read from
// <dockerfile>.dockerignore next to the Dockerfile when that file exists
// (BuildKit's rule: "Dockerfile.dev" uses "Dockerfile.dev.dockerignore"),
// else from dir/.dockerignore; dockerfile may be "" or outside dir, and a
// relative dockerfile is relative to the working directory, as -f is.
func OpenContext(dir, dockerfile string) (*Context, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("build context %s: %w", dir, err)
	}
	st, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("build context %s: directory does not exist: %w", dir, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("build context %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("build context %s: not a directory: %w", dir, errdefs.ErrInvalidArgument)
	}
	c := &Context{Dir: abs}

	candidates := []string{filepath.Join(abs, ".dockerignore")}
	if dockerfile != "" {
		df, err := filepath.Abs(dockerfile)
		if err != nil {
			return nil, fmt.Errorf("build context %s: dockerfile %s: %w", dir, dockerfile, err)
		}
		candidates = append([]string{df + ".dockerignore"}, candidates...)
	}
	for _, name := range candidates {
		patterns, err := readIgnoreFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("build context %s: %w", dir, err)
		}
		pm, err := patternmatcher.New(patterns)
		if err != nil {
			return nil, fmt.Errorf("build context %s: %s: %w: %w", dir, name, errdefs.ErrInvalidArgument, err)
		}
		c.IgnoreFile, c.pm = name, pm
		break
	}
	return c, nil
}

func readIgnoreFile(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory: %w", name, errdefs.ErrInvalidArgument)
	}
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return patterns, nil
}

// cleanRel normalises a context-relative path for matching: slash
// separated, clean, without a leading "/"; "" is the root.
func cleanRel(rel string) string {
	rel = strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(rel)), "/")
	return rel
}

// Excluded reports whether rel (a slash-separated path relative to the
// context root) is excluded by .dockerignore, itself or through one of its
// parent directories, unless a later "!" pattern re-includes it. The root
// is never excluded.
func (c *Context) Excluded(rel string) bool {
	if c == nil || c.pm == nil {
		return false
	}
	rel = cleanRel(rel)
	if rel == "" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.pm.MatchesOrParentMatches(rel)
	if err != nil {
		// New checked every pattern's syntax, so this does not happen;
		// if it does, fail closed: a file the user meant to keep out of
		// the image must not get in because a pattern could not be applied.
		return true
	}
	return m
}

// SkipDir reports whether the directory rel is excluded together with
// everything below it, so that a walk need not look inside: it is excluded
// and no "!" pattern can match anything below it. It is conservative (a
// "!" pattern with "**" keeps every excluded directory it could reach
// walkable), so a walk that prunes with it sees exactly what one that asks
// Excluded of every path sees, only faster.
func (c *Context) SkipDir(rel string) bool {
	if !c.Excluded(rel) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.pm.Exclusions() {
		return true
	}
	dir := strings.Split(cleanRel(rel), "/")
	for _, p := range c.pm.Patterns() {
		if p.Exclusion() && mayMatchBelow(strings.Split(filepath.ToSlash(p.String()), "/"), dir) {
			return false
		}
	}
	return true
}

// mayMatchBelow reports whether the pattern (split in components) could
// match dir or something below it: every component they both have matches,
// or the pattern reaches a "**" first. A pattern shorter than dir that
// matches its first components names a parent of dir, and a "!" pattern on
// a parent re-includes what is below it.
func mayMatchBelow(pattern, dir []string) bool {
	for i := 0; i < len(pattern) && i < len(dir); i++ {
		if strings.Contains(pattern[i], "**") {
			return true
		}
		if ok, err := path.Match(pattern[i], dir[i]); err != nil || !ok {
			return err != nil // a pattern we cannot read: do not prune
		}
	}
	return true
}
