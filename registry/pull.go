package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PullOptions control Pull.
type PullOptions struct {
	// Platform picks an index's manifest (default: the host's).
	Platform ocispec.Platform
	// AllTags pulls every tag of the repository (-a).
	AllTags bool
	// Progress hears of each step (Lines for Docker's output); nil for none.
	Progress Reporter
	// Check, if set, decides on each image (pulled from repository) once
	// its manifest and config are fetched, before any layer is: an error
	// stores nothing. The trust policy is enforced here.
	Check func(ctx context.Context, repository string, c image.Candidate) error
}

// Pulled is one image a pull stored.
type Pulled struct {
	// Ref is what was pulled: name:tag or name@digest, in full.
	Ref    string
	ID     digest.Digest
	Digest digest.Digest // the manifest's (or index's) digest
	// Fetched: some layer came from the registry (else all were here).
	Fetched bool
}

// Pull fetches an image (or, with AllTags, a repository's tagged images)
// into the store, trying the registry's mirrors first.
func (cl *Client) Pull(ctx context.Context, store *image.Store, s string, o PullOptions) ([]Pulled, error) {
	ref, err := cl.Reference(s)
	if err != nil {
		return nil, err
	}
	if !o.AllTags {
		p, err := cl.pullOne(ctx, store, ref, o)
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref.Name(), err)
		}
		return []Pulled{p}, nil
	}
	if n, err := reference.ParseNormalizedNamed(s); err == nil {
		if _, tagged := n.(reference.Tagged); tagged {
			return nil, fmt.Errorf("pull %s: a tag cannot go with --all-tags: %w", s, errdefs.ErrInvalidArgument)
		}
		if _, digested := n.(reference.Digested); digested {
			return nil, fmt.Errorf("pull %s: a digest cannot go with --all-tags: %w", s, errdefs.ErrInvalidArgument)
		}
	}
	tags, err := cl.Tags(ctx, ref.Context().String())
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref.Context(), err)
	}
	var out []Pulled
	for _, t := range tags {
		p, err := cl.pullOne(ctx, store, ref.Context().Tag(t), o)
		if err != nil {
			return out, fmt.Errorf("pull %s: %w", ref.Context().Tag(t).Name(), err)
		}
		out = append(out, p)
	}
	return out, nil
}

// candidates are where ref may be pulled from: its mirrors, then itself.
func (cl *Client) candidates(ref name.Reference) []name.Repository {
	var out []name.Repository
	host := ref.Context().RegistryStr()
	if host == name.DefaultRegistry {
		host = "docker.io"
	}
	for _, m := range cl.hosts.Mirrors(host) {
		loc := m.Location
		var opts []name.Option
		if m.Insecure || cl.hosts.Insecure(loc) {
			opts = append(opts, name.Insecure)
		}
		if r, err := name.NewRepository(loc+"/"+ref.Context().RepositoryStr(), opts...); err == nil {
			out = append(out, r)
		}
	}
	return append(out, ref.Context())
}

func (cl *Client) pullOne(ctx context.Context, store *image.Store, ref name.Reference, o PullOptions) (Pulled, error) {
	rep := o.Progress
	if rep == nil {
		rep = quiet{}
	}
	say := func(format string, a ...any) { rep.Status(fmt.Sprintf(format, a...)) }
	var (
		m    *Manifest
		repo name.Repository
		rt   http.RoundTripper
		last error
	)
	for _, cand := range cl.candidates(ref) {
		t, err := cl.transport(ctx, cand, transport.PullScope)
		if err == nil {
			m, err = cl.manifest(ctx, cand, ref.Identifier(), t)
		}
		if err == nil {
			repo, rt = cand, t
			break
		}
		last = err
		if cand.RegistryStr() != ref.Context().RegistryStr() {
			say("mirror %s: %v", cand.RegistryStr(), err)
		}
	}
	if m == nil {
		return Pulled{}, last
	}
	full := ref.Context().String()
	if full[:strings.IndexByte(full, '/')] == name.DefaultRegistry {
		full = "docker.io" + full[strings.IndexByte(full, '/'):]
	}
	say("%s: Pulling from %s", ref.Identifier(), image.FamiliarString(full))
	f := &fetcher{cl: cl, repo: repo, rt: rt, top: m, rep: rep}
	po := image.PullOptions{Platform: o.Platform, Digests: []string{full + "@" + m.Digest.String()}}
	pulledRef := full + "@" + m.Digest.String()
	if t, ok := ref.(name.Tag); ok {
		po.Names = []string{full + ":" + t.TagStr()}
		pulledRef = po.Names[0]
	}
	if o.Check != nil {
		po.Check = func(ctx context.Context, c image.Candidate) error { return o.Check(ctx, full, c) }
	}
	var mu sync.Mutex
	fetched := false
	po.Progress = func(ev image.LayerEvent) {
		mu.Lock()
		fetched = true
		mu.Unlock()
		if ev.Done {
			rep.Done(ev.Layer, ev.Err, false)
		} else {
			rep.Start(ev.Layer)
		}
	}
	loaded, err := store.Pull(ctx, f, m.Descriptor, po)
	if err != nil {
		return Pulled{}, err
	}
	say("Digest: %s", m.Digest)
	if fetched {
		say("Status: Downloaded newer image for %s", image.FamiliarString(pulledRef))
	} else {
		say("Status: Image is up to date for %s", image.FamiliarString(pulledRef))
	}
	return Pulled{Ref: pulledRef, ID: loaded.ID, Digest: m.Digest, Fetched: fetched}, nil
}

// fetcher serves the store's Pull from one repository.
type fetcher struct {
	cl   *Client
	repo name.Repository
	rt   http.RoundTripper
	top  *Manifest
	rep  Reporter
}

func (f *fetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if desc.Digest == f.top.Digest {
		return io.NopCloser(bytes.NewReader(f.top.Bytes)), nil
	}
	switch desc.MediaType {
	case ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest, mediaDockerList, mediaDockerManifest:
		m, err := f.cl.manifest(ctx, f.repo, desc.Digest.String(), f.rt)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
		}
		return io.NopCloser(bytes.NewReader(m.Bytes)), nil
	}
	if len(desc.URLs) > 0 && (strings.Contains(desc.MediaType, "foreign") || strings.Contains(desc.MediaType, "nondistributable")) {
		return nil, fmt.Errorf("layer %s is not distributable (it lives at %s): berth does not fetch foreign layers: %w", desc.Digest, desc.URLs[0], errdefs.ErrNotImplemented)
	}
	rc, err := f.cl.blob(ctx, f.repo, desc, f.rt)
	if err != nil || strings.Contains(desc.MediaType, "config") {
		return rc, err
	}
	return &counting{ReadCloser: rc, rep: f.rep, desc: desc}, nil
}

// FetchFrom fetches a blob from offset on (image.RangeFetcher): with Range
// where the registry allows it, else by reading up to there.
func (f *fetcher) FetchFrom(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	rc, err := f.cl.blobFrom(ctx, f.repo, desc, f.rt, offset)
	if err != nil {
		return nil, err
	}
	return &counting{ReadCloser: rc, rep: f.rep, desc: desc}, nil
}

// Tags lists a repository's tags, following the registry's pages.
func (cl *Client) Tags(ctx context.Context, repository string) ([]string, error) {
	ref, err := cl.Reference(repository)
	if err != nil {
		return nil, err
	}
	repo := ref.Context()
	rt, err := cl.transport(ctx, repo, transport.PullScope)
	if err != nil {
		return nil, err
	}
	c := &http.Client{Transport: rt}
	next := repo.Registry.Scheme() + "://" + repo.RegistryStr() + "/v2/" + repo.RepositoryStr() + "/tags/list"
	var tags []string
	for next != "" {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		resp, err := c.Do(req)
		if err != nil {
			return nil, classify(repo.RegistryStr(), err)
		}
		if err := transport.CheckError(resp, http.StatusOK); err != nil {
			resp.Body.Close()
			return nil, classify(repo.RegistryStr(), err)
		}
		var page struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, MaxManifest)).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: tag list: %v: %w", repo, err, errdefs.ErrInvalidArgument)
		}
		tags = append(tags, page.Tags...)
		next = nextPage(next, resp.Header.Get("Link"))
	}
	return tags, nil
}

// nextPage reads RFC 5988's Link: <url>; rel="next".
func nextPage(cur, link string) string {
	if link == "" {
		return ""
	}
	start, end := strings.IndexByte(link, '<'), strings.IndexByte(link, '>')
	if start < 0 || end < start || !strings.Contains(link[end:], `rel="next"`) {
		return ""
	}
	base, err := url.Parse(cur)
	if err != nil {
		return ""
	}
	u, err := base.Parse(link[start+1 : end])
	if err != nil {
		return ""
	}
	return u.String()
}
