// Package volume keeps named volumes: directories that live outside any
// image or container, so that data survives the containers that use it.
//
// It owns the volumes and their metadata, not who uses them: whether a
// volume is in use, and filling a new one from an image, is the engine's.
//
// Layout on disk:
//
//	<root>/volumes/
//	  <name>/
//	    volume.json     name, created, labels, anonymous: written atomically,
//	                    last, so a volume without it is not one
//	    _data/          the volume's content (what containers mount)
package volume

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/internal/atomicfile"
	"github.com/berthproject/berth/internal/flock"
)

// Volume is a named volume.
type Volume struct {
	Name       string            `json:"Name"`
	Driver     string            `json:"Driver"`
	Mountpoint string            `json:"Mountpoint"`
	CreatedAt  time.Time         `json:"CreatedAt"`
	Labels     map[string]string `json:"Labels"`
	Options    map[string]string `json:"Options"`
	Scope      string            `json:"Scope"`
	// Anonymous volumes are made for an image's VOLUME paths and go with
	// their container (rm -v) or with volume prune.
	Anonymous bool `json:"Anonymous,omitempty"`
	// Initialized: the volume was filled from an image (or used) once;
	// Docker copies image content only into a volume never used before.
	Initialized bool `json:"Initialized,omitempty"`
}

// Store is the volumes under one root.
type Store struct {
	dir string
}

// Open opens the volume store under root (creating it).
func Open(root string) (*Store, error) {
	dir := filepath.Join(root, "volumes")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	return &Store{dir: dir}, nil
}

// validName is Docker's rule for volume names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidName reports whether s can name a volume (and is not a path).
func ValidName(s string) bool { return validName.MatchString(s) }

func (s *Store) lock() (*flock.Lock, error) {
	return flock.Exclusive(filepath.Join(s.dir, ".lock"))
}

func (s *Store) infoPath(name string) string { return filepath.Join(s.dir, name, "volume.json") }

// Create makes a volume (a random name when name is empty). Creating a
// volume that exists returns it, as Docker does.
func (s *Store) Create(name string, labels map[string]string, anonymous bool) (*Volume, error) {
	if name == "" {
		var b [32]byte
		rand.Read(b[:])
		name = hex.EncodeToString(b[:])
		anonymous = true
	}
	if !ValidName(name) {
		return nil, fmt.Errorf("volume name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed (and at least two characters): %w", name, errdefs.ErrInvalidArgument)
	}
	l, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	if v, err := s.get(name); err == nil {
		return v, nil
	} else if !errdefs.IsNotFound(err) {
		// A record that cannot be read is not replaced: that would lose
		// its labels and make the engine fill it from an image again.
		return nil, fmt.Errorf("create volume %s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Join(s.dir, name, "_data"), 0o755); err != nil {
		return nil, fmt.Errorf("create volume %s: %w", name, err)
	}
	v := &Volume{Name: name, Driver: "local", Mountpoint: filepath.Join(s.dir, name, "_data"), CreatedAt: time.Now().UTC(),
		Labels: labels, Options: map[string]string{}, Scope: "local", Anonymous: anonymous}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if err := s.write(v); err != nil {
		return nil, err
	}
	return v, nil
}

func (s *Store) write(v *Volume) error {
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.infoPath(v.Name), b, 0o600)
}

func (s *Store) get(name string) (*Volume, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("no such volume: %s: %w", name, errdefs.ErrNotFound)
	}
	b, err := os.ReadFile(s.infoPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no such volume: %s: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var v Volume
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("volume %s: %w: %w", name, errdefs.ErrDataLoss, err)
	}
	v.Mountpoint = filepath.Join(s.dir, name, "_data")
	return &v, nil
}

// Get returns the volume name.
func (s *Store) Get(name string) (*Volume, error) { return s.get(name) }

// MarkInitialized records that a volume was filled (or first used).
func (s *Store) MarkInitialized(name string) error {
	l, err := s.lock()
	if err != nil {
		return err
	}
	defer l.Unlock()
	v, err := s.get(name)
	if err != nil {
		return err
	}
	if v.Initialized {
		return nil
	}
	v.Initialized = true
	return s.write(v)
}

// List returns every volume, by name.
func (s *Store) List() ([]*Volume, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []*Volume
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		v, err := s.get(e.Name())
		if err != nil {
			continue // half made or half removed: not a volume
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes a volume and its data. The caller checks it is unused.
func (s *Store) Remove(name string) error {
	l, err := s.lock()
	if err != nil {
		return err
	}
	defer l.Unlock()
	if _, err := s.get(name); err != nil {
		return err
	}
	// volume.json goes first: from then on it is no volume, whatever
	// happens to the data.
	if err := os.Remove(s.infoPath(name)); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	if err := os.RemoveAll(filepath.Join(s.dir, name)); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// Size is the bytes of a volume's content.
func (s *Store) Size(name string) int64 {
	if !ValidName(name) {
		return 0
	}
	var n int64
	filepath.WalkDir(filepath.Join(s.dir, name, "_data"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
