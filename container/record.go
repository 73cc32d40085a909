package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/internal/atomicfile"
	"github.com/berthproject/berth/internal/flock"
	digest "github.com/opencontainers/go-digest"
)

// Status is a container's state, in Docker's words.
type Status string

const (
	StatusCreated  Status = "created"
	StatusRunning  Status = "running"
	StatusPaused   Status = "paused"
	StatusExited   Status = "exited"
	StatusRemoving Status = "removing"
	StatusDead     Status = "dead"
)

// Config is what the container runs, as Docker's container config holds it.
type Config struct {
	Hostname     string              `json:"Hostname"`
	User         string              `json:"User"`
	Env          []string            `json:"Env"`
	Cmd          []string            `json:"Cmd"`
	Entrypoint   []string            `json:"Entrypoint"`
	WorkingDir   string              `json:"WorkingDir"`
	Labels       map[string]string   `json:"Labels"`
	Tty          bool                `json:"Tty"`
	OpenStdin    bool                `json:"OpenStdin"`
	StdinOnce    bool                `json:"StdinOnce"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	StopTimeout  *int                `json:"StopTimeout,omitempty"`
	Volumes      map[string]struct{} `json:"Volumes,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Image        string              `json:"Image"`
}

// HostConfig is how the container runs on this host.
type HostConfig struct {
	Binds          []string          `json:"Binds,omitempty"`
	Tmpfs          map[string]string `json:"Tmpfs,omitempty"`
	ReadonlyRootfs bool              `json:"ReadonlyRootfs"`
	Memory         int64             `json:"Memory"`
	NanoCpus       int64             `json:"NanoCpus"`
	CpuShares      int64             `json:"CpuShares"`
	PidsLimit      int64             `json:"PidsLimit,omitempty"`
	CapAdd         []string          `json:"CapAdd"`
	CapDrop        []string          `json:"CapDrop"`
	Privileged     bool              `json:"Privileged"`
	SecurityOpt    []string          `json:"SecurityOpt"`
	Ulimits        []Ulimit          `json:"Ulimits"`
	GroupAdd       []string          `json:"GroupAdd"`
	NetworkMode    string            `json:"NetworkMode"`
	AutoRemove     bool              `json:"AutoRemove"`
	Init           bool              `json:"Init,omitempty"`
	Runtime        string            `json:"Runtime"`
	LogConfig      LogConfig         `json:"LogConfig"`
	RestartPolicy  struct {
		Name string `json:"Name"`
	} `json:"RestartPolicy"`
}

// Ulimit is one --ulimit.
type Ulimit struct {
	Name string `json:"Name"`
	Soft int64  `json:"Soft"`
	Hard int64  `json:"Hard"`
}

// LogConfig is --log-driver and --log-opt.
type LogConfig struct {
	Type   string            `json:"Type"`
	Config map[string]string `json:"Config"`
}

// Mount is one mount of the container's, resolved.
type Mount struct {
	Type        string `json:"Type"` // bind, volume, tmpfs
	Name        string `json:"Name,omitempty"`
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
	Mode        string `json:"Mode"`
	RW          bool   `json:"RW"`
	Options     string `json:"Options,omitempty"` // tmpfs options
	Anonymous   bool   `json:"Anonymous,omitempty"`
	// RecursiveReadOnly: a read-only bind is read-only in the mounts
	// below its source too (--mount bind-recursive=readonly).
	RecursiveReadOnly bool `json:"RecursiveReadOnly,omitempty"`
}

// State is the container's state as last recorded.
type State struct {
	Status     Status    `json:"Status"`
	Pid        int       `json:"Pid"`
	ExitCode   int       `json:"ExitCode"`
	Error      string    `json:"Error"`
	StartedAt  time.Time `json:"StartedAt"`
	FinishedAt time.Time `json:"FinishedAt"`
	OOMKilled  bool      `json:"OOMKilled"`
	// MonitorPid and MonitorStart identify the monitor process (pid and
	// its start time in clock ticks, so that a reused pid is not taken for it).
	MonitorPid   int    `json:"MonitorPid,omitempty"`
	MonitorStart uint64 `json:"MonitorStart,omitempty"`
}

// Container is a container's record.
type Container struct {
	ID         string        `json:"Id"`
	Name       string        `json:"Name"`
	Created    time.Time     `json:"Created"`
	Image      string        `json:"Image"`
	ImageID    digest.Digest `json:"ImageID"`
	Config     Config        `json:"Config"`
	HostConfig HostConfig    `json:"HostConfig"`
	Mounts     []Mount       `json:"Mounts"`
	State      State         `json:"State"`
	// Path and Args are the resolved command (entrypoint and cmd).
	Path string   `json:"Path"`
	Args []string `json:"Args"`
	// Snapshot is the container's read-write snapshot key.
	Snapshot string `json:"Snapshot"`
	// RuntimePath and RuntimeRoot are the runtime it runs with.
	RuntimePath  string `json:"RuntimePath"`
	RuntimeRoot  string `json:"RuntimeRoot"`
	RestartCount int    `json:"RestartCount"`
}

// Short is the 12-hex ID Docker shows.
func (c *Container) Short() string { return c.ID[:12] }

func newID() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (e *Engine) dir(id string) string        { return filepath.Join(e.root, "containers", id) }
func (e *Engine) runDir(id string) string     { return filepath.Join(e.runRoot, "containers", id) }
func (e *Engine) namesDir() string            { return filepath.Join(e.root, "containers", "names") }
func (e *Engine) recordPath(id string) string { return filepath.Join(e.dir(id), "container.json") }

func (e *Engine) globalLock() (*flock.Lock, error) {
	return flock.Exclusive(filepath.Join(e.root, "containers", "lock"))
}

func (e *Engine) lock(id string) (*flock.Lock, error) {
	return flock.Exclusive(filepath.Join(e.dir(id), "lock"))
}

func (e *Engine) read(id string) (*Container, error) {
	b, err := os.ReadFile(e.recordPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &NotFoundError{Ref: id}
	}
	if err != nil {
		return nil, err
	}
	var c Container
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("container %s: record is damaged: %w: %w", id, errdefs.ErrDataLoss, err)
	}
	return &c, nil
}

func (e *Engine) write(c *Container) error {
	b, err := json.MarshalIndent(c, "", "\t")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(e.recordPath(c.ID), b, 0o600)
}

// NotFoundError names the container that is not there.
type NotFoundError struct{ Ref string }

func (e *NotFoundError) Error() string { return "no such container: " + e.Ref }
func (e *NotFoundError) Unwrap() error { return errdefs.ErrNotFound }

var hexRef = regexp.MustCompile(`^[0-9a-f]{1,64}$`)

// resolve finds a container's ID from a name or an ID prefix.
func (e *Engine) resolve(ref string) (string, error) {
	ref = strings.TrimPrefix(ref, "/")
	if ref == "" {
		return "", fmt.Errorf("empty container name: %w", errdefs.ErrInvalidArgument)
	}
	if validName.MatchString(ref) {
		if b, err := os.ReadFile(filepath.Join(e.namesDir(), ref)); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
	}
	if hexRef.MatchString(ref) {
		ents, err := os.ReadDir(filepath.Join(e.root, "containers"))
		if err != nil {
			return "", err
		}
		match := ""
		for _, en := range ents {
			if len(en.Name()) == 64 && strings.HasPrefix(en.Name(), ref) {
				if _, err := os.Stat(e.recordPath(en.Name())); err != nil {
					continue
				}
				if match != "" {
					return "", fmt.Errorf("container ID prefix %q is ambiguous: %w", ref, errdefs.ErrInvalidArgument)
				}
				match = en.Name()
			}
		}
		if match != "" {
			return match, nil
		}
	}
	return "", &NotFoundError{Ref: ref}
}

// validName is Docker's rule for container names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// reserveName claims a name for id; the global lock must be held.
func (e *Engine) reserveName(name, id string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed: %w", name, errdefs.ErrInvalidArgument)
	}
	p := filepath.Join(e.namesDir(), name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		other, _ := os.ReadFile(p)
		owner := strings.TrimSpace(string(other))
		if _, err := os.Stat(e.recordPath(owner)); err == nil {
			short := owner
			if len(short) > 12 {
				short = short[:12]
			}
			return fmt.Errorf("the container name %q is already in use by container %s: remove or rename that container to reuse the name: %w", name, short, errdefs.ErrConflict)
		}
		// The owner is gone (a removal interrupted): take it over.
		return atomicfile.WriteFile(p, []byte(id), 0o600)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteString(id); err != nil {
		return err
	}
	return f.Sync()
}

func (e *Engine) releaseName(name, id string) {
	p := filepath.Join(e.namesDir(), name)
	if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == id {
		os.Remove(p)
	}
}

// List returns every container, its state reconciled with what runs.
func (e *Engine) List(ctx context.Context) ([]*Container, error) {
	ents, err := os.ReadDir(filepath.Join(e.root, "containers"))
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, en := range ents {
		if len(en.Name()) != 64 {
			continue
		}
		c, err := e.read(en.Name())
		if err != nil {
			continue // removed meanwhile, or half created
		}
		if c, removed := e.reconcile(ctx, c); !removed {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Get returns a container by name or ID prefix, its state reconciled.
func (e *Engine) Get(ctx context.Context, ref string) (*Container, error) {
	id, err := e.resolve(ref)
	if err != nil {
		return nil, err
	}
	c, err := e.read(id)
	if err != nil {
		return nil, err
	}
	c, removed := e.reconcile(ctx, c)
	if removed {
		return nil, &NotFoundError{Ref: ref}
	}
	return c, nil
}
