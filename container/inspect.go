package container

import (
	"context"
	"path/filepath"
	"time"
)

// Inspect is a container as docker inspect shows it (the same field
// names, so that --format templates written for Docker work).
type Inspect struct {
	Id              string
	Created         string
	Path            string
	Args            []string
	State           InspectState
	Image           string
	ResolvConfPath  string
	HostnamePath    string
	HostsPath       string
	LogPath         string
	Name            string
	RestartCount    int
	Driver          string
	Platform        string
	HostConfig      HostConfig
	Mounts          []InspectMount
	Config          Config
	NetworkSettings struct {
		Networks map[string]struct{} `json:"Networks"`
	}
}

// InspectState is Docker's State block.
type InspectState struct {
	Status     string
	Running    bool
	Paused     bool
	Restarting bool
	OOMKilled  bool
	Dead       bool
	Pid        int
	ExitCode   int
	Error      string
	StartedAt  string
	FinishedAt string
}

// InspectMount is one of Docker's Mounts entries.
type InspectMount struct {
	Type        string
	Name        string `json:",omitempty"`
	Source      string
	Destination string
	Driver      string `json:",omitempty"`
	Mode        string
	RW          bool
	Propagation string
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// InspectContainer returns what docker inspect shows of a container.
func (e *Engine) InspectContainer(ctx context.Context, ref string) (*Inspect, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	dir := e.dir(c.ID)
	in := &Inspect{
		Id: c.ID, Created: rfc3339(c.Created), Path: c.Path, Args: c.Args, Image: c.ImageID.String(),
		ResolvConfPath: filepath.Join(dir, "resolv.conf"), HostnamePath: filepath.Join(dir, "hostname"), HostsPath: filepath.Join(dir, "hosts"),
		LogPath: e.logPath(c.ID), Name: "/" + c.Name, RestartCount: c.RestartCount, Driver: e.images.Driver(), Platform: "linux",
		HostConfig: c.HostConfig, Config: c.Config,
		State: InspectState{
			Status: string(c.State.Status), Running: c.State.Status == StatusRunning || c.State.Status == StatusPaused,
			Paused: c.State.Status == StatusPaused, OOMKilled: c.State.OOMKilled, Dead: c.State.Status == StatusDead,
			Pid: c.State.Pid, ExitCode: c.State.ExitCode, Error: c.State.Error,
			StartedAt: rfc3339(c.State.StartedAt), FinishedAt: rfc3339(c.State.FinishedAt),
		},
	}
	if in.Args == nil {
		in.Args = []string{}
	}
	in.NetworkSettings.Networks = map[string]struct{}{c.HostConfig.NetworkMode: {}}
	in.Mounts = []InspectMount{}
	for _, m := range c.Mounts {
		im := InspectMount{Type: m.Type, Name: m.Name, Source: m.Source, Destination: m.Destination, Mode: m.Mode, RW: m.RW, Propagation: "rprivate"}
		if m.Type == "volume" {
			im.Driver = "local"
		}
		if m.Type == "tmpfs" {
			im.Propagation = ""
		}
		in.Mounts = append(in.Mounts, im)
	}
	return in, nil
}
