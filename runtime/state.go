package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/cgroup"
)

// Status is a container's state as the runtime spec names it.
type Status string

// The statuses of the runtime spec, plus paused as runc reports it.
const (
	Creating Status = "creating"
	Created  Status = "created"
	Running  Status = "running"
	Paused   Status = "paused"
	Stopped  Status = "stopped"
)

const (
	stateFile = "state.json"
	fifoName  = "exec.fifo"
)

// ErrNotExist is returned when no container has the given id.
var ErrNotExist = errors.New("container does not exist")

// ErrExist is returned by Create when the id is taken.
var ErrExist = errors.New("container already exists")

// ErrInvalidState is returned when an operation does not fit the container's
// current status (start of a running container, kill of a stopped one).
var ErrInvalidState = errors.New("invalid container state")

// containerState is what state.json holds. It is written once at create
// (and rewritten by update) and read by every other command.
type containerState struct {
	ID           string            `json:"id"`
	Pid          int               `json:"pid"`
	PidStartTime uint64            `json:"pidStartTime"`
	Bundle       string            `json:"bundle"`
	Rootfs       string            `json:"rootfs"`
	Created      time.Time         `json:"created"`
	Owner        string            `json:"owner"`
	CgroupPaths  map[string]string `json:"cgroupPaths,omitempty"`
	Config       *specs.Spec       `json:"config"`
}

// ContainerState is what `state` and `list --format json` print: runc's
// output, which tools such as podman and containerd parse.
type ContainerState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      Status            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Owner       string            `json:"owner"`
}

var validID = regexp.MustCompile(`^[\w+\-.]+$`)

// checkID refuses ids that could escape the state directory or confuse
// tools reading it.
func checkID(id string) error {
	if id == "" {
		return fmt.Errorf("container id cannot be empty: %w", unix.EINVAL)
	}
	if !validID.MatchString(id) || id == "." || id == ".." || len(id) > 1024 {
		return fmt.Errorf("invalid container id %q: use letters, digits, '_', '+', '-' and '.': %w", id, unix.EINVAL)
	}
	return nil
}

func (r *Runtime) dir(id string) string { return filepath.Join(r.Root, id) }

func (r *Runtime) load(id string) (*containerState, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(r.dir(id), stateFile))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("container %q: %w", id, ErrNotExist)
		}
		return nil, fmt.Errorf("container %q: read state: %w", id, err)
	}
	var st containerState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("container %q: corrupt state file: %w", id, err)
	}
	return &st, nil
}

func (r *Runtime) save(st *containerState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.dir(st.ID), stateFile), b, 0o600)
}

// writeFileAtomic writes through a temporary file, fsync and rename so a
// reader sees the old content or the new, never a torn one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// procStat returns a process's start time (clock ticks since boot) and its
// state letter from /proc/PID/stat.
func procStat(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0][0], err
}

// alive says whether the container's init is the same live process that
// create started: the pid alone could have been reused.
func (st *containerState) alive() bool {
	if st.Pid <= 0 {
		return false
	}
	start, state, err := procStat(st.Pid)
	if err != nil || start != st.PidStartTime {
		return false
	}
	return state != 'Z' && state != 'X'
}

func (r *Runtime) status(st *containerState) Status {
	if !st.alive() {
		return Stopped
	}
	if _, err := os.Lstat(filepath.Join(r.dir(st.ID), fifoName)); err == nil {
		return Created
	}
	if len(st.CgroupPaths) > 0 {
		if m, err := cgroup.Load(st.CgroupPaths); err == nil {
			if frozen, err := m.Frozen(); err == nil && frozen {
				return Paused
			}
		}
	}
	return Running
}

func (r *Runtime) external(st *containerState) ContainerState {
	cs := ContainerState{
		OCIVersion: specs.Version,
		ID:         st.ID,
		Status:     r.status(st),
		Bundle:     st.Bundle,
		Rootfs:     st.Rootfs,
		Created:    st.Created,
		Owner:      st.Owner,
	}
	if st.Config != nil {
		cs.Annotations = st.Config.Annotations
	}
	// The init's pid stays visible once stopped: hooks and callers match it
	// against what they saw while it ran.
	cs.Pid = st.Pid
	return cs
}

// State returns the container's state as runc prints it.
func (r *Runtime) State(id string) (*ContainerState, error) {
	st, err := r.load(id)
	if err != nil {
		return nil, err
	}
	cs := r.external(st)
	return &cs, nil
}

// List returns every container under the root, sorted by id. Entries whose
// state cannot be read are skipped: a concurrent create or delete may be
// halfway.
func (r *Runtime) List() ([]ContainerState, error) {
	ents, err := os.ReadDir(r.Root)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", r.Root, err)
	}
	var out []ContainerState
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		st, err := r.load(e.Name())
		if err != nil {
			continue
		}
		out = append(out, r.external(st))
	}
	return out, nil
}

// lockDir takes an exclusive flock on the container's directory so that two
// commands acting on one container (delete racing start) do not interleave.
func lockDir(dir string) (func(), error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return func() { unix.Close(fd) }, nil
}

// Config returns the configuration a container was created with (update
// changes its resources).
func (r *Runtime) Config(id string) (*specs.Spec, error) {
	st, err := r.load(id)
	if err != nil {
		return nil, err
	}
	return st.Config, nil
}

// ownerName is the name of the user running the runtime, as runc reports
// it in a container's owner field.
func ownerName() string {
	if u, err := user.LookupId(strconv.Itoa(os.Geteuid())); err == nil {
		return u.Username
	}
	return "#" + strconv.Itoa(os.Geteuid())
}
