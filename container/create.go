package container

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/ocirt"
	"github.com/berthproject/berth/snapshot"
	units "github.com/docker/go-units"
)

// CreateOptions are `berth create` and `berth run`'s flags.
type CreateOptions struct {
	Name        string
	Image       string
	Cmd         []string
	Entrypoint  *string
	Env         []string
	EnvFiles    []string
	WorkingDir  string
	User        string
	GroupAdd    []string
	Hostname    string
	Labels      map[string]string
	Tty         bool
	Interactive bool
	AutoRemove  bool
	Init        bool
	Volumes     []string
	Mounts      []string
	Tmpfs       []string
	ReadOnly    bool
	Memory      string
	CPUs        string
	CPUShares   int64
	PidsLimit   int64
	CapAdd      []string
	CapDrop     []string
	Privileged  bool
	SecurityOpt []string
	Ulimits     []string
	StopSignal  string
	StopTimeout *int
	LogDriver   string
	LogOpts     []string
	Runtime     string
	Network     string
	Restart     string
	// Attached: the creator will attach (run without -d), so stdin closes
	// when the attached client's input ends.
	Attached bool
	// NoImageVolumes: the image's VOLUMEs get no anonymous volumes, so
	// that what the container writes there is in its file system (a
	// build's RUN, whose writes BuildKit keeps).
	NoImageVolumes bool
}

// labelOwner marks a container's snapshot, so that image garbage
// collection keeps it.
const labelOwner = "berth.io/owner"

func invalid(format string, a ...any) error {
	return fmt.Errorf(format+": %w", append(a, errdefs.ErrInvalidArgument)...)
}

// Create makes a container: its record, its name and its read-write
// snapshot. Nothing is left behind when it fails.
func (e *Engine) Create(ctx context.Context, o CreateOptions) (*Container, error) {
	c := &Container{ID: newID(), Created: time.Now().UTC(), Image: o.Image}
	if err := e.configure(ctx, c, o); err != nil {
		return nil, err
	}
	img, err := e.images.Get(ctx, o.Image)
	if err != nil {
		return nil, err
	}
	if e.check != nil {
		if err := e.check(ctx, o.Image); err != nil {
			return nil, err
		}
	}
	cfg, err := e.images.Config(ctx, img)
	if err != nil {
		return nil, err
	}
	c.ImageID = img.ID
	ic := cfg.Config
	// The image's config, then the flags over it, as Docker merges them.
	c.Config.Env = mergeEnv(ic.Env, c.Config.Env)
	if o.Entrypoint != nil {
		c.Config.Entrypoint = nil
		if *o.Entrypoint != "" {
			c.Config.Entrypoint = []string{*o.Entrypoint}
		}
		if len(o.Cmd) == 0 {
			c.Config.Cmd = nil
		}
	} else {
		c.Config.Entrypoint = ic.Entrypoint
		if len(o.Cmd) == 0 {
			c.Config.Cmd = ic.Cmd
		}
	}
	if c.Config.WorkingDir == "" {
		c.Config.WorkingDir = ic.WorkingDir
	}
	if c.Config.User == "" {
		c.Config.User = ic.User
	}
	if c.Config.StopSignal == "" {
		c.Config.StopSignal = ic.StopSignal
	}
	labels := map[string]string{}
	for k, v := range ic.Labels {
		labels[k] = v
	}
	for k, v := range o.Labels {
		labels[k] = v
	}
	c.Config.Labels = labels
	c.Config.Volumes = ic.Volumes
	c.Config.ExposedPorts = ic.ExposedPorts
	argv := append(append([]string(nil), c.Config.Entrypoint...), c.Config.Cmd...)
	if len(argv) == 0 {
		return nil, fmt.Errorf("no command specified: the image %s has no CMD or ENTRYPOINT; give a command after the image name: %w", o.Image, errdefs.ErrInvalidArgument)
	}
	c.Path, c.Args = argv[0], argv[1:]

	rt, err := ocirt.Find(o.Runtime, e.binDir, filepath.Join(e.runRoot, "runtime"))
	if err != nil {
		return nil, err
	}
	c.RuntimePath, c.RuntimeRoot = rt.Path, rt.Root

	// Mounts the image asks for (VOLUME) get anonymous volumes unless the
	// user mounts something there.
	for p := range ic.Volumes {
		if o.NoImageVolumes {
			break
		}
		p = path.Clean(p)
		taken := false
		for _, m := range c.Mounts {
			if m.Destination == p {
				taken = true
			}
		}
		if !taken {
			c.Mounts = append(c.Mounts, Mount{Type: "volume", Destination: p, RW: true, Anonymous: true})
		}
	}

	gl, err := e.globalLock()
	if err != nil {
		return nil, err
	}
	defer gl.Unlock()
	if o.Name == "" {
		o.Name = e.freeName()
	}
	c.Name = o.Name
	if err := os.MkdirAll(e.dir(c.ID), 0o700); err != nil {
		return nil, err
	}
	undo := []func(){func() { os.RemoveAll(e.dir(c.ID)) }}
	fail := func(err error) (*Container, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return nil, err
	}
	if err := e.reserveName(c.Name, c.ID); err != nil {
		return fail(err)
	}
	undo = append(undo, func() { e.releaseName(c.Name, c.ID) })
	for i := range c.Mounts {
		m := &c.Mounts[i]
		if m.Type != "volume" {
			continue
		}
		v, err := e.volumes.Create(m.Name, nil, m.Anonymous)
		if err != nil {
			return fail(err)
		}
		if m.Name == "" {
			name := v.Name
			undo = append(undo, func() { e.volumes.Remove(name) })
		}
		m.Name, m.Source = v.Name, v.Mountpoint
	}
	c.Snapshot = "container-" + c.ID
	if _, err := e.images.Snapshots().Prepare(ctx, c.Snapshot, img.ChainID.String(), snapshot.WithLabels(map[string]string{labelOwner: "container:" + c.ID})); err != nil {
		return fail(fmt.Errorf("prepare the container's file system: %w", err))
	}
	undo = append(undo, func() { e.images.Snapshots().Remove(context.WithoutCancel(ctx), c.Snapshot) })
	c.State.Status = StatusCreated
	if err := e.write(c); err != nil {
		return fail(err)
	}
	return c, nil
}

// configure checks and records the flags.
func (e *Engine) configure(ctx context.Context, c *Container, o CreateOptions) error {
	if o.Image == "" {
		return invalid("no image given")
	}
	if o.Name != "" && !validName.MatchString(o.Name) {
		return invalid("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", o.Name)
	}
	switch o.Restart {
	case "", "no":
	default:
		return fmt.Errorf("--restart %s needs a supervisor, and berth is daemonless: create the container, then run `berth generate systemd NAME > /etc/systemd/system/NAME.service` and enable that unit (systemd restarts it): %w", o.Restart, errdefs.ErrNotImplemented)
	}
	switch o.Network {
	case "", "none", "host":
	case "bridge", "default":
		return fmt.Errorf("--network %s: bridge networking is not there yet; use --network none or --network host: %w", o.Network, errdefs.ErrNotImplemented)
	default:
		return fmt.Errorf("--network %q: berth has none and host (bridge networking comes later): %w", o.Network, errdefs.ErrInvalidArgument)
	}
	network := o.Network
	if network == "" {
		network = "none"
	}
	// Files in order, then -e: a later one wins, as in Docker.
	var env []string
	for _, f := range o.EnvFiles {
		fe, err := ReadEnvFile(f)
		if err != nil {
			return err
		}
		env = append(env, fe...)
	}
	env = append(env, o.Env...)
	for i, kv := range env {
		if !strings.Contains(kv, "=") {
			// -e NAME takes NAME from the caller's environment, or drops it.
			if v, ok := os.LookupEnv(kv); ok {
				env[i] = kv + "=" + v
			} else {
				env[i] = ""
			}
		}
		if strings.HasPrefix(kv, "=") {
			return invalid("invalid environment variable %q", kv)
		}
	}
	c.Config = Config{
		Hostname: o.Hostname, User: o.User, Env: compact(env), Cmd: o.Cmd, WorkingDir: o.WorkingDir,
		Tty: o.Tty, OpenStdin: o.Interactive, StdinOnce: o.Interactive && o.Attached,
		StopSignal: o.StopSignal, StopTimeout: o.StopTimeout, Image: o.Image,
	}
	if c.Config.Hostname == "" {
		c.Config.Hostname = c.ID[:12]
	}
	if o.WorkingDir != "" && !path.IsAbs(o.WorkingDir) {
		return invalid("the working directory %q is not an absolute path", o.WorkingDir)
	}
	if o.StopSignal != "" {
		if _, err := ParseSignal(o.StopSignal); err != nil {
			return err
		}
	}
	h := &c.HostConfig
	h.NetworkMode, h.AutoRemove, h.Init, h.Privileged, h.ReadonlyRootfs = network, o.AutoRemove, o.Init, o.Privileged, o.ReadOnly
	h.CapAdd, h.CapDrop, h.SecurityOpt, h.GroupAdd = o.CapAdd, o.CapDrop, o.SecurityOpt, o.GroupAdd
	h.Runtime = o.Runtime
	if h.Runtime == "" {
		h.Runtime = "berth-runtime"
	}
	h.RestartPolicy.Name = "no"
	if o.Memory != "" {
		n, err := units.RAMInBytes(o.Memory)
		if err != nil || n <= 0 {
			return invalid("invalid memory value %q: want a size such as 512m or 2g", o.Memory)
		}
		if n < 6<<20 {
			return invalid("--memory %s is below the minimum of 6MB a container needs", o.Memory)
		}
		h.Memory = n
	}
	if o.CPUs != "" {
		f, err := strconv.ParseFloat(o.CPUs, 64)
		if err != nil || !(f > 0) || math.IsInf(f, 0) || f*1e9 > math.MaxInt64 {
			return invalid("invalid --cpus value %q: want a positive number such as 1.5", o.CPUs)
		}
		h.NanoCpus = int64(f * 1e9)
	}
	if o.CPUShares < 0 {
		return invalid("--cpu-shares %d: must be positive", o.CPUShares)
	}
	h.CpuShares, h.PidsLimit = o.CPUShares, o.PidsLimit
	for _, u := range o.Ulimits {
		ul, err := parseUlimit(u)
		if err != nil {
			return err
		}
		h.Ulimits = append(h.Ulimits, ul)
	}
	for _, s := range o.SecurityOpt {
		k, v, _ := strings.Cut(s, "=")
		switch {
		case k == "seccomp" && v != "":
			if v != "unconfined" {
				if _, err := os.Stat(v); err != nil {
					return invalid("--security-opt seccomp=%s: %v", v, err)
				}
			}
		case s == "no-new-privileges" || s == "no-new-privileges=true" || s == "no-new-privileges:true" || s == "no-new-privileges=false":
		case k == "label" || k == "apparmor":
			// SELinux and AppArmor are not enabled on berth's hosts yet.
			return fmt.Errorf("--security-opt %s: berth does not apply SELinux or AppArmor labels yet: %w", s, errdefs.ErrNotImplemented)
		default:
			return invalid("--security-opt %q: berth takes seccomp=FILE|unconfined and no-new-privileges", s)
		}
	}
	h.LogConfig = LogConfig{Type: "json-file", Config: map[string]string{}}
	switch o.LogDriver {
	case "", "json-file", "k8s-file":
	case "none":
		h.LogConfig.Type = "none"
	default:
		return invalid("--log-driver %q: berth writes json-file logs (or none)", o.LogDriver)
	}
	for _, lo := range o.LogOpts {
		k, v, ok := strings.Cut(lo, "=")
		if !ok {
			return invalid("--log-opt %q: want KEY=VALUE", lo)
		}
		switch k {
		case "max-size":
			if _, err := units.RAMInBytes(v); err != nil {
				return invalid("--log-opt max-size=%s: want a size such as 10m", v)
			}
		case "max-file":
			if n, err := strconv.Atoi(v); err != nil || n < 1 {
				return invalid("--log-opt max-file=%s: want a positive count", v)
			}
		default:
			return invalid("--log-opt %q: berth's json-file log takes max-size and max-file", k)
		}
		h.LogConfig.Config[k] = v
	}
	for _, v := range o.Volumes {
		m, err := parseVolume(v)
		if err != nil {
			return err
		}
		c.Mounts = append(c.Mounts, m)
		h.Binds = append(h.Binds, v)
	}
	for _, s := range o.Mounts {
		m, err := parseMount(s)
		if err != nil {
			return err
		}
		c.Mounts = append(c.Mounts, m)
	}
	for _, t := range o.Tmpfs {
		dst, opts, _ := strings.Cut(t, ":")
		if !path.IsAbs(dst) {
			return invalid("--tmpfs %q: the destination must be an absolute path", t)
		}
		if path.Clean(dst) == "/" {
			return invalid("--tmpfs %q: the destination cannot be /", t)
		}
		if h.Tmpfs == nil {
			h.Tmpfs = map[string]string{}
		}
		h.Tmpfs[path.Clean(dst)] = opts
		c.Mounts = append(c.Mounts, Mount{Type: "tmpfs", Destination: path.Clean(dst), RW: true, Options: opts})
	}
	seen := map[string]bool{}
	for _, m := range c.Mounts {
		if seen[m.Destination] {
			return invalid("duplicate mount point %s", m.Destination)
		}
		seen[m.Destination] = true
	}
	return nil
}

func compact(env []string) []string {
	out := env[:0]
	for _, e := range env {
		if e != "" {
			out = append(out, e)
		}
	}
	return out
}

// mergeEnv puts the user's variables over the image's.
func mergeEnv(base, over []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, b := range out {
			if bk, _, _ := strings.Cut(b, "="); bk == k {
				out[i] = kv
				replaced = true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// ReadEnvFile reads a --env-file: KEY=VALUE lines, comments and blank
// lines skipped, a bare KEY taken from the caller's environment.
func ReadEnvFile(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, invalid("--env-file %s: %v", p, err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimLeft(sc.Text(), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, has := strings.Cut(line, "=")
		if k == "" || strings.ContainsAny(k, " \t") {
			return nil, invalid("--env-file %s line %d: %q is not KEY=VALUE", p, n, line)
		}
		if !has {
			if v, ok := os.LookupEnv(k); ok {
				line = k + "=" + v
			} else {
				continue
			}
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

// parseVolume reads -v SRC:DST[:OPTS] (SRC a host path or a volume name)
// or -v DST (an anonymous volume).
func parseVolume(s string) (Mount, error) {
	parts := strings.Split(s, ":")
	var m Mount
	switch len(parts) {
	case 1:
		m = Mount{Type: "volume", Destination: parts[0], Anonymous: true}
	case 2, 3:
		m = Mount{Source: parts[0], Destination: parts[1]}
		if len(parts) == 3 {
			m.Mode = parts[2]
		}
	default:
		return m, invalid("invalid volume specification %q: want SOURCE:DESTINATION[:ro|rw]", s)
	}
	if !path.IsAbs(m.Destination) {
		return m, invalid("invalid volume specification %q: the destination %q must be an absolute path", s, m.Destination)
	}
	m.Destination = path.Clean(m.Destination)
	if m.Destination == "/" {
		return m, invalid("invalid volume specification %q: the destination cannot be /", s)
	}
	m.RW = true
	for _, opt := range strings.Split(m.Mode, ",") {
		switch opt {
		case "", "rw", "z", "Z", "rprivate", "private", "rshared", "shared", "rslave", "slave", "nocopy", "consistent", "cached", "delegated":
		case "ro":
			m.RW = false
		default:
			return m, invalid("invalid volume specification %q: unknown option %q (ro, rw)", s, opt)
		}
	}
	if m.Type == "" {
		switch {
		case strings.HasPrefix(m.Source, "/"):
			m.Type = "bind"
			m.Source = filepath.Clean(m.Source)
			if _, err := os.Stat(m.Source); err != nil {
				// Docker creates a missing bind source directory; a typo
				// silently becoming an empty directory helps nobody, so
				// berth, like podman, refuses.
				return m, invalid("invalid volume specification %q: the host path %s does not exist", s, m.Source)
			}
		case strings.HasPrefix(m.Source, ".") || strings.Contains(m.Source, "/"):
			return m, invalid("invalid volume specification %q: a host path must be absolute", s)
		default:
			if len(m.Source) < 2 || !validVolumeName(m.Source) {
				return m, invalid("invalid volume specification %q: %q is neither an absolute host path nor a volume name", s, m.Source)
			}
			m.Type, m.Name, m.Source = "volume", m.Source, ""
		}
	}
	return m, nil
}

func validVolumeName(s string) bool {
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && (r == '_' || r == '.' || r == '-')
		if !ok {
			return false
		}
	}
	return true
}

// parseMount reads --mount type=bind|volume|tmpfs,source=,target=,readonly.
func parseMount(s string) (Mount, error) {
	m := Mount{RW: true}
	var tmpfsOpts []string
	for _, f := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(f, "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = v
		case "source", "src":
			m.Source = v
		case "target", "destination", "dst":
			m.Destination = v
		case "readonly", "ro":
			m.RW = v == "false" || v == "0"
		case "tmpfs-size":
			tmpfsOpts = append(tmpfsOpts, "size="+v)
		case "tmpfs-mode":
			tmpfsOpts = append(tmpfsOpts, "mode="+v)
		case "bind-recursive":
			// Docker's values: enabled (the default here), readonly.
			switch v {
			case "readonly":
				m.RecursiveReadOnly = true
			case "enabled", "":
			default:
				return m, invalid("--mount %q: bind-recursive=%s: berth has enabled and readonly", s, v)
			}
		case "bind-propagation", "volume-nocopy", "consistency":
		default:
			return m, invalid("--mount %q: unknown field %q", s, k)
		}
	}
	if !path.IsAbs(m.Destination) {
		return m, invalid("--mount %q: target must be an absolute path", s)
	}
	m.Destination = path.Clean(m.Destination)
	if m.Destination == "/" {
		return m, invalid("--mount %q: the target cannot be /", s)
	}
	if m.Type == "" {
		m.Type = "volume" // Docker's default type
	}
	switch m.Type {
	case "bind":
		if !path.IsAbs(m.Source) {
			return m, invalid("--mount %q: a bind source must be an absolute path", s)
		}
		if _, err := os.Stat(m.Source); err != nil {
			return m, invalid("--mount %q: the host path %s does not exist", s, m.Source)
		}
		m.Source = filepath.Clean(m.Source)
	case "volume":
		if m.Source == "" {
			m.Anonymous = true
		} else if !validVolumeName(m.Source) || len(m.Source) < 2 {
			return m, invalid("--mount %q: %q is not a volume name", s, m.Source)
		}
		m.Name, m.Source = m.Source, ""
	case "tmpfs":
		if m.Source != "" {
			return m, invalid("--mount %q: a tmpfs has no source", s)
		}
		m.Options = strings.Join(tmpfsOpts, ",")
	default:
		return m, invalid("--mount %q: type must be bind, volume or tmpfs", s)
	}
	if !m.RW {
		m.Mode = "ro"
	}
	return m, nil
}

// parseUlimit reads --ulimit NAME=SOFT[:HARD].
func parseUlimit(s string) (Ulimit, error) {
	u, err := units.ParseUlimit(s)
	if err != nil {
		return Ulimit{}, invalid("--ulimit %q: %v", s, err)
	}
	return Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard}, nil
}
