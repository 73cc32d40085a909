package build

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/internal/atomicfile"
	"github.com/berthproject/berth/internal/flock"
	digest "github.com/opencontainers/go-digest"
)

// cache maps step keys to the images the steps made. An entry whose image
// is gone (removed, pruned) is a miss, so the cache needs no collection of
// its own beyond dropping such entries when it is written.
type cache struct {
	dir     string
	entries map[digest.Digest]digest.Digest
}

type cacheFile struct {
	Version int                             `json:"version"`
	Steps   map[digest.Digest]digest.Digest `json:"steps"`
}

func openCache(dir string) (*cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("build cache: %w", err)
	}
	c := &cache{dir: dir}
	m, err := c.read()
	if err != nil {
		return nil, err
	}
	c.entries = m
	return c, nil
}

func (c *cache) path() string { return filepath.Join(c.dir, "cache.json") }

func (c *cache) read() (map[digest.Digest]digest.Digest, error) {
	b, err := os.ReadFile(c.path())
	if errors.Is(err, fs.ErrNotExist) {
		return map[digest.Digest]digest.Digest{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("build cache: %w", err)
	}
	var f cacheFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 {
		// A damaged cache costs a rebuild, never a wrong image: start
		// over rather than refuse to build.
		return map[digest.Digest]digest.Digest{}, nil
	}
	if f.Steps == nil {
		f.Steps = map[digest.Digest]digest.Digest{}
	}
	return f.Steps, nil
}

func (c *cache) get(key digest.Digest) (digest.Digest, bool) {
	id, ok := c.entries[key]
	return id, ok
}

// put records a step under the cache lock, merging what concurrent builds
// wrote meanwhile.
func (c *cache) put(key, id digest.Digest) error {
	l, err := flock.Exclusive(filepath.Join(c.dir, "lock"))
	if err != nil {
		return err
	}
	defer l.Unlock()
	m, err := c.read()
	if err != nil {
		return err
	}
	m[key] = id
	c.entries[key] = id
	return c.write(m)
}

func (c *cache) write(m map[digest.Digest]digest.Digest) error {
	b, err := json.Marshal(cacheFile{Version: 1, Steps: m})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(c.path(), b, 0o600); err != nil {
		return fmt.Errorf("build cache: %w: %w", errdefs.ErrUnavailable, err)
	}
	return nil
}

// compact drops the entries whose image is gone. The images are listed
// after the entries are read, under the lock every put holds: a put
// follows the store of its image, so an entry read here whose image is
// not listed was removed, never one a concurrent build is making.
func (c *cache) compact(images func() (map[digest.Digest]bool, error)) error {
	l, err := flock.Exclusive(filepath.Join(c.dir, "lock"))
	if err != nil {
		return err
	}
	defer l.Unlock()
	m, err := c.read()
	if err != nil {
		return err
	}
	live, err := images()
	if err != nil {
		return err
	}
	n := len(m)
	for k, id := range m {
		if !live[id] {
			delete(m, k)
		}
	}
	if len(m) == n {
		return nil
	}
	return c.write(m)
}
