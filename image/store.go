package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/internal/atomicfile"
	"github.com/berthproject/berth/internal/flock"
	"github.com/berthproject/berth/snapshot"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options configure a Store.
type Options struct {
	// Root is the state directory.
	Root string
	// RunRoot holds what does not survive a reboot (image mount points).
	RunRoot string
	// Driver picks the snapshot driver of a new store ("overlay", "vfs";
	// empty: overlay where it works). An existing store keeps its own.
	Driver string
	// Users, when set, lists the containers that use an image, so that
	// removal can refuse and garbage collection keep it.
	Users func(ctx context.Context, id digest.Digest) ([]string, error)
	// MaxLayerRatio bounds how far a layer may expand when decompressed
	// (uncompressed bytes per compressed byte, with a floor of 1 GiB);
	// 0 means 1000, above what gzip can reach and far below a zstd bomb.
	MaxLayerRatio int64
}

// Store is the local image store.
type Store struct {
	root     string
	runRoot  string
	content  *content.Local
	snaps    snapshot.Snapshotter
	users    func(ctx context.Context, id digest.Digest) ([]string, error)
	maxRatio int64
}

// Image is the record of one stored image. Its ID is its config's digest,
// as Docker's is.
type Image struct {
	ID digest.Digest `json:"id"`
	// Names are full references with a tag (docker.io/library/busybox:latest).
	Names []string `json:"names,omitempty"`
	// Digests are name@manifest-digest references the image is known by.
	Digests []string `json:"digests,omitempty"`
	// Manifest is the image's manifest (for one platform).
	Manifest ocispec.Descriptor `json:"manifest"`
	// Index is the index or manifest list Manifest was chosen from, kept
	// with all of its platforms' descriptors.
	Index *ocispec.Descriptor `json:"index,omitempty"`
	// ChainID names the top layer's snapshot ("" for an image without layers).
	ChainID digest.Digest `json:"chainID,omitempty"`
	// Created is the config's creation time.
	Created time.Time `json:"created"`
	// Added is when the image was stored or last tagged.
	Added time.Time `json:"added"`
	// Size is the unpacked size of all layers.
	Size int64 `json:"size"`
	// Parent is the image this one was made from in this store (by build
	// or commit), as Docker records it; "" for pulled and loaded images.
	Parent digest.Digest `json:"parent,omitempty"`
}

type records struct {
	Images []Image `json:"images"`
}

// Open opens or creates the store described by o.
func Open(o Options) (*Store, error) {
	if o.Root == "" {
		return nil, fmt.Errorf("image store: no root directory: %w", errdefs.ErrInvalidArgument)
	}
	for _, d := range []string{"image", "snapshot"} {
		if err := os.MkdirAll(filepath.Join(o.Root, d), 0o700); err != nil {
			return nil, fmt.Errorf("image store %s: %w", o.Root, err)
		}
	}
	cs, err := content.NewLocal(filepath.Join(o.Root, "content"))
	if err != nil {
		return nil, err
	}
	driver, err := chooseDriver(o.Root, o.Driver)
	if err != nil {
		return nil, err
	}
	var sn snapshot.Snapshotter
	dir := filepath.Join(o.Root, "snapshot", driver)
	switch driver {
	case "overlay":
		sn, err = snapshot.NewOverlay(dir)
	case "vfs":
		sn, err = snapshot.NewVFS(dir)
	default:
		err = fmt.Errorf("unknown storage driver %q (berth has overlay and vfs): %w", driver, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return nil, err
	}
	ratio := o.MaxLayerRatio
	if ratio <= 0 {
		ratio = 1000
	}
	runRoot := o.RunRoot
	if runRoot == "" {
		runRoot = filepath.Join(o.Root, "run")
	}
	return &Store{root: o.Root, runRoot: runRoot, content: cs, snaps: sn, users: o.Users, maxRatio: ratio}, nil
}

// chooseDriver returns the store's snapshot driver, deciding it on first
// use: switching drivers later would orphan every unpacked layer.
func chooseDriver(root, want string) (string, error) {
	p := filepath.Join(root, "driver")
	b, err := os.ReadFile(p)
	if err == nil {
		have := strings.TrimSpace(string(b))
		if want != "" && want != have {
			return "", fmt.Errorf("the store at %s uses the %s storage driver, not %s: use --storage-driver %s, or another --root: %w", root, have, want, have, errdefs.ErrFailedPrecondition)
		}
		return have, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("image store %s: %w", root, err)
	}
	l, err := flock.Exclusive(filepath.Join(root, "image", "lock"))
	if err != nil {
		return "", err
	}
	defer l.Unlock()
	if b, err := os.ReadFile(p); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	driver := want
	if driver == "" {
		driver = "vfs"
		if snapshot.OverlaySupported(filepath.Join(root, "snapshot")) == nil {
			driver = "overlay"
		}
	}
	if err := atomicfile.WriteFile(p, []byte(driver+"\n"), 0o600); err != nil {
		return "", err
	}
	return driver, nil
}

// Content is the store's blob store.
func (s *Store) Content() *content.Local { return s.content }

// Snapshots is the store's snapshotter.
func (s *Store) Snapshots() snapshot.Snapshotter { return s.snaps }

// Root is the store's state directory.
func (s *Store) Root() string { return s.root }

// Driver names the snapshot driver.
func (s *Store) Driver() string { return s.snaps.Driver() }

// Writing marks the caller as a writer for garbage collection, for work
// that spans several store calls (a build, whose snapshots and images in
// the making are not yet referenced): while release is not called, no
// collection runs.
func (s *Store) Writing(ctx context.Context) (release func(), err error) { return s.writing(ctx) }

// writing marks the caller as a writer for garbage collection: while the
// returned release is not called, no collection runs.
func (s *Store) writing(ctx context.Context) (func(), error) {
	l, err := flock.Shared(filepath.Join(s.root, "gc.lock"))
	if err != nil {
		return nil, err
	}
	return func() { l.Unlock() }, nil
}

func (s *Store) recordsPath() string { return filepath.Join(s.root, "image", "images.json") }

// load reads the records; no lock is needed, the file is only ever
// replaced whole.
func (s *Store) load() (*records, error) {
	b, err := os.ReadFile(s.recordsPath())
	if errors.Is(err, fs.ErrNotExist) {
		return &records{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read image records: %w", err)
	}
	var r records
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("image records %s are damaged: %w: %w", s.recordsPath(), errdefs.ErrDataLoss, err)
	}
	return &r, nil
}

// update changes the records under the records lock and writes them back
// atomically.
func (s *Store) update(fn func(r *records) error) error {
	l, err := flock.Exclusive(filepath.Join(s.root, "image", "lock"))
	if err != nil {
		return err
	}
	defer l.Unlock()
	r, err := s.load()
	if err != nil {
		return err
	}
	if err := fn(r); err != nil {
		return err
	}
	sort.Slice(r.Images, func(i, j int) bool { return r.Images[i].ID < r.Images[j].ID })
	b, err := json.MarshalIndent(r, "", "\t")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.recordsPath(), b, 0o600)
}

// List returns every image.
func (s *Store) List(ctx context.Context) ([]Image, error) {
	r, err := s.load()
	if err != nil {
		return nil, err
	}
	return r.Images, nil
}

// NotFoundError names the image that is not there.
type NotFoundError struct{ Ref string }

func (e *NotFoundError) Error() string { return "no such image: " + e.Ref }
func (e *NotFoundError) Unwrap() error { return errdefs.ErrNotFound }

// Get finds an image by name (busybox, busybox:1.36, name@sha256:...),
// full ID (sha256:...), or unique ID prefix, as Docker does.
func (s *Store) Get(ctx context.Context, ref string) (Image, error) {
	r, err := s.load()
	if err != nil {
		return Image{}, err
	}
	i, err := find(r, ref)
	if err != nil {
		return Image{}, err
	}
	return r.Images[i], nil
}

// find returns the index of the record ref names.
func find(r *records, ref string) (int, error) {
	id := strings.TrimPrefix(ref, "sha256:")
	if isHexPrefix(id) {
		match := -1
		for i, img := range r.Images {
			if strings.HasPrefix(img.ID.Encoded(), id) {
				if match >= 0 {
					return -1, fmt.Errorf("image ID prefix %q is ambiguous: %w", ref, errdefs.ErrInvalidArgument)
				}
				match = i
			}
		}
		if match >= 0 {
			return match, nil
		}
		if strings.HasPrefix(ref, "sha256:") || len(id) == 64 {
			return -1, &NotFoundError{Ref: ref}
		}
	}
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return -1, fmt.Errorf("invalid reference format: %q: %w: %w", ref, errdefs.ErrInvalidArgument, err)
	}
	if d, ok := n.(reference.Digested); ok {
		repo := n.Name()
		for i, img := range r.Images {
			if img.Manifest.Digest == d.Digest() && (hasRepo(img, repo) || contains(img.Digests, repo+"@"+d.Digest().String())) {
				return i, nil
			}
			if contains(img.Digests, repo+"@"+d.Digest().String()) {
				return i, nil
			}
		}
		return -1, &NotFoundError{Ref: ref}
	}
	full := reference.TagNameOnly(n).String()
	for i, img := range r.Images {
		if contains(img.Names, full) {
			return i, nil
		}
	}
	return -1, &NotFoundError{Ref: ref}
}

func hasRepo(img Image, repo string) bool {
	for _, n := range img.Names {
		if repoOf(n) == repo {
			return true
		}
	}
	for _, d := range img.Digests {
		if repoOf(d) == repo {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func remove(list []string, s string) []string {
	out := list[:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// put adds or merges img into the records, moving its names from other
// images (a name points at one image) and returning the images left
// without any name by that.
func put(r *records, img Image) {
	for _, name := range img.Names {
		for i := range r.Images {
			if r.Images[i].ID != img.ID {
				r.Images[i].Names = remove(r.Images[i].Names, name)
			}
		}
	}
	for i := range r.Images {
		if r.Images[i].ID == img.ID {
			old := r.Images[i]
			if old.Manifest.Digest != img.Manifest.Digest && old.Manifest.Digest != "" {
				// The same image (its config) came in with another
				// manifest (a docker-archive of a pulled image): the first
				// stays, so that what was pulled, and maybe signed, is
				// what push and save give out. Digests of the other
				// manifest would name what the record does not hold.
				var keep []string
				for _, d := range img.Digests {
					if strings.HasSuffix(d, "@"+old.Manifest.Digest.String()) {
						keep = append(keep, d)
					}
				}
				img.Manifest, img.Index, img.Digests = old.Manifest, old.Index, keep
			}
			for _, n := range old.Names {
				if !contains(img.Names, n) {
					img.Names = append(img.Names, n)
				}
			}
			for _, d := range old.Digests {
				if !contains(img.Digests, d) {
					img.Digests = append(img.Digests, d)
				}
			}
			if img.Index == nil {
				img.Index = old.Index
			}
			if img.Parent == "" {
				img.Parent = old.Parent
			}
			r.Images[i] = img
			return
		}
	}
	r.Images = append(r.Images, img)
}
