package registry

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/berthproject/berth/errdefs"
)

// Hosts is what berth knows of registries besides their names: which are
// insecure (plain HTTP, or TLS not verified), which have mirrors, and
// which CA signs each one's certificate.
type Hosts struct {
	registries map[string]hostConfig
	// CertDirs are searched for <host>/ca.crt (and client certs), first
	// match wins.
	CertDirs []string
}

type hostConfig struct {
	Insecure bool
	Blocked  bool
	Mirrors  []Mirror
}

// Mirror is a registry to try before the one an image is named by.
type Mirror struct {
	Location string
	Insecure bool
}

// registriesConf is the part of containers-registries.conf(5) v2 berth
// reads.
type registriesConf struct {
	Registry []struct {
		Prefix   string `toml:"prefix"`
		Location string `toml:"location"`
		Insecure bool   `toml:"insecure"`
		Blocked  bool   `toml:"blocked"`
		Mirror   []struct {
			Location string `toml:"location"`
			Insecure bool   `toml:"insecure"`
		} `toml:"mirror"`
	} `toml:"registry"`
}

// DefaultRegistriesConf are the files read when none is named: the
// system's, then the user's (which wins).
func DefaultRegistriesConf() []string {
	paths := []string{"/etc/containers/registries.conf"}
	if home, err := os.UserHomeDir(); err == nil {
		paths = append(paths, filepath.Join(home, ".config", "containers", "registries.conf"))
	}
	return paths
}

// DefaultCertDirs are where a registry's CA is looked for.
func DefaultCertDirs() []string {
	dirs := []string{"/etc/containers/certs.d", "/etc/docker/certs.d"}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append([]string{filepath.Join(home, ".config", "containers", "certs.d")}, dirs...)
	}
	return dirs
}

// LoadHosts reads registries.conf files (missing ones are skipped; a file
// that does not parse is an error, not silently ignored).
func LoadHosts(confFiles []string, certDirs []string) (*Hosts, error) {
	h := &Hosts{registries: map[string]hostConfig{}, CertDirs: certDirs}
	for _, p := range confFiles {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("registries config %s: %w", p, err)
		}
		var c registriesConf
		if _, err := toml.Decode(string(b), &c); err != nil {
			return nil, fmt.Errorf("registries config %s: %v: %w", p, err, errdefs.ErrInvalidArgument)
		}
		for _, r := range c.Registry {
			host := r.Location
			if host == "" {
				host = r.Prefix
			}
			host = strings.TrimSuffix(host, "/")
			if host == "" {
				continue
			}
			hc := hostConfig{Insecure: r.Insecure, Blocked: r.Blocked}
			for _, m := range r.Mirror {
				hc.Mirrors = append(hc.Mirrors, Mirror{Location: strings.TrimSuffix(m.Location, "/"), Insecure: m.Insecure})
			}
			h.registries[host] = hc
		}
	}
	return h, nil
}

// SetInsecure marks a registry insecure (--tls-verify=false).
func (h *Hosts) SetInsecure(host string) {
	hc := h.registries[host]
	hc.Insecure = true
	h.registries[host] = hc
}

func (h *Hosts) config(host string) hostConfig {
	if hc, ok := h.registries[host]; ok {
		return hc
	}
	if host == "index.docker.io" || host == "registry-1.docker.io" {
		return h.registries["docker.io"]
	}
	return hostConfig{}
}

// Insecure reports whether host may be reached over plain HTTP or with an
// unverified certificate. Loopback addresses are, as in Docker.
func (h *Hosts) Insecure(host string) bool {
	if h.config(host).Insecure {
		return true
	}
	hn := host
	if hp, _, err := net.SplitHostPort(host); err == nil {
		hn = hp
	}
	if hn == "localhost" {
		return true
	}
	ip := net.ParseIP(hn)
	return ip != nil && ip.IsLoopback()
}

// Blocked reports whether registries.conf forbids host.
func (h *Hosts) Blocked(host string) bool { return h.config(host).Blocked }

// Mirrors lists host's mirrors, in order.
func (h *Hosts) Mirrors(host string) []Mirror { return h.config(host).Mirrors }

// Transport is the HTTP transport for host: its CA from the cert dirs
// (with the system's), a client certificate if one is there, and no
// certificate check for an insecure host.
func (h *Hosts) Transport(host string) (http.RoundTripper, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	for _, dir := range h.CertDirs {
		d := filepath.Join(dir, host)
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			p := filepath.Join(d, e.Name())
			switch {
			case strings.HasSuffix(e.Name(), ".crt"):
				b, err := os.ReadFile(p)
				if err != nil {
					return nil, fmt.Errorf("registry %s: CA %s: %w", host, p, err)
				}
				if !pool.AppendCertsFromPEM(b) {
					return nil, fmt.Errorf("registry %s: %s holds no PEM certificate: %w", host, p, errdefs.ErrInvalidArgument)
				}
			case strings.HasSuffix(e.Name(), ".cert"):
				key := strings.TrimSuffix(p, ".cert") + ".key"
				c, err := tls.LoadX509KeyPair(p, key)
				if err != nil {
					return nil, fmt.Errorf("registry %s: client certificate %s: %w", host, p, err)
				}
				cfg.Certificates = append(cfg.Certificates, c)
			}
		}
		break
	}
	if h.Insecure(host) {
		cfg.InsecureSkipVerify = true
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       cfg,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
	}, nil
}
