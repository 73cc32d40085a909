package image

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/berthproject/berth/errdefs"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
)

// ChangeInstructions are the Dockerfile instructions --change accepts
// (docker import and docker commit take the same set).
const ChangeInstructions = "CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, SHELL, STOPSIGNAL, USER, VOLUME, WORKDIR"

// ApplyChanges applies Dockerfile instructions to an image config, parsed
// by BuildKit's Dockerfile parser as docker's --change values are, with
// variables expanded from the config's environment.
func ApplyChanges(cfg *dockerspec.DockerOCIImageConfig, changes []string) error {
	cmdSet := false
	for _, change := range changes {
		res, err := parser.Parse(strings.NewReader(change))
		if err != nil {
			return fmt.Errorf("--change %q: %w: %w", change, errdefs.ErrInvalidArgument, err)
		}
		for _, node := range res.AST.Children {
			inst, err := instructions.ParseInstruction(node)
			if err != nil {
				return fmt.Errorf("--change %q: %w: %w", change, errdefs.ErrInvalidArgument, err)
			}
			if ex, ok := inst.(instructions.SupportsSingleWordExpansion); ok {
				lex := shell.NewLex(res.EscapeToken)
				env := shell.EnvsFromSlice(cfg.Env)
				if err := ex.Expand(func(w string) (string, error) {
					out, _, err := lex.ProcessWord(w, env)
					return out, err
				}); err != nil {
					return fmt.Errorf("--change %q: %w: %w", change, errdefs.ErrInvalidArgument, err)
				}
			}
			if err := applyInstruction(cfg, inst, &cmdSet); err != nil {
				return fmt.Errorf("--change %q: %w", change, err)
			}
		}
	}
	return nil
}

func withShell(cfg *dockerspec.DockerOCIImageConfig, line instructions.ShellDependantCmdLine) []string {
	if !line.PrependShell {
		return line.CmdLine
	}
	sh := cfg.Shell
	if len(sh) == 0 {
		sh = []string{"/bin/sh", "-c"}
	}
	return append(append([]string(nil), sh...), strings.Join(line.CmdLine, " "))
}

// ApplyInstruction applies one parsed, expanded config instruction (one of
// ChangeInstructions) to cfg, as a Dockerfile step does. cmdSet says
// whether CMD was set before in the same build stage: ENTRYPOINT drops an
// inherited CMD, not one the stage set.
func ApplyInstruction(cfg *dockerspec.DockerOCIImageConfig, inst any, cmdSet *bool) error {
	return applyInstruction(cfg, inst, cmdSet)
}

func applyInstruction(cfg *dockerspec.DockerOCIImageConfig, inst any, cmdSet *bool) error {
	switch c := inst.(type) {
	case *instructions.CmdCommand:
		cfg.Cmd = withShell(cfg, c.ShellDependantCmdLine)
		*cmdSet = true
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = withShell(cfg, c.ShellDependantCmdLine)
		if !*cmdSet {
			cfg.Cmd = nil // as in a Dockerfile: a new entrypoint drops the old command
		}
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			cfg.Env = setEnv(cfg.Env, kv.Key, kv.Value)
		}
	case *instructions.ExposeCommand:
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range c.Ports {
			ports, err := ExpandPorts(p)
			if err != nil {
				return err
			}
			for _, p := range ports {
				cfg.ExposedPorts[p] = struct{}{}
			}
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.WorkdirCommand:
		w := c.Path
		if !strings.HasPrefix(w, "/") {
			base := cfg.WorkingDir
			if base == "" {
				base = "/"
			}
			w = strings.TrimSuffix(base, "/") + "/" + w
		}
		cfg.WorkingDir = w
	case *instructions.StopSignalCommand:
		cfg.StopSignal = c.Signal
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	case *instructions.ShellCommand:
		cfg.Shell = c.Shell
	case *instructions.HealthCheckCommand:
		cfg.Healthcheck = c.Health
	default:
		name := "that instruction"
		if n, ok := inst.(interface{ Name() string }); ok {
			name = strings.ToUpper(n.Name())
		}
		return fmt.Errorf("%s cannot be applied here: only %s can: %w", name, ChangeInstructions, errdefs.ErrInvalidArgument)
	}
	return nil
}

// ExpandPorts reads an EXPOSE word, PORT[-PORT][/PROTO], into the ports it
// names (a range is one entry per port, as Docker's), protocol lower-cased
// and tcp by default.
func ExpandPorts(s string) ([]string, error) {
	port, proto, _ := strings.Cut(s, "/")
	proto = strings.ToLower(proto)
	if proto == "" {
		proto = "tcp"
	}
	lo, hi, isRange := strings.Cut(port, "-")
	first, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("EXPOSE %s: invalid port %q: %w", s, lo, errdefs.ErrInvalidArgument)
	}
	last := first
	if isRange {
		if last, err = strconv.ParseUint(hi, 10, 16); err != nil || last < first {
			return nil, fmt.Errorf("EXPOSE %s: invalid port range %q: %w", s, port, errdefs.ErrInvalidArgument)
		}
	}
	var out []string
	for p := first; p <= last; p++ {
		out = append(out, strconv.FormatUint(p, 10)+"/"+proto)
	}
	return out, nil
}

// setEnv sets key in a KEY=value list, replacing an earlier value.
func setEnv(env []string, key, value string) []string {
	for i, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}
