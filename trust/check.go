package trust

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Checker enforces a policy where images come in (pull, load) and where
// they start (run, create), with the local store of evidence.
type Checker struct {
	policy *Policy
	store  *Store
}

// NewChecker needs both a policy and the store.
func NewChecker(p *Policy, s *Store) (*Checker, error) {
	if p == nil || s == nil {
		return nil, fmt.Errorf("a trust checker needs a policy and a store: %w", errdefs.ErrInvalidArgument)
	}
	return &Checker{policy: p, store: s}, nil
}

// Policy is the checker's policy.
func (c *Checker) Policy() *Policy { return c.policy }

// Store is the checker's store.
func (c *Checker) Store() *Store { return c.store }

// SubjectOf is a stored image as verification sees it, named by ref when
// ref is one of its names, else by its first name.
func SubjectOf(ctx context.Context, images *image.Store, ref string) (Subject, image.Image, error) {
	img, err := images.Get(ctx, ref)
	if err != nil {
		return Subject{}, image.Image{}, err
	}
	m, err := images.Manifest(ctx, img)
	if err != nil {
		return Subject{}, img, err
	}
	b, err := content.ReadBlob(ctx, images.Content(), m.Config, 16<<20)
	if err != nil {
		return Subject{}, img, fmt.Errorf("image %s: config: %w", ref, err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(b, &cfg); err != nil {
		return Subject{}, img, fmt.Errorf("image %s: config: %v: %w", ref, err, errdefs.ErrDataLoss)
	}
	return Subject{Name: nameOf(img, ref), Manifest: img.Manifest, Parsed: m, Config: cfg}, img, nil
}

func nameOf(img image.Image, ref string) string {
	if n, err := image.ParseReference(ref); err == nil {
		for _, s := range append(append([]string(nil), img.Names...), img.Digests...) {
			if s == n.String() || s == ref {
				return s
			}
		}
	}
	if len(img.Names) > 0 {
		return img.Names[0]
	}
	if len(img.Digests) > 0 {
		return img.Digests[0]
	}
	return ""
}

// CheckStored verifies a stored image with the local evidence: what run
// and create call before anything starts.
func (c *Checker) CheckStored(ctx context.Context, images *image.Store, ref string) (*Result, error) {
	subj, _, err := SubjectOf(ctx, images, ref)
	if err != nil {
		return nil, err
	}
	res, err := Verify(ctx, c.policy, subj, c.store)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	return res, nil
}

// CandidateSubject is an image about to be stored as verification sees it.
func CandidateSubject(cand image.Candidate) Subject {
	name := ""
	if len(cand.Names) > 0 {
		name = cand.Names[0]
	} else if len(cand.Digests) > 0 {
		name = cand.Digests[0]
	}
	return Subject{Name: name, Manifest: cand.Manifest, Parsed: cand.Parsed, Config: cand.Config}
}

// Remote is evidence fetched from a registry: the artifacts attached to
// subject in repository.
type Remote func(ctx context.Context, repository string, subject digest.Digest) ([]image.Artifact, error)

// recording is evidence from a remote, remembering all it fetched so that
// it can be kept once the image is.
type recording struct {
	ctx    context.Context
	remote Remote
	repo   string // the repository pulled from, tried when a hint fails
	mu     sync.Mutex
	got    Collected
	// asked: subjects fetched already; verification and fetchChain ask
	// for the same ones, and each costs the registry round trips.
	asked map[digest.Digest]bool
}

func (r *recording) Attached(repository string, subject digest.Digest) (Attached, error) {
	r.mu.Lock()
	if r.asked[subject] {
		defer r.mu.Unlock()
		return r.got[subject], nil
	}
	r.mu.Unlock()
	var arts []image.Artifact
	var err error
	tried := map[string]bool{}
	for _, repo := range []string{repository, r.repo} {
		if repo == "" || tried[repo] {
			continue
		}
		tried[repo] = true
		arts, err = r.remote(r.ctx, repo, subject)
		if err == nil && len(arts) > 0 {
			break
		}
	}
	if err != nil && len(arts) == 0 {
		return Attached{}, err
	}
	col, err := Collect(arts)
	if err != nil {
		return Attached{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for d, a := range col {
		r.got.Add(d, a)
	}
	r.asked[subject] = true
	return col[subject], nil
}

// PullCheck is an image.PullOptions.Check that verifies the image with
// what the registry (repository, through remote) and the local store have
// attached, and keeps what it fetched once the image passes.
func (c *Checker) PullCheck(repository string, remote Remote) func(context.Context, image.Candidate) error {
	return func(ctx context.Context, cand image.Candidate) error {
		rec := &recording{ctx: ctx, remote: remote, repo: repository, got: Collected{}, asked: map[digest.Digest]bool{}}
		subj := CandidateSubject(cand)
		if _, err := Verify(ctx, c.policy, subj, Evidences{rec, c.store}); err != nil {
			return err
		}
		// Fetch the rest of the chain too, whatever this policy needed, so
		// that a stricter policy later can be checked without the network.
		fetchChain(rec, repositoryOf(subj.Name), subj.Manifest.Digest)
		return c.store.AddAll(rec.got)
	}
}

// LoadOptions are image.LoadOptions that read the signatures and records
// an OCI layout carries, verify each image with them and the local store,
// and keep them once the image passes.
func (c *Checker) LoadOptions(o image.LoadOptions) image.LoadOptions {
	col := Collected{}
	var bad error
	o.Artifact = func(a image.Artifact) error {
		subject, att, err := FromArtifact(a)
		if err != nil {
			if bad == nil {
				bad = err
			}
			return nil // an image that needs it fails below, naming it
		}
		col.Add(subject, att)
		return nil
	}
	o.Check = func(ctx context.Context, cand image.Candidate) error {
		if _, err := Verify(ctx, c.policy, CandidateSubject(cand), Evidences{col, c.store}); err != nil {
			if bad != nil {
				return fmt.Errorf("%w (and an artifact of the archive was unreadable: %v)", err, bad)
			}
			return err
		}
		return c.store.AddAll(col)
	}
	return o
}

// fetchChain asks ev for what is attached to subject and, following the
// bases custody records name (unverified: this only fetches), to the
// images below it. Failures are left for verification to report.
func fetchChain(ev Evidence, repository string, subject digest.Digest) {
	type item struct {
		repo string
		d    digest.Digest
	}
	seen := map[digest.Digest]bool{}
	todo := []item{{repository, subject}}
	for len(todo) > 0 && len(seen) < 64 {
		it := todo[0]
		todo = todo[1:]
		if seen[it.d] {
			continue
		}
		seen[it.d] = true
		a, err := ev.Attached(it.repo, it.d)
		if err != nil {
			continue
		}
		for _, r := range a.Records {
			if st, err := decodeRecord(r); err == nil && st.Predicate.Base != nil {
				todo = append(todo, item{repositoryOf(st.Predicate.Base.Name), st.Predicate.Base.ManifestDigest})
			}
		}
	}
}
