package trust

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

// Attached is what is attached to one manifest: its signatures and the
// custody records whose subject it is (each a DSSE envelope, kept as the
// exact bytes signed and named by digest).
type Attached struct {
	Signatures []Signature `json:"signatures,omitempty"`
	Records    [][]byte    `json:"records,omitempty"`
}

// Empty says there is nothing attached.
func (a Attached) Empty() bool { return len(a.Signatures) == 0 && len(a.Records) == 0 }

// merge adds b's signatures and records that a lacks; it says whether
// anything was added.
func (a *Attached) merge(b Attached) bool {
	added := false
	have := map[string]bool{}
	for _, s := range a.Signatures {
		have[string(s.Payload)+"\x00"+string(s.Signature)] = true
	}
	for _, s := range b.Signatures {
		k := string(s.Payload) + "\x00" + string(s.Signature)
		if !have[k] {
			have[k] = true
			a.Signatures = append(a.Signatures, s)
			added = true
		}
	}
	recs := map[digest.Digest]bool{}
	for _, r := range a.Records {
		recs[digest.FromBytes(r)] = true
	}
	for _, r := range b.Records {
		if d := digest.FromBytes(r); !recs[d] {
			recs[d] = true
			a.Records = append(a.Records, r)
			added = true
		}
	}
	return added
}

// Evidence is where verification finds what is attached to a manifest:
// the local store, a registry, an archive being loaded. repository is a
// hint (the name the manifest was last known by, "" if none) for sources
// that look by name; what is returned need not be true, since every
// signature and record is checked.
type Evidence interface {
	Attached(repository string, subject digest.Digest) (Attached, error)
}

// Store keeps what is attached to manifests, beside the image store.
type Store struct {
	dir string
}

// OpenStore opens (creating) the store in dir (<root>/trust).
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "attached"), 0o700); err != nil {
		return nil, fmt.Errorf("trust store: %w", err)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path(d digest.Digest) string {
	return filepath.Join(s.dir, "attached", d.Algorithm().String(), d.Encoded()+".json")
}

// Attached is what the store holds for subject (nothing is not an error).
func (s *Store) Attached(_ string, subject digest.Digest) (Attached, error) {
	if err := subject.Validate(); err != nil {
		return Attached{}, fmt.Errorf("trust store: %q: %v: %w", subject, err, errdefs.ErrInvalidArgument)
	}
	b, err := os.ReadFile(s.path(subject))
	if errors.Is(err, fs.ErrNotExist) {
		return Attached{}, nil
	}
	if err != nil {
		return Attached{}, fmt.Errorf("trust store: %w", err)
	}
	var a Attached
	if err := json.Unmarshal(b, &a); err != nil {
		return Attached{}, fmt.Errorf("trust store: %s: %v: %w", s.path(subject), err, errdefs.ErrDataLoss)
	}
	return a, nil
}

// Add attaches a's signatures and records to subject, keeping what is
// there: the file is replaced atomically under the store's lock.
func (s *Store) Add(subject digest.Digest, a Attached) error {
	if err := subject.Validate(); err != nil {
		return fmt.Errorf("trust store: %q: %v: %w", subject, err, errdefs.ErrInvalidArgument)
	}
	if a.Empty() {
		return nil
	}
	l, err := flock.Exclusive(filepath.Join(s.dir, "lock"))
	if err != nil {
		return fmt.Errorf("trust store: %w", err)
	}
	defer l.Unlock()
	cur, err := s.Attached("", subject)
	if err != nil {
		return err
	}
	if !cur.merge(a) {
		return nil
	}
	b, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path(subject)), 0o700); err != nil {
		return fmt.Errorf("trust store: %w", err)
	}
	if err := atomicfile.WriteFile(s.path(subject), b, 0o600); err != nil {
		return fmt.Errorf("trust store: %w", err)
	}
	return nil
}

// AddAll adds what several manifests have attached.
func (s *Store) AddAll(m map[digest.Digest]Attached) error {
	for d, a := range m {
		if err := s.Add(d, a); err != nil {
			return err
		}
	}
	return nil
}

// Evidences is several sources of evidence asked in turn, all answers merged.
type Evidences []Evidence

// Attached merges what each source has; a source that fails is skipped
// when another answered, since evidence is checked anyway.
func (es Evidences) Attached(repository string, subject digest.Digest) (Attached, error) {
	var out Attached
	var firstErr error
	ok := false
	for _, e := range es {
		a, err := e.Attached(repository, subject)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		ok = true
		out.merge(a)
	}
	if !ok && firstErr != nil {
		return Attached{}, firstErr
	}
	return out, nil
}

// Collected is evidence held in memory: what an archive carried, or what
// a pull fetched, to be stored once the image is.
type Collected map[digest.Digest]Attached

// Attached is what was collected for subject.
func (c Collected) Attached(_ string, subject digest.Digest) (Attached, error) {
	return c[subject], nil
}

// Add collects a for subject.
func (c Collected) Add(subject digest.Digest, a Attached) {
	cur := c[subject]
	cur.merge(a)
	c[subject] = cur
}
