package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berthproject/berth/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxManifest is the largest manifest or index berth reads, as
// containerd and distribution limit them.
const MaxManifest = 4 << 20

const (
	mediaDockerManifest = string(types.DockerManifestSchema2)
	mediaDockerList     = string(types.DockerManifestList)
	mediaDockerSchema1  = "application/vnd.docker.distribution.manifest.v1+json"
	mediaDockerSchema1S = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// manifestAccept is what a pull asks for, best first.
var manifestAccept = strings.Join([]string{ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest, mediaDockerList, mediaDockerManifest}, ", ")

func backoff(d time.Duration, tries int) transport.Backoff {
	return transport.Backoff{Duration: d, Factor: 2, Jitter: 0.1, Steps: tries}
}

func asTransportError(err error, te **transport.Error) bool { return errors.As(err, te) }

// Manifest is a manifest or index as a registry served it, checked: its
// size within MaxManifest, its digest the one asked for (when asked by
// digest), its media type one berth reads.
type Manifest struct {
	ocispec.Descriptor
	Bytes []byte
}

// manifest fetches ref's manifest (a tag or a digest) from repo.
func (cl *Client) manifest(ctx context.Context, repo name.Repository, ref string, rt http.RoundTripper) (*Manifest, error) {
	u := repo.Registry.Scheme() + "://" + repo.RegistryStr() + "/v2/" + repo.RepositoryStr() + "/manifests/" + ref
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return nil, classify(repo.RegistryStr(), err)
	}
	defer resp.Body.Close()
	// Errors say what is wrong; callers say where (the image being
	// pulled, the manifest of an index).
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("manifest unknown: %w", errdefs.ErrNotFound)
		}
		return nil, classify(repo.RegistryStr(), err)
	}
	if resp.ContentLength > MaxManifest {
		return nil, fmt.Errorf("a manifest of %d bytes is over the %d MiB limit: %w", resp.ContentLength, MaxManifest>>20, errdefs.ErrInvalidArgument)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("reading the manifest: %w", err)
	}
	if len(b) > MaxManifest {
		return nil, fmt.Errorf("the manifest is over the %d MiB limit: %w", MaxManifest>>20, errdefs.ErrInvalidArgument)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch mt {
	case ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest, mediaDockerList, mediaDockerManifest:
	case mediaDockerSchema1, mediaDockerSchema1S:
		return nil, fmt.Errorf("a Docker schema 1 manifest: unsupported (push the image again with a current client): %w", errdefs.ErrNotImplemented)
	case "text/html", "text/plain":
		return nil, fmt.Errorf("the registry answered %s, not a manifest (is this a registry's address?): %w", mt, errdefs.ErrInvalidArgument)
	case "application/json", "":
		// Some registries serve OCI documents as JSON: the document's
		// own mediaType says what it is.
		mt = documentType(b)
		if mt == "" {
			return nil, fmt.Errorf("the registry served a document of no known manifest type: %w", errdefs.ErrInvalidArgument)
		}
	default:
		return nil, fmt.Errorf("unknown manifest media type %q: %w", mt, errdefs.ErrNotImplemented)
	}
	d := digest.FromBytes(b)
	if want, err := digest.Parse(ref); err == nil {
		if want.Algorithm().FromBytes(b) != want {
			return nil, fmt.Errorf("the registry served a manifest of another digest (%s): %w", d, errdefs.ErrDataLoss)
		}
		d = want
	}
	return &Manifest{Descriptor: ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}, Bytes: b}, nil
}

func documentType(b []byte) string {
	var doc struct {
		MediaType     string              `json:"mediaType"`
		SchemaVersion int                 `json:"schemaVersion"`
		Manifests     []json.RawMessage   `json:"manifests"`
		Config        *ocispec.Descriptor `json:"config"`
	}
	if json.Unmarshal(b, &doc) != nil || doc.SchemaVersion != 2 {
		return ""
	}
	switch {
	case doc.MediaType != "":
		return doc.MediaType
	case doc.Manifests != nil:
		return ocispec.MediaTypeImageIndex
	case doc.Config != nil:
		return ocispec.MediaTypeImageManifest
	}
	return ""
}

// blob opens a blob of repo for reading. A stream that breaks is taken up
// again where it stopped (with Range where the registry allows, else by
// reading up to there again), up to the client's retries: the reader sees
// one stream. Its digest is not checked here: the store's writer does.
func (cl *Client) blob(ctx context.Context, repo name.Repository, desc ocispec.Descriptor, rt http.RoundTripper) (io.ReadCloser, error) {
	return cl.blobFrom(ctx, repo, desc, rt, 0)
}

// blobFrom is blob from offset on.
func (cl *Client) blobFrom(ctx context.Context, repo name.Repository, desc ocispec.Descriptor, rt http.RoundTripper, offset int64) (io.ReadCloser, error) {
	b := &blobReader{off: offset, ctx: ctx, cl: cl, client: &http.Client{Transport: rt}, repo: repo, desc: desc,
		url: repo.Registry.Scheme() + "://" + repo.RegistryStr() + "/v2/" + repo.RepositoryStr() + "/blobs/" + desc.Digest.String()}
	if err := b.open(); err != nil {
		return nil, err
	}
	return b, nil
}

type blobReader struct {
	ctx    context.Context
	cl     *Client
	client *http.Client
	repo   name.Repository
	desc   ocispec.Descriptor
	url    string

	body  io.ReadCloser
	off   int64 // bytes delivered
	tries int
}

func (b *blobReader) open() error {
	req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, b.url, nil)
	if err != nil {
		return err
	}
	if b.off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(b.off, 10)+"-")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return classify(b.repo.RegistryStr(), err)
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && b.off > 0:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(b.off, 10)+"-") {
			resp.Body.Close()
			return fmt.Errorf("blob %s: the registry resumed at the wrong place (%q): %w", b.desc.Digest, resp.Header.Get("Content-Range"), errdefs.ErrUnavailable)
		}
	case resp.StatusCode == http.StatusOK:
		if b.off > 0 {
			// No range support: read up to where the stream broke.
			if _, err := io.CopyN(io.Discard, resp.Body, b.off); err != nil {
				resp.Body.Close()
				return fmt.Errorf("blob %s: %w", b.desc.Digest, err)
			}
		}
	default:
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%s: blob %s unknown to the registry: %w", b.repo, b.desc.Digest, errdefs.ErrNotFound)
		}
		return classify(b.repo.RegistryStr(), transport.CheckError(resp, http.StatusOK))
	}
	b.body = resp.Body
	return nil
}

func (b *blobReader) Read(p []byte) (int, error) {
	for {
		n, err := b.body.Read(p)
		b.off += int64(n)
		if err == nil || err == io.EOF {
			if err == io.EOF && b.desc.Size > 0 && b.off < b.desc.Size {
				err = io.ErrUnexpectedEOF // cut short: take it up again
			} else {
				return n, err
			}
		}
		if b.ctx.Err() != nil || b.tries >= b.cl.tries {
			if n > 0 {
				return n, nil
			}
			return 0, fmt.Errorf("blob %s: after %d bytes: %w", b.desc.Digest, b.off, err)
		}
		b.tries++
		b.body.Close()
		select {
		case <-b.ctx.Done():
			return n, b.ctx.Err()
		case <-time.After(b.cl.wait << (b.tries - 1)):
		}
		if oerr := b.open(); oerr != nil {
			return n, fmt.Errorf("blob %s: resuming after %d bytes (%v): %w", b.desc.Digest, b.off, err, oerr)
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (b *blobReader) Close() error { return b.body.Close() }
