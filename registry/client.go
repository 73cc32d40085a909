package registry

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Options configure a Client.
type Options struct {
	// RegistriesConf are registries.conf files (default: DefaultRegistriesConf).
	RegistriesConf []string
	// CertDirs hold <host>/ca.crt (default: DefaultCertDirs). A --cert-dir
	// is put first.
	CertDirs []string
	// AuthFile is read first and written by Login (--authfile).
	AuthFile string
	// Insecure registries (--tls-verify=false for these hosts).
	Insecure []string
	// UserAgent is sent with every request.
	UserAgent string
	// Retries is how often a failed request or a dropped blob stream is
	// tried again (default 5), with Backoff doubling from its value
	// (default 200ms).
	Retries int
	Backoff time.Duration
}

// Client talks to registries.
type Client struct {
	hosts *Hosts
	creds Credentials
	ua    string
	tries int
	wait  time.Duration

	mu  sync.Mutex
	rts map[string]http.RoundTripper // per registry and scope
}

// New makes a client.
func New(o Options) (*Client, error) {
	if o.RegistriesConf == nil {
		o.RegistriesConf = DefaultRegistriesConf()
	}
	if o.CertDirs == nil {
		o.CertDirs = DefaultCertDirs()
	}
	hosts, err := LoadHosts(o.RegistriesConf, o.CertDirs)
	if err != nil {
		return nil, err
	}
	for _, h := range o.Insecure {
		hosts.SetInsecure(h)
	}
	if o.UserAgent == "" {
		o.UserAgent = "berth"
	}
	if o.Retries == 0 {
		o.Retries = 5
	}
	if o.Backoff == 0 {
		o.Backoff = 200 * time.Millisecond
	}
	return &Client{hosts: hosts, creds: Credentials{AuthFile: o.AuthFile}, ua: o.UserAgent, tries: o.Retries, wait: o.Backoff, rts: map[string]http.RoundTripper{}}, nil
}

// Hosts is what the client knows of registries.
func (cl *Client) Hosts() *Hosts { return cl.hosts }

// Reference parses an image name as Docker does (docker.io/library for
// short names, :latest when there is neither tag nor digest).
func (cl *Client) Reference(s string) (name.Reference, error) {
	named, err := image.ParseReference(s)
	if err != nil {
		return nil, err
	}
	full := named.String()
	host := full[:strings.IndexByte(full, '/')]
	var opts []name.Option
	if cl.hosts.Insecure(host) {
		opts = append(opts, name.Insecure)
	}
	if cl.hosts.Blocked(host) {
		return nil, fmt.Errorf("registry %s is blocked in registries.conf: %w", host, errdefs.ErrPermissionDenied)
	}
	ref, err := name.ParseReference(full, opts...)
	if err != nil {
		return nil, fmt.Errorf("invalid reference format: %q: %v: %w", s, err, errdefs.ErrInvalidArgument)
	}
	return ref, nil
}

func (cl *Client) registry(server string) (name.Registry, error) {
	server = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSuffix(server, "/"), "https://"), "http://")
	if i := strings.IndexByte(server, '/'); i >= 0 {
		server = server[:i] // docker login https://index.docker.io/v1/
	}
	if server == "" || server == "docker.io" {
		server = name.DefaultRegistry
	}
	var opts []name.Option
	if cl.hosts.Insecure(server) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(server, opts...)
	if err != nil {
		return reg, fmt.Errorf("registry %q: %v: %w", server, err, errdefs.ErrInvalidArgument)
	}
	return reg, nil
}

// transport is the authenticated transport for repo with the actions of
// scope: a token exchanged once per repository and scope, and retried
// requests on 5xx and dropped connections.
func (cl *Client) transport(ctx context.Context, repo name.Repository, scope ...string) (http.RoundTripper, error) {
	key := repo.String() + " " + strings.Join(scope, ",")
	cl.mu.Lock()
	rt, ok := cl.rts[key]
	cl.mu.Unlock()
	if ok {
		return rt, nil
	}
	base, err := cl.base(repo.RegistryStr())
	if err != nil {
		return nil, err
	}
	auth, err := cl.creds.Resolve(repo.Registry)
	if err != nil {
		return nil, err
	}
	var scopes []string
	for _, s := range scope {
		scopes = append(scopes, repo.Scope(s))
	}
	rt, err = transport.NewWithContext(ctx, repo.Registry, auth, base, scopes)
	if err != nil {
		return nil, classify(repo.RegistryStr(), err)
	}
	cl.mu.Lock()
	cl.rts[key] = rt
	cl.mu.Unlock()
	return rt, nil
}

// base is host's transport before authentication: its TLS settings, with
// requests retried on 5xx and dropped connections.
func (cl *Client) base(host string) (http.RoundTripper, error) {
	base, err := cl.hosts.Transport(host)
	if err != nil {
		return nil, err
	}
	base = transport.NewRetry(base,
		transport.WithRetryBackoff(backoff(cl.wait, cl.tries)),
		transport.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests))
	return transport.NewUserAgent(base, cl.ua), nil
}

// classify gives a registry error the kind a caller branches on.
func classify(host string, err error) error {
	var te *transport.Error
	if ok := asTransportError(err, &te); ok {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("registry %s: access denied (log in with berth login %s, or check the name): %w", host, host, errdefs.ErrPermissionDenied)
		case http.StatusNotFound:
			return fmt.Errorf("registry %s: %v: %w", host, te, errdefs.ErrNotFound)
		}
	}
	return fmt.Errorf("registry %s: %v: %w", host, err, errdefs.ErrUnavailable)
}
