// Package server is `berth registry serve`: a registry server built on
// distribution v3 (its HTTP API, storage drivers, auth and garbage
// collection), with what distribution v3 lacks of OCI distribution 1.1 added
// on its storage: the referrers API (GET /v2/<name>/referrers/<digest>,
// with artifactType filtering) and the OCI-Subject header on manifest PUTs.
//
// The simple case needs no configuration file: a listen address and a
// storage directory (filesystem driver, deletes enabled). Anything else
// distribution can do (S3-compatible storage, token auth, redis caches,
// notifications) comes from a distribution config.yml, which the options
// given here override.
//
// It owns the server's wiring, not the storage format: what is on disk is
// distribution's filesystem layout, readable by any distribution registry:
//
//	<storage>/docker/registry/v2/
//	  blobs/<alg>/<2 hex>/<hex>/data
//	  repositories/<name>/_manifests, _layers, _uploads
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/health"
	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/sirupsen/logrus"

	// The storage drivers and access controllers a config.yml may name.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/internal/atomicfile"
)

// Options configure a server. Zero values take the simple case's defaults.
type Options struct {
	// Addr is the listen address (default 127.0.0.1:5000; ":0" or
	// "127.0.0.1:0" for a free port, which Addr reports).
	Addr string
	// StorageDir is the filesystem driver's root (ignored when ConfigFile
	// names another driver).
	StorageDir string
	// ConfigFile is a distribution config.yml; the other options override it.
	ConfigFile string
	// TLSCert and TLSKey serve HTTPS.
	TLSCert, TLSKey string
	// Htpasswd is a bcrypt htpasswd file: basic auth for every request.
	Htpasswd string
	Realm    string
	// ReadOnly refuses pushes and deletes (maintenance mode).
	ReadOnly bool
	// AccessLog gets one line per request (combined log format); nil for none.
	AccessLog io.Writer
	// Log gets the server's diagnostics; nil for stderr.
	Log io.Writer
	// DrainTimeout is how long Shutdown lets requests in flight finish.
	DrainTimeout time.Duration
}

// Server is a running registry server.
type Server struct {
	ln      net.Listener
	http    *http.Server
	app     *handlers.App
	tls     bool
	cancel  context.CancelFunc
	drain   time.Duration
	storage string
}

// Config builds the distribution configuration of o: the file's, or the
// simple case's, with o's settings over it (and distribution's REGISTRY_*
// environment overrides over both, as distribution does).
func Config(o Options) (*configuration.Configuration, error) {
	// REGISTRY_AUTH_FILE is Podman's credentials file; to distribution's
	// overrides it would name an auth method "file", which does not exist.
	if v, ok := os.LookupEnv("REGISTRY_AUTH_FILE"); ok {
		os.Unsetenv("REGISTRY_AUTH_FILE")
		defer os.Setenv("REGISTRY_AUTH_FILE", v)
	}
	var cfg *configuration.Configuration
	if o.ConfigFile != "" {
		f, err := os.Open(o.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("registry config: %w", err)
		}
		defer f.Close()
		if cfg, err = configuration.Parse(f); err != nil {
			return nil, fmt.Errorf("registry config %s: %v: %w", o.ConfigFile, err, errdefs.ErrInvalidArgument)
		}
	} else {
		if o.StorageDir == "" {
			return nil, fmt.Errorf("registry: no storage directory and no config file: %w", errdefs.ErrInvalidArgument)
		}
		var err error
		cfg, err = configuration.Parse(strings.NewReader(simpleConfig))
		if err != nil {
			return nil, err
		}
	}
	if o.StorageDir != "" && (o.ConfigFile == "" || cfg.Storage.Type() == "filesystem") {
		abs, err := filepath.Abs(o.StorageDir)
		if err != nil {
			return nil, err
		}
		params := configuration.Parameters{"rootdirectory": abs}
		keep := configuration.Storage{"filesystem": params}
		for k, v := range cfg.Storage {
			if k != cfg.Storage.Type() {
				keep[k] = v
			}
		}
		cfg.Storage = keep
	}
	if o.Addr != "" {
		cfg.HTTP.Addr = o.Addr
	}
	if cfg.HTTP.Addr == "" {
		cfg.HTTP.Addr = "127.0.0.1:5000"
	}
	if o.TLSCert != "" || o.TLSKey != "" {
		if o.TLSCert == "" || o.TLSKey == "" {
			return nil, fmt.Errorf("registry: --tls-cert and --tls-key go together: %w", errdefs.ErrInvalidArgument)
		}
		cfg.HTTP.TLS.Certificate, cfg.HTTP.TLS.Key = o.TLSCert, o.TLSKey
	}
	if o.Htpasswd != "" {
		if _, err := os.Stat(o.Htpasswd); err != nil {
			return nil, fmt.Errorf("registry: htpasswd file: %w", err)
		}
		realm := o.Realm
		if realm == "" {
			realm = "berth registry"
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": realm, "path": o.Htpasswd}}
	}
	if cfg.HTTP.Secret == "" && cfg.Storage.Type() == "filesystem" {
		// Upload state is signed with the secret: one kept with the
		// storage lets an upload go on across a restart.
		dir, _ := cfg.Storage.Parameters()["rootdirectory"].(string)
		secret, err := httpSecret(dir)
		if err != nil {
			return nil, err
		}
		cfg.HTTP.Secret = secret
	}
	if o.ReadOnly {
		if cfg.Storage["maintenance"] == nil {
			cfg.Storage["maintenance"] = configuration.Parameters{}
		}
		cfg.Storage["maintenance"]["readonly"] = map[any]any{"enabled": true}
	}
	return cfg, nil
}

// httpSecret reads the secret kept in dir, making it on first use.
func httpSecret(dir string) (string, error) {
	p := filepath.Join(dir, ".berth-http-secret")
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("registry storage %s: %w", dir, err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	secret := hex.EncodeToString(b)
	if err := atomicfile.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("registry storage %s: %w", dir, err)
	}
	return secret, nil
}

// simpleConfig is the registry without a config file: filesystem storage
// (set by Config), deletes on, a blob descriptor cache in memory, and a
// storage health check.
const simpleConfig = `
version: 0.1
log:
  level: warn
  formatter: text
storage:
  filesystem:
    rootdirectory: /nonexistent
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
http:
  headers:
    X-Content-Type-Options: [nosniff]
validation:
  manifests:
    urls:
      # non-distributable layers may name where they are (as Windows
      # base layers do); pulling clients decide whether to fetch them
      allow: ['^https?://']
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`

// New makes a server and opens its listener (so that Addr is known at
// once); Serve starts answering.
func New(ctx context.Context, o Options) (*Server, error) {
	cfg, err := Config(o)
	if err != nil {
		return nil, err
	}
	logw := o.Log
	if logw == nil {
		logw = os.Stderr
	}
	// distribution logs through logrus; one logger for the process.
	logrus.SetOutput(logw)
	if lvl, err := logrus.ParseLevel(string(cfg.Log.Level)); err == nil {
		logrus.SetLevel(lvl)
	}
	ctx, cancel := context.WithCancel(ctx)
	app, err := newApp(ctx, cfg)
	if err != nil {
		cancel()
		return nil, err
	}
	checks := health.NewRegistry()
	app.RegisterHealthChecks(checks)

	driver, err := factory.Create(ctx, cfg.Storage.Type(), cfg.Storage.Parameters())
	if err != nil {
		cancel()
		return nil, fmt.Errorf("registry storage: %w", err)
	}
	ns, err := storage.NewRegistry(ctx, driver, storage.EnableDelete)
	if err != nil {
		cancel()
		return nil, err
	}
	var access auth.AccessController
	if t := cfg.Auth.Type(); t != "" {
		if access, err = auth.GetAccessController(t, cfg.Auth.Parameters()); err != nil {
			cancel()
			return nil, fmt.Errorf("registry auth %s: %w", t, err)
		}
	}
	var h http.Handler = app
	h = withAliases(h, driver)
	h = withOCI(h, ns, access)
	h = withHealth(h, checks)
	if o.AccessLog != nil {
		h = accessLog(h, o.AccessLog)
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("registry: listen on %s: %w", cfg.HTTP.Addr, err)
	}
	s := &Server{ln: ln, app: app, cancel: cancel, drain: o.DrainTimeout, http: &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}}
	if s.drain == 0 {
		s.drain = 10 * time.Second
	}
	if cfg.Storage.Type() == "filesystem" {
		s.storage, _ = cfg.Storage.Parameters()["rootdirectory"].(string)
	}
	if cfg.HTTP.TLS.Certificate != "" {
		cert, err := tls.LoadX509KeyPair(cfg.HTTP.TLS.Certificate, cfg.HTTP.TLS.Key)
		if err != nil {
			ln.Close()
			cancel()
			return nil, fmt.Errorf("registry: TLS certificate: %w", err)
		}
		s.ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
		s.tls = true
	}
	return s, nil
}

// newApp makes distribution's application, which panics on a
// configuration it cannot use: that is an error here.
func newApp(ctx context.Context, cfg *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("registry config: %v: %w", r, errdefs.ErrInvalidArgument)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the server's base URL.
func (s *Server) URL() string {
	if s.tls {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// StorageDir is the filesystem storage's root ("" for another driver).
func (s *Server) StorageDir() string { return s.storage }

// Serve answers requests until Shutdown.
func (s *Server) Serve() error {
	err := s.http.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops taking connections and lets the requests in flight end,
// for at most the drain timeout.
func (s *Server) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.drain)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if aerr := s.app.Shutdown(); aerr != nil {
		err = errors.Join(err, aerr)
	}
	s.cancel()
	return err
}

// withHealth answers /healthz (and distribution's /debug/health) from the
// server's checks: 200 and {} when all pass, 503 and the failures otherwise.
func withHealth(next http.Handler, checks *health.Registry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && r.URL.Path != "/debug/health" {
			next.ServeHTTP(w, r)
			return
		}
		status := checks.CheckStatus(r.Context())
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		code := http.StatusOK
		if len(status) > 0 {
			code = http.StatusServiceUnavailable
		}
		w.WriteHeader(code)
		writeJSON(w, status)
	})
}

// accessLog writes one combined-log-format line per request.
func accessLog(next http.Handler, w io.Writer) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: rw, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		user := "-"
		if u, _, ok := r.BasicAuth(); ok && u != "" {
			user = u
		}
		fmt.Fprintf(w, "%s - %s [%s] %q %d %d %q %q %.3fms\n", host, user, start.Format("02/Jan/2006:15:04:05 -0700"),
			r.Method+" "+r.URL.RequestURI()+" "+r.Proto, rec.code, rec.n, r.Referer(), r.UserAgent(), float64(time.Since(start).Microseconds())/1000)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
	n    int64
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	n, err := s.ResponseWriter.Write(b)
	s.n += int64(n)
	return n, err
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// GCOptions control GC.
type GCOptions struct {
	DryRun bool
	// RemoveUntagged also deletes manifests no tag points to.
	RemoveUntagged bool
	Log            io.Writer
}

// GC marks every blob a manifest of any repository refers to and deletes
// the rest (distribution's mark and sweep). The registry must not take
// pushes meanwhile: run it with the server stopped or read-only.
func GC(ctx context.Context, o Options, g GCOptions) error {
	cfg, err := Config(o)
	if err != nil {
		return err
	}
	if g.Log != nil {
		logrus.SetOutput(g.Log)
	}
	driver, err := factory.Create(ctx, cfg.Storage.Type(), cfg.Storage.Parameters())
	if err != nil {
		return fmt.Errorf("registry storage: %w", err)
	}
	ns, err := storage.NewRegistry(ctx, driver, storage.EnableDelete)
	if err != nil {
		return err
	}
	if err := storage.MarkAndSweep(ctx, driver, ns, storage.GCOpts{DryRun: g.DryRun, RemoveUntagged: g.RemoveUntagged}); err != nil {
		return fmt.Errorf("registry gc: %w", err)
	}
	return nil
}
