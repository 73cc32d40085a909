package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxManifest is the largest manifest body read to look for a subject
// (distribution refuses larger ones itself).
const maxManifest = 4 << 20

// oci adds to distribution what OCI distribution 1.1 has and it lacks: the
// referrers API, and the OCI-Subject header on a manifest PUT whose
// manifest has a subject.
type oci struct {
	next   http.Handler
	ns     distribution.Namespace
	access auth.AccessController // nil: no auth
}

func withOCI(next http.Handler, ns distribution.Namespace, access auth.AccessController) http.Handler {
	return &oci{next: next, ns: ns, access: access}
}

// route splits /v2/<name>/<kind>/<ref>, where name has slashes of its own.
func route(p, kind string) (name, ref string, ok bool) {
	rest, found := strings.CutPrefix(p, "/v2/")
	if !found {
		return "", "", false
	}
	i := strings.LastIndex(rest, "/"+kind+"/")
	if i <= 0 {
		return "", "", false
	}
	name, ref = rest[:i], rest[i+len(kind)+2:]
	return name, ref, ref != "" && !strings.Contains(ref, "/")
}

func (o *oci) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if name, ref, ok := route(r.URL.Path, "referrers"); ok {
			o.referrers(w, r, name, ref)
			return
		}
	}
	if r.Method == http.MethodPut {
		if _, _, ok := route(r.URL.Path, "manifests"); ok {
			o.putManifest(w, r)
			return
		}
	}
	if r.Method == http.MethodPost {
		if name, rest, ok := splitName(r.URL.Path, "blobs"); ok && (rest == "uploads/" || rest == "uploads") {
			q := r.URL.Query()
			if q.Get("digest") != "" && q.Get("mount") == "" {
				o.postBlob(w, r, name, q.Get("digest"))
				return
			}
		}
	}
	o.next.ServeHTTP(w, r)
}

// postBlob is the single-POST monolithic upload (POST .../blobs/uploads/
// ?digest=D with the blob as body), which distribution does not take.
func (o *oci) postBlob(w http.ResponseWriter, r *http.Request, name, ref string) {
	named, err := reference.WithName(name)
	if err != nil {
		serveError(w, errcode.Error{Code: v2NameInvalid, Message: "invalid repository name"}, http.StatusBadRequest)
		return
	}
	if !o.authorized(w, r, name, "pull", "push") {
		return
	}
	d, err := digest.Parse(ref)
	if err != nil {
		serveError(w, errcode.Error{Code: v2DigestInvalid, Message: "provided digest did not match uploaded content"}, http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	repo, err := o.ns.Repository(ctx, named)
	if err != nil {
		serveError(w, errcode.ErrorCodeUnknown.WithDetail(err.Error()), http.StatusInternalServerError)
		return
	}
	bw, err := repo.Blobs(ctx).Create(ctx)
	if err != nil {
		serveError(w, errcode.ErrorCodeUnknown.WithDetail(err.Error()), http.StatusInternalServerError)
		return
	}
	if _, err := io.Copy(bw, r.Body); err != nil {
		bw.Cancel(ctx)
		serveError(w, errcode.ErrorCodeUnknown.WithDetail(err.Error()), http.StatusBadRequest)
		return
	}
	if _, err := bw.Commit(ctx, ocispec.Descriptor{Digest: d}); err != nil {
		bw.Cancel(ctx)
		var bad distribution.ErrBlobInvalidDigest
		if errors.As(err, &bad) {
			serveError(w, errcode.Error{Code: v2DigestInvalid, Message: "provided digest did not match uploaded content"}, http.StatusBadRequest)
			return
		}
		serveError(w, errcode.ErrorCodeUnknown.WithDetail(err.Error()), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Location", "/v2/"+name+"/blobs/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// putManifest passes the PUT on, and adds OCI-Subject to its 201 when the
// manifest names a subject: the client then knows the registry indexes
// referrers and needs no tag fallback.
func (o *oci) putManifest(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifest+1))
	r.Body.Close()
	if err != nil {
		http.Error(w, "reading the manifest: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	var m struct {
		Subject *ocispec.Descriptor `json:"subject"`
	}
	if len(body) > maxManifest || json.Unmarshal(body, &m) != nil || m.Subject == nil || m.Subject.Digest.Validate() != nil {
		o.next.ServeHTTP(w, r)
		return
	}
	o.next.ServeHTTP(&subjectWriter{ResponseWriter: w, subject: m.Subject.Digest}, r)
}

type subjectWriter struct {
	http.ResponseWriter
	subject digest.Digest
}

func (s *subjectWriter) WriteHeader(code int) {
	if code == http.StatusCreated {
		s.Header().Set("OCI-Subject", s.subject.String())
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *subjectWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// referrers answers GET /v2/<name>/referrers/<digest>[?artifactType=T]
// with an image index of the manifests in <name> whose subject is digest.
// A repository or subject that is not there has an empty list, never a
// 404, as the spec asks.
func (o *oci) referrers(w http.ResponseWriter, r *http.Request, name, ref string) {
	named, err := reference.WithName(name)
	if err != nil {
		serveError(w, errcode.ErrorCodeUnknown.WithMessage("invalid repository name"), http.StatusBadRequest)
		return
	}
	if !o.authorized(w, r, name, "pull") {
		return
	}
	subject, err := digest.Parse(ref)
	if err != nil {
		serveError(w, errcode.ErrorCodeUnknown.WithMessage("invalid digest"), http.StatusBadRequest)
		return
	}
	want := r.URL.Query().Get("artifactType")
	list, err := o.list(r.Context(), named, subject, want)
	if err != nil {
		serveError(w, errcode.ErrorCodeUnknown.WithDetail(err.Error()), http.StatusInternalServerError)
		return
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: list}
	idx.SchemaVersion = 2
	w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
	if want != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	b, _ := json.Marshal(idx)
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", itoa(len(b)))
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// list reads every manifest of the repository: referrers are found by
// their subject field, as stored, with no index to drift from the storage.
func (o *oci) list(ctx context.Context, named reference.Named, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	out := []ocispec.Descriptor{}
	repo, err := o.ns.Repository(ctx, named)
	if err != nil {
		return out, nil
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return nil, err
	}
	enum, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		return nil, errors.New("the storage cannot list manifests")
	}
	err = enum.Enumerate(ctx, func(d digest.Digest) error {
		m, err := ms.Get(ctx, d)
		if err != nil {
			return nil // deleted meanwhile, or not a manifest distribution reads
		}
		mt, payload, err := m.Payload()
		if err != nil {
			return nil
		}
		var doc struct {
			MediaType    string              `json:"mediaType"`
			ArtifactType string              `json:"artifactType"`
			Config       *ocispec.Descriptor `json:"config"`
			Subject      *ocispec.Descriptor `json:"subject"`
			Annotations  map[string]string   `json:"annotations"`
		}
		if json.Unmarshal(payload, &doc) != nil || doc.Subject == nil || doc.Subject.Digest != subject {
			return nil
		}
		at := doc.ArtifactType
		if at == "" && doc.Config != nil {
			at = doc.Config.MediaType
		}
		if artifactType != "" && at != artifactType {
			return nil
		}
		if doc.MediaType != "" {
			mt = doc.MediaType
		}
		out = append(out, ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(payload)), ArtifactType: at, Annotations: doc.Annotations})
		return nil
	})
	if err != nil && !isRepositoryUnknown(err) {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

func isRepositoryUnknown(err error) bool {
	var ru distribution.ErrRepositoryUnknown
	return errors.As(err, &ru) || strings.Contains(err.Error(), "unknown repository") || strings.Contains(err.Error(), "Path not found")
}

// authorized asks the registry's access controller for the actions on
// name, answering the challenge itself when they are refused.
func (o *oci) authorized(w http.ResponseWriter, r *http.Request, name string, actions ...string) bool {
	if o.access == nil {
		return true
	}
	var access []auth.Access
	for _, a := range actions {
		access = append(access, auth.Access{Resource: auth.Resource{Type: "repository", Name: name}, Action: a})
	}
	if _, err := o.access.Authorized(r, access...); err != nil {
		var ch auth.Challenge
		if errors.As(err, &ch) {
			ch.SetHeaders(r, w)
			serveError(w, errcode.ErrorCodeUnauthorized.WithDetail(access), http.StatusUnauthorized)
			return false
		}
		w.WriteHeader(http.StatusBadRequest)
		return false
	}
	return true
}

// The distribution-spec error codes, as distribution registers them.
var (
	v2DigestInvalid = v2.ErrorCodeDigestInvalid
	v2NameInvalid   = v2.ErrorCodeNameInvalid
)

func serveError(w http.ResponseWriter, e errcode.Error, status int) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	writeJSON(w, errcode.Errors{e})
}

func writeJSON(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	w.Write(b)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
