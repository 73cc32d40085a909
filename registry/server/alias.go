package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	digest "github.com/opencontainers/go-digest"
)

// distribution stores every blob and manifest under its sha256 digest and
// answers with that digest, whatever digest the client used. OCI
// distribution 1.1 lets a client name content by sha512 as well, and expects
// the registry to answer with the digest it was given. aliases bridges the
// two on distribution's own storage: content is kept once, under sha256, and
// a digest of another algorithm is a link to it, the kind distribution
// itself writes when an upload is committed with such a digest:
//
//	<root>/docker/registry/v2/repositories/<name>/
//	  _layers/<alg>/<hex>/link                 blob: "sha256:<canonical>"
//	  _manifests/revisions/<alg>/<hex>/link    manifest: "sha256:<canonical>"
//
// What it adds: the links distribution does not write (a manifest pushed by
// such a digest, a blob mounted by one), and the client's digest in the
// Docker-Content-Digest and Location headers.
type aliases struct {
	next   http.Handler
	driver storagedriver.StorageDriver
}

const v2root = "/docker/registry/v2"

func withAliases(next http.Handler, driver storagedriver.StorageDriver) http.Handler {
	return &aliases{next: next, driver: driver}
}

// alias parses s as a digest of an algorithm other than the canonical one.
func alias(s string) (digest.Digest, bool) {
	d, err := digest.Parse(s)
	return d, err == nil && d.Algorithm() != digest.Canonical
}

func layerLink(name string, d digest.Digest) string {
	return path.Join(v2root, "repositories", name, "_layers", d.Algorithm().String(), d.Encoded(), "link")
}

func revisionLink(name string, d digest.Digest) string {
	return path.Join(v2root, "repositories", name, "_manifests", "revisions", d.Algorithm().String(), d.Encoded(), "link")
}

func (a *aliases) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPut || r.Method == http.MethodPost:
		if name, rest, ok := splitName(r.URL.Path, "blobs"); ok && strings.HasPrefix(rest, "uploads") {
			if d, ok := alias(q.Get("mount")); ok && r.Method == http.MethodPost {
				a.mount(w, r, name, d, q.Get("from"))
				return
			}
			if d, ok := alias(q.Get("digest")); ok {
				a.next.ServeHTTP(&digestWriter{ResponseWriter: w, d: d, location: "/v2/" + name + "/blobs/" + d.String()}, r)
				return
			}
		}
		if name, ref, ok := route(r.URL.Path, "manifests"); ok && r.Method == http.MethodPut {
			if d, ok := alias(ref); ok {
				a.putManifest(w, r, name, d)
				return
			}
		}
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		for _, kind := range []string{"blobs", "manifests"} {
			if _, ref, ok := route(r.URL.Path, kind); ok {
				if d, ok := alias(ref); ok {
					a.next.ServeHTTP(&digestWriter{ResponseWriter: w, d: d}, r)
					return
				}
			}
		}
	}
	a.next.ServeHTTP(w, r)
}

// splitName splits /v2/<name>/<kind>/<rest>.
func splitName(p, kind string) (name, rest string, ok bool) {
	trimmed, found := strings.CutPrefix(p, "/v2/")
	if !found {
		return "", "", false
	}
	i := strings.LastIndex(trimmed, "/"+kind+"/")
	if i <= 0 {
		return "", "", false
	}
	return trimmed[:i], trimmed[i+len(kind)+2:], true
}

// mount links a blob named by an alias digest from another repository:
// distribution mounts the canonical blob; the alias link is copied over.
func (a *aliases) mount(w http.ResponseWriter, r *http.Request, name string, d digest.Digest, from string) {
	canonical := a.readLink(r.Context(), layerLink(from, d))
	if from == "" || canonical == "" {
		// Not mountable by this name: distribution starts an upload.
		a.next.ServeHTTP(w, r)
		return
	}
	// distribution looks the blob up by the digest given; mount the
	// canonical one and add the alias link after.
	q := r.URL.Query()
	q.Set("mount", canonical.String())
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q.Encode()
	dw := &digestWriter{ResponseWriter: w, d: d, location: "/v2/" + name + "/blobs/" + d.String(),
		before: func(code int) bool {
			if code != http.StatusCreated {
				return true
			}
			return a.driver.PutContent(r.Context(), layerLink(name, d), []byte(canonical.String())) == nil
		}}
	a.next.ServeHTTP(dw, r2)
}

// putManifest stores a manifest pushed by an alias digest: verified
// against that digest, put under its sha256 digest, then linked.
func (a *aliases) putManifest(w http.ResponseWriter, r *http.Request, name string, d digest.Digest) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifest+1))
	r.Body.Close()
	if err != nil || len(body) > maxManifest {
		serveError(w, errcode.ErrorCodeUnknown.WithMessage("manifest too large or unreadable"), http.StatusBadRequest)
		return
	}
	if d.Algorithm().FromBytes(body) != d {
		serveError(w, v2DigestInvalid.WithMessage("the manifest does not have the digest it was pushed by"), http.StatusBadRequest)
		return
	}
	canonical := digest.Canonical.FromBytes(body)
	r2 := r.Clone(r.Context())
	r2.URL.Path = strings.TrimSuffix(r.URL.Path, d.String()) + canonical.String()
	r2.URL.RawPath = ""
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	dw := &digestWriter{ResponseWriter: w, d: d, location: "/v2/" + name + "/manifests/" + d.String(),
		before: func(code int) bool {
			if code != http.StatusCreated {
				return true
			}
			return a.driver.PutContent(r.Context(), revisionLink(name, d), []byte(canonical.String())) == nil
		}}
	a.next.ServeHTTP(dw, r2)
}

func (a *aliases) readLink(ctx context.Context, p string) digest.Digest {
	b, err := a.driver.GetContent(ctx, p)
	if err != nil {
		return ""
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return ""
	}
	return d
}

// digestWriter answers with the client's digest (and a Location naming
// it) where distribution would give the canonical one. before runs when
// the status is known; if it fails, the answer becomes a 500.
type digestWriter struct {
	http.ResponseWriter
	d        digest.Digest
	location string
	before   func(code int) bool
	wrote    bool
	failed   bool
}

func (dw *digestWriter) WriteHeader(code int) {
	if dw.wrote {
		return
	}
	dw.wrote = true
	if dw.before != nil && !dw.before(code) {
		dw.failed = true
		h := dw.Header()
		h.Del("Location")
		h.Del("Docker-Content-Digest")
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Del("Content-Length")
		dw.ResponseWriter.WriteHeader(http.StatusInternalServerError)
		b, _ := json.Marshal(errcode.Errors{errcode.ErrorCodeUnknown.WithMessage("could not record the digest " + dw.d.String())})
		dw.ResponseWriter.Write(b)
		return
	}
	if code < 400 {
		h := dw.Header()
		if h.Get("Docker-Content-Digest") != "" {
			h.Set("Docker-Content-Digest", dw.d.String())
		}
		if dw.location != "" && h.Get("Location") != "" {
			h.Set("Location", dw.location)
		}
	}
	dw.ResponseWriter.WriteHeader(code)
}

func (dw *digestWriter) Write(b []byte) (int, error) {
	if !dw.wrote {
		dw.WriteHeader(http.StatusOK)
	}
	if dw.failed {
		return len(b), nil
	}
	return dw.ResponseWriter.Write(b)
}

func (dw *digestWriter) Unwrap() http.ResponseWriter { return dw.ResponseWriter }
