package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/internal/atomicfile"
	"github.com/berthproject/berth/internal/flock"
	"golang.org/x/sys/unix"
)

// store is the metadata both drivers share: one directory per snapshot,
// its info.json the single source of truth, changed under one lock.
type store struct {
	root   string
	driver string
}

type record struct {
	id string
	Info
}

func newStore(root, driver string) (*store, error) {
	for _, d := range []string{"snapshots", "removing"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("snapshotter %s: %w", root, err)
		}
	}
	s := &store{root: root, driver: driver}
	s.sweepRemoving()
	return s, nil
}

func (s *store) Driver() string { return s.driver }

func (s *store) lock() (*flock.Lock, error) {
	return flock.Exclusive(filepath.Join(s.root, "lock"))
}

func (s *store) dir(id string) string     { return filepath.Join(s.root, "snapshots", id) }
func (s *store) fsDir(id string) string   { return filepath.Join(s.dir(id), "fs") }
func (s *store) workDir(id string) string { return filepath.Join(s.dir(id), "work") }

// scan reads every snapshot's info. Readers need no lock: info.json is
// replaced atomically, and a directory whose info.json is not there yet is
// a Prepare in progress, not a snapshot.
func (s *store) scan() (map[string]*record, []string, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "snapshots"))
	if err != nil {
		return nil, nil, fmt.Errorf("list snapshots: %w", err)
	}
	recs := map[string]*record{}
	var broken []string
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), newPrefix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir(e.Name()), "info.json"))
		if errors.Is(err, fs.ErrNotExist) {
			broken = append(broken, e.Name())
			continue
		}
		r := &record{id: e.Name()}
		if err != nil || json.Unmarshal(b, &r.Info) != nil || r.Name == "" {
			broken = append(broken, e.Name())
			continue
		}
		if prev, dup := recs[r.Name]; dup {
			// Only a bug could commit one name twice; keep the older.
			if prev.Created.Before(r.Created) {
				broken = append(broken, r.id)
				continue
			}
			broken = append(broken, prev.id)
		}
		recs[r.Name] = r
	}
	return recs, broken, nil
}

func (s *store) get(key string) (*record, map[string]*record, error) {
	recs, _, err := s.scan()
	if err != nil {
		return nil, nil, err
	}
	r, ok := recs[key]
	if !ok {
		return nil, recs, fmt.Errorf("snapshot %s: %w", key, errdefs.ErrNotFound)
	}
	return r, recs, nil
}

func (s *store) writeInfo(id string, info Info) error {
	b, err := json.MarshalIndent(info, "", "\t")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(s.dir(id), "info.json"), b, 0o600)
}

// newID picks a fresh short id (short, because an overlay mount names
// every layer in one page of options).
func (s *store) newID() (string, error) {
	for i := 0; i < 16; i++ {
		var b [4]byte
		rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		if _, err := os.Lstat(s.dir(id)); errors.Is(err, fs.ErrNotExist) {
			return id, nil
		}
	}
	return "", errors.New("new snapshot: no free id")
}

// newPrefix names directories being made: a snapshot is assembled under
// it and renamed into place with its info.json, so snapshots/<id> always
// has one, whenever a process dies.
const newPrefix = ".new-"

// create reserves key with the info given, after checking the parent. It
// returns the record and the parent chain (top first).
func (s *store) create(key, parent string, kind Kind, opts []Opt, mkdirs ...string) (*record, []*record, error) {
	if key == "" {
		return nil, nil, fmt.Errorf("snapshot key is empty: %w", errdefs.ErrInvalidArgument)
	}
	l, err := s.lock()
	if err != nil {
		return nil, nil, err
	}
	defer l.Unlock()
	recs, _, err := s.scan()
	if err != nil {
		return nil, nil, err
	}
	if _, ok := recs[key]; ok {
		return nil, nil, fmt.Errorf("snapshot %s: %w", key, errdefs.ErrAlreadyExists)
	}
	var chain []*record
	if parent != "" {
		p, ok := recs[parent]
		if !ok {
			return nil, nil, fmt.Errorf("parent snapshot %s: %w", parent, errdefs.ErrNotFound)
		}
		if p.Kind != KindCommitted {
			return nil, nil, fmt.Errorf("parent snapshot %s is %s, not committed: %w", parent, p.Kind, errdefs.ErrFailedPrecondition)
		}
		if chain, err = chainOf(p, recs); err != nil {
			return nil, nil, err
		}
	}
	id, err := s.newID()
	if err != nil {
		return nil, nil, err
	}
	tmp := filepath.Join(s.root, "snapshots", newPrefix+id)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, nil, fmt.Errorf("new snapshot: %w", err)
	}
	for _, d := range mkdirs {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			os.RemoveAll(tmp)
			return nil, nil, fmt.Errorf("new snapshot: %w", err)
		}
	}
	info := Info{Name: key, Parent: parent, Kind: kind, Created: time.Now().UTC()}
	for _, o := range opts {
		o(&info)
	}
	b, err := json.MarshalIndent(info, "", "\t")
	if err != nil {
		os.RemoveAll(tmp)
		return nil, nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, "info.json"), b, 0o600); err != nil {
		os.RemoveAll(tmp)
		return nil, nil, err
	}
	if err := os.Rename(tmp, s.dir(id)); err != nil {
		os.RemoveAll(tmp)
		return nil, nil, fmt.Errorf("new snapshot: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Join(s.root, "snapshots")); err != nil {
		return nil, nil, err
	}
	return &record{id: id, Info: info}, chain, nil
}

// chainOf returns r and its ancestors, top first.
func chainOf(r *record, recs map[string]*record) ([]*record, error) {
	var chain []*record
	seen := map[string]bool{}
	for cur := r; ; {
		if seen[cur.Name] {
			return nil, fmt.Errorf("snapshot %s: its parent chain loops: %w", r.Name, errdefs.ErrDataLoss)
		}
		seen[cur.Name] = true
		chain = append(chain, cur)
		if cur.Parent == "" {
			return chain, nil
		}
		p, ok := recs[cur.Parent]
		if !ok {
			return nil, fmt.Errorf("snapshot %s: parent %s is missing: %w", cur.Name, cur.Parent, errdefs.ErrDataLoss)
		}
		cur = p
	}
}

func (s *store) Stat(ctx context.Context, key string) (Info, error) {
	r, _, err := s.get(key)
	if err != nil {
		return Info{}, err
	}
	return r.Info, nil
}

func (s *store) Walk(ctx context.Context, fn func(Info) error) error {
	recs, _, err := s.scan()
	if err != nil {
		return err
	}
	names := make([]string, 0, len(recs))
	for n := range recs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(recs[n].Info); err != nil {
			return err
		}
	}
	return nil
}

// commit makes an active snapshot a committed one: its content is
// measured and made durable before the record says so, and the record's
// atomic rewrite is the commit point.
func (s *store) commit(ctx context.Context, name, key string, rebase *string, opts []Opt) error {
	r, _, err := s.get(key)
	if err != nil {
		return err
	}
	if r.Kind != KindActive {
		return fmt.Errorf("commit %s: snapshot is %s, not active: %w", key, r.Kind, errdefs.ErrFailedPrecondition)
	}
	usage, err := diskUsage(s.fsDir(r.id))
	if err != nil {
		return fmt.Errorf("commit %s: %w", key, err)
	}
	if err := syncDir(s.fsDir(r.id)); err != nil {
		return fmt.Errorf("commit %s: %w", key, err)
	}
	l, err := s.lock()
	if err != nil {
		return err
	}
	defer l.Unlock()
	r, recs, err := s.get(key)
	if err != nil {
		return err
	}
	if _, ok := recs[name]; ok {
		return fmt.Errorf("snapshot %s: %w", name, errdefs.ErrAlreadyExists)
	}
	info := r.Info
	info.Name, info.Kind, info.Size, info.Inodes = name, KindCommitted, usage.Size, usage.Inodes
	info.Created = time.Now().UTC()
	if rebase != nil {
		if r.Parent != "" {
			return fmt.Errorf("commit %s onto %s: it was prepared on %s: %w", key, *rebase, r.Parent, errdefs.ErrFailedPrecondition)
		}
		if *rebase != "" {
			p, ok := recs[*rebase]
			if !ok {
				return fmt.Errorf("commit %s: parent snapshot %s: %w", key, *rebase, errdefs.ErrNotFound)
			}
			if p.Kind != KindCommitted {
				return fmt.Errorf("commit %s: parent snapshot %s is not committed: %w", key, *rebase, errdefs.ErrFailedPrecondition)
			}
		}
		info.Parent = *rebase
	}
	for _, o := range opts {
		o(&info)
	}
	if err := s.writeInfo(r.id, info); err != nil {
		return err
	}
	os.RemoveAll(s.workDir(r.id))
	return nil
}

func (s *store) Remove(ctx context.Context, key string) error {
	l, err := s.lock()
	if err != nil {
		return err
	}
	r, recs, err := s.get(key)
	if err != nil {
		l.Unlock()
		return err
	}
	for _, o := range recs {
		if o.Parent == key {
			l.Unlock()
			return fmt.Errorf("remove snapshot %s: it is the parent of %s: %w", key, o.Name, errdefs.ErrFailedPrecondition)
		}
	}
	// Renaming out of snapshots/ is the commit point: from here on the
	// snapshot does not exist, whatever happens to the deletion.
	gone := filepath.Join(s.root, "removing", r.id)
	if err := os.Rename(s.dir(r.id), gone); err != nil {
		l.Unlock()
		return fmt.Errorf("remove snapshot %s: %w", key, err)
	}
	atomicfile.SyncDir(filepath.Join(s.root, "snapshots"))
	l.Unlock()
	if err := removeTree(gone); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", key, err)
	}
	return nil
}

// sweepRemoving finishes deletions a killed process left, and removes
// snapshots it was still assembling.
func (s *store) sweepRemoving() {
	ents, _ := os.ReadDir(filepath.Join(s.root, "removing"))
	snaps, _ := os.ReadDir(filepath.Join(s.root, "snapshots"))
	var partial []string
	for _, e := range snaps {
		if strings.HasPrefix(e.Name(), newPrefix) {
			partial = append(partial, filepath.Join(s.root, "snapshots", e.Name()))
		}
	}
	if len(ents) == 0 && len(partial) == 0 {
		return
	}
	// Under the lock no create is assembling: every .new- directory is
	// a dead one's.
	l, err := flock.TryExclusive(filepath.Join(s.root, "lock"))
	if err != nil {
		return
	}
	defer l.Unlock()
	for _, e := range ents {
		removeTree(filepath.Join(s.root, "removing", e.Name()))
	}
	for _, p := range partial {
		removeTree(p)
	}
}

func (s *store) Usage(ctx context.Context, key string) (Usage, error) {
	r, _, err := s.get(key)
	if err != nil {
		return Usage{}, err
	}
	if r.Kind == KindCommitted {
		return Usage{Size: r.Size, Inodes: r.Inodes}, nil
	}
	return diskUsage(s.fsDir(r.id))
}

// check reports structural problems; needFS says which kinds must have a
// content directory.
func (s *store) check(ctx context.Context, needFS func(Kind) bool) ([]Problem, error) {
	recs, broken, err := s.scan()
	if err != nil {
		return nil, err
	}
	var out []Problem
	for _, id := range broken {
		id := id
		out = append(out, Problem{Snapshot: "id " + id, What: "no readable info.json (an interrupted prepare, or damage)", Repair: func(context.Context) error {
			return s.removeID(id)
		}})
	}
	names := make([]string, 0, len(recs))
	for n := range recs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := recs[n]
		if _, err := chainOf(r, recs); err != nil {
			out = append(out, Problem{Snapshot: n, What: err.Error(), Repair: s.removeWithChildren(n)})
			continue
		}
		if r.Parent != "" && recs[r.Parent].Kind != KindCommitted {
			out = append(out, Problem{Snapshot: n, What: fmt.Sprintf("parent %s is %s, not committed", r.Parent, recs[r.Parent].Kind), Repair: s.removeWithChildren(n)})
			continue
		}
		if needFS(r.Kind) {
			if fi, err := os.Stat(s.fsDir(r.id)); err != nil || !fi.IsDir() {
				out = append(out, Problem{Snapshot: n, What: "content directory is missing", Repair: s.removeWithChildren(n)})
			}
		}
	}
	return out, nil
}

func (s *store) removeID(id string) error {
	l, err := s.lock()
	if err != nil {
		return err
	}
	gone := filepath.Join(s.root, "removing", id)
	err = os.Rename(s.dir(id), gone)
	l.Unlock()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return removeTree(gone)
}

// removeWithChildren returns a repair that removes name and every
// snapshot built on it, children first.
func (s *store) removeWithChildren(name string) func(context.Context) error {
	return func(ctx context.Context) error {
		recs, _, err := s.scan()
		if err != nil {
			return err
		}
		var order []string
		var visit func(n string)
		visit = func(n string) {
			for _, r := range recs {
				if r.Parent == n {
					visit(r.Name)
				}
			}
			order = append(order, n)
		}
		visit(name)
		for _, n := range order {
			if r, ok := recs[n]; ok {
				if err := s.removeID(r.id); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// diskUsage measures the content under dir: bytes of regular files and
// symlinks (hard links counted once) and the number of entries.
func diskUsage(dir string) (Usage, error) {
	var u Usage
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		u.Inodes++
		if d.IsDir() {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		if m := st.Mode & unix.S_IFMT; m == unix.S_IFREG || m == unix.S_IFLNK {
			u.Size += st.Size
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return u, nil
	}
	return u, err
}

// syncDir makes everything written on dir's file system durable (syncfs:
// one call, instead of an fsync per file of the layer).
func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// removeTree deletes a snapshot directory, unmounting anything a crashed
// process left mounted inside it first.
func removeTree(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil {
		return nil
	}
	// Entries made unwritable by a layer (a 0555 directory) stop an
	// unprivileged RemoveAll: make directories writable and retry.
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
