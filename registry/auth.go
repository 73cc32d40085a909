package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"github.com/berthproject/berth/errdefs"
	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// dockerHubKey is Docker Hub's key in config.json, as docker login writes it.
const dockerHubKey = "https://index.docker.io/v1/"

// Credentials finds a registry's credentials in the files Docker and
// Podman keep them in, in order: AuthFile (--authfile) when set, Docker's
// config.json (with its credential helpers), $REGISTRY_AUTH_FILE, and
// Podman's auth.json. Login writes to AuthFile, or to Docker's config.json.
type Credentials struct {
	AuthFile string
}

// dockerConfigDir is $DOCKER_CONFIG or ~/.docker.
func dockerConfigDir() string { return config.Dir() }

func (c Credentials) files() []string {
	var out []string
	if c.AuthFile != "" {
		out = append(out, c.AuthFile)
	}
	out = append(out, filepath.Join(dockerConfigDir(), config.ConfigFileName))
	if p := os.Getenv("REGISTRY_AUTH_FILE"); p != "" {
		out = append(out, p)
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		out = append(out, filepath.Join(d, "containers", "auth.json"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		out = append(out, filepath.Join(home, ".config", "containers", "auth.json"))
	}
	return out
}

func loadConfig(p string) (*configfile.ConfigFile, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cf := configfile.New(p)
	if err := cf.LoadFromReader(f); err != nil {
		return nil, fmt.Errorf("credentials file %s: %v: %w", p, err, errdefs.ErrInvalidArgument)
	}
	return cf, nil
}

// keys are the names a registry's entry may have in a credentials file.
func keys(host string) []string {
	if host == name.DefaultRegistry || host == "docker.io" || host == "registry-1.docker.io" {
		return []string{dockerHubKey, "index.docker.io", "docker.io", "registry-1.docker.io", "https://index.docker.io/v1"}
	}
	return []string{host, "https://" + host, "http://" + host}
}

// Resolve implements authn.Keychain: anonymous when no file has the
// registry.
func (c Credentials) Resolve(target authn.Resource) (authn.Authenticator, error) {
	host := target.RegistryStr()
	for _, p := range c.files() {
		cf, err := loadConfig(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, k := range keys(host) {
			ac, err := cf.GetAuthConfig(k)
			if err != nil {
				return nil, fmt.Errorf("credentials for %s from %s: %w", host, p, err)
			}
			if ac.Username != "" || ac.Password != "" || ac.Auth != "" || ac.IdentityToken != "" || ac.RegistryToken != "" {
				return authn.FromConfig(authn.AuthConfig{Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
					IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}), nil
			}
		}
	}
	return authn.Anonymous, nil
}

// ServerKey is the key Login stores a registry's credentials under.
func ServerKey(server string) (string, error) {
	reg, err := name.NewRegistry(server)
	if err != nil {
		return "", fmt.Errorf("registry %q: %v: %w", server, err, errdefs.ErrInvalidArgument)
	}
	if reg.RegistryStr() == name.DefaultRegistry {
		return dockerHubKey, nil
	}
	return reg.RegistryStr(), nil
}

// Login checks the credentials with the registry (its /v2/ endpoint, and a
// token exchange where it uses tokens) and stores them: in a credential
// helper when config.json names one, else in the file, as docker login
// does. Wrong credentials are an error and nothing is stored.
func (cl *Client) Login(ctx context.Context, server, user, password string) error {
	key, err := ServerKey(server)
	if err != nil {
		return err
	}
	reg, err := cl.registry(server)
	if err != nil {
		return err
	}
	base, err := cl.hosts.Transport(reg.RegistryStr())
	if err != nil {
		return err
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	// A scope a token server grants to any valid account: the registry's
	// own catalog is refused by many, so ask for a pull of a repository.
	rt, err := transport.NewWithContext(ctx, reg, auth, base, []string{reg.Repo("library/berth-login-check").Scope(transport.PullScope)})
	if err != nil {
		return loginError(reg.RegistryStr(), err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+"/v2/", nil)
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return loginError(reg.RegistryStr(), err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("login to %s: the registry refused the credentials (HTTP %d): %w", reg.RegistryStr(), resp.StatusCode, errdefs.ErrPermissionDenied)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("login to %s: the registry answered HTTP %d: %w", reg.RegistryStr(), resp.StatusCode, errdefs.ErrUnavailable)
	}
	cf, err := cl.creds.writable()
	if err != nil {
		return err
	}
	if err := cf.GetCredentialsStore(key).Store(types.AuthConfig{Username: user, Password: password, ServerAddress: key}); err != nil {
		return fmt.Errorf("login to %s: store the credentials: %w", reg.RegistryStr(), err)
	}
	if err := cf.Save(); err != nil {
		return fmt.Errorf("login to %s: %w", reg.RegistryStr(), err)
	}
	return nil
}

func loginError(host string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		return fmt.Errorf("login to %s: the registry refused the credentials: %w", host, errdefs.ErrPermissionDenied)
	}
	return fmt.Errorf("login to %s: %v: %w", host, err, errdefs.ErrUnavailable)
}

// Logout removes the credentials Login stored for server. Not being
// logged in is an error, as in Docker.
func (cl *Client) Logout(server string) error {
	key, err := ServerKey(server)
	if err != nil {
		return err
	}
	cf, err := cl.creds.writable()
	if err != nil {
		return err
	}
	found := false
	for _, k := range keys(keyHost(key)) {
		if ac, err := cf.GetAuthConfig(k); err == nil && (ac.Username != "" || ac.Auth != "" || ac.IdentityToken != "") {
			if err := cf.GetCredentialsStore(k).Erase(k); err != nil {
				return fmt.Errorf("logout from %s: %w", server, err)
			}
			found = true
		}
	}
	if !found {
		return fmt.Errorf("not logged in to %s: %w", server, errdefs.ErrNotFound)
	}
	return cf.Save()
}

func keyHost(key string) string {
	if key == dockerHubKey {
		return name.DefaultRegistry
	}
	return key
}

// writable is the file Login and Logout change: AuthFile, or Docker's
// config.json (made when missing).
func (c Credentials) writable() (*configfile.ConfigFile, error) {
	p := c.AuthFile
	if p == "" {
		p = filepath.Join(dockerConfigDir(), config.ConfigFileName)
	}
	cf, err := loadConfig(p)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, err
		}
		return configfile.New(p), nil
	}
	return cf, err
}
