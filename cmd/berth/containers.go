package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/berthproject/berth/build"
	"github.com/berthproject/berth/container"
	"github.com/berthproject/berth/container/logs"
	"github.com/berthproject/berth/internal/format"
	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// forEach runs fn for each container argument, printing what fn returns
// on success and each error on its own line, as docker does for
// stop/kill/rm; the exit code is 125 when any failed.
func (a *app) forEach(args []string, fn func(ref string) (string, error)) error {
	var failed error
	for _, ref := range args {
		out, err := fn(ref)
		if err != nil {
			if failed != nil {
				fmt.Fprintln(a.stderr, "Error: "+message(failed))
			}
			failed = err
			continue
		}
		if out != "" {
			fmt.Fprintln(a.stdout, out)
		}
	}
	return failed
}

func stopCmd(a *app) *cobra.Command {
	var timeout int
	cmd := &cobra.Command{
		Use:   "stop [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Stop running containers: the stop signal, then SIGKILL after the timeout",
		Args:  minArgs(1, "the containers"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			var t *int
			if cmd.Flags().Changed("time") {
				t = &timeout
			}
			return a.forEach(args, func(ref string) (string, error) { return ref, e.Stop(cmd.Context(), ref, t) })
		},
	}
	cmd.Flags().IntVarP(&timeout, "time", "t", 10, "seconds to wait before killing the container")
	return cmd
}

func killCmd(a *app) *cobra.Command {
	var sig string
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Send a signal (default SIGKILL) to running containers",
		Args:  minArgs(1, "the containers"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := container.ParseSignal(sig)
			if err != nil {
				return usageError(cmd, err)
			}
			e, err := a.containers()
			if err != nil {
				return err
			}
			return a.forEach(args, func(ref string) (string, error) { return ref, e.Kill(cmd.Context(), ref, s) })
		},
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "KILL", "signal to send")
	return cmd
}

func restartCmd(a *app) *cobra.Command {
	var timeout int
	cmd := &cobra.Command{
		Use:   "restart [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Restart containers",
		Args:  minArgs(1, "the containers"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			var t *int
			if cmd.Flags().Changed("time") {
				t = &timeout
			}
			return a.forEach(args, func(ref string) (string, error) { return ref, containerError(e.Restart(cmd.Context(), ref, t)) })
		},
	}
	cmd.Flags().IntVarP(&timeout, "time", "t", 10, "seconds to wait before killing the container")
	return cmd
}

func rmCmd(a *app, use string) *cobra.Command {
	var force, vols bool
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Remove containers",
		Args:  minArgs(1, "the containers"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			return a.forEach(args, func(ref string) (string, error) {
				_, err := e.Remove(cmd.Context(), ref, force, vols)
				return ref, err
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill and remove a running container")
	cmd.Flags().BoolVarP(&vols, "volumes", "v", false, "also remove the container's anonymous volumes")
	return cmd
}

// psRow is a line of berth ps, with Docker's field names.
type psRow struct {
	ID         string
	Image      string
	Command    string
	CreatedAt  string
	RunningFor string
	Status     string
	State      string
	Ports      string
	Names      string
	Size       string
	Labels     string
	Mounts     string
	Networks   string
	c          *container.Container
}

var psHeaders = map[string]string{
	"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT", "RunningFor": "CREATED",
	"Status": "STATUS", "State": "STATE", "Ports": "PORTS", "Names": "NAMES", "Size": "SIZE", "Labels": "LABELS",
	"Mounts": "MOUNTS", "Networks": "NETWORKS",
}

// statusLine is Docker's STATUS column.
func statusLine(c *container.Container) string {
	switch c.State.Status {
	case container.StatusRunning:
		return "Up " + units.HumanDuration(time.Since(c.State.StartedAt))
	case container.StatusPaused:
		return "Up " + units.HumanDuration(time.Since(c.State.StartedAt)) + " (Paused)"
	case container.StatusExited:
		if c.State.FinishedAt.IsZero() {
			return "Created"
		}
		return fmt.Sprintf("Exited (%d) %s ago", c.State.ExitCode, units.HumanDuration(time.Since(c.State.FinishedAt)))
	case container.StatusCreated:
		return "Created"
	}
	return strings.Title(string(c.State.Status))
}

func psCmd(a *app, use string) *cobra.Command {
	var all, quiet, size, noTrunc, latest, external bool
	var last int
	var filters []string
	var formatStr string
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS]",
		Short: "List containers",
		Args:  exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			f, err := container.ParseFilters(filters)
			if err != nil {
				return usageError(cmd, err)
			}
			ctx := cmd.Context()
			cs, err := e.List(ctx)
			if err != nil {
				return err
			}
			if !all && !f.HasStatus() && !latest && last <= 0 {
				f.Running = true
			}
			if !external {
				// A build's step containers are the build's, as
				// buildah's are hidden from podman ps.
				kept := cs[:0]
				for _, c := range cs {
					if _, ok := c.Config.Labels[build.ContainerLabel]; !ok {
						kept = append(kept, c)
					}
				}
				cs = kept
			}
			cs = f.Select(cs)
			if latest && len(cs) > 1 {
				cs = cs[:1]
			}
			if last > 0 && len(cs) > last {
				cs = cs[:last]
			}
			if quiet {
				for _, c := range cs {
					if noTrunc {
						fmt.Fprintln(a.stdout, c.ID)
					} else {
						fmt.Fprintln(a.stdout, c.Short())
					}
				}
				return nil
			}
			def := "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
			if size {
				def += "\t{{.Size}}"
			}
			w, err := format.New(a.stdout, formatStr, def, psHeaders)
			if err != nil {
				return usageError(cmd, err)
			}
			for _, c := range cs {
				r := psRow{ID: c.Short(), Image: c.Image, Names: c.Name, Status: statusLine(c), State: string(c.State.Status), c: c,
					CreatedAt: c.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"), RunningFor: units.HumanDuration(time.Since(c.Created)) + " ago",
					Networks: c.HostConfig.NetworkMode}
				command := strings.Join(append([]string{c.Path}, c.Args...), " ")
				if noTrunc {
					r.ID = c.ID
				} else if len([]rune(command)) > 20 {
					command = string([]rune(command)[:19]) + "…"
				}
				r.Command = strconv.Quote(command)
				var labels, mounts []string
				for k, v := range c.Config.Labels {
					labels = append(labels, k+"="+v)
				}
				for _, m := range c.Mounts {
					if m.Name != "" {
						mounts = append(mounts, m.Name)
					} else {
						mounts = append(mounts, m.Source)
					}
				}
				r.Labels, r.Mounts = strings.Join(labels, ","), strings.Join(mounts, ",")
				if size {
					rw, virt := e.Size(ctx, c)
					r.Size = fmt.Sprintf("%s (virtual %s)", humanSize(rw), humanSize(virt))
				}
				if err := w.Write(r); err != nil {
					return err
				}
			}
			return w.Flush()
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "show all containers (default shows just running)")
	fl.BoolVar(&external, "external", false, "also show the containers of builds in progress (or interrupted)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "only display container IDs")
	fl.BoolVarP(&size, "size", "s", false, "display total file sizes")
	fl.BoolVar(&noTrunc, "no-trunc", false, "don't truncate output")
	fl.BoolVarP(&latest, "latest", "l", false, "show the latest created container")
	fl.IntVarP(&last, "last", "n", -1, "show the n last created containers")
	fl.StringArrayVarP(&filters, "filter", "f", nil, "filter: id, name, label, status, ancestor, exited, before, since")
	fl.StringVar(&formatStr, "format", "", "format output: table, table TEMPLATE, json, or a Go template")
	return cmd
}

func logsCmd(a *app) *cobra.Command {
	var follow, timestamps bool
	var tail, since, until string
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  exactArgs(1, "the container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := e.Get(ctx, args[0])
			if err != nil {
				return err
			}
			if c.HostConfig.LogConfig.Type == "none" {
				return fmt.Errorf("container %s has no log (--log-driver none)", c.Name)
			}
			o := logs.ReadOptions{Tail: -1, Follow: follow}
			if tail != "" && tail != "all" {
				n, err := strconv.Atoi(tail)
				if err != nil || n < 0 {
					return usageError(cmd, fmt.Errorf("--tail %q: want a number of lines or all", tail))
				}
				o.Tail = n
			}
			if o.Since, err = parseTime(since); err != nil {
				return usageError(cmd, fmt.Errorf("--since: %w", err))
			}
			if o.Until, err = parseTime(until); err != nil {
				return usageError(cmd, fmt.Errorf("--until: %w", err))
			}
			if follow {
				done := make(chan struct{})
				o.Done = done
				go func() {
					e.Wait(ctx, c.ID)
					close(done)
				}()
			}
			return logs.Read(e.LogPath(c), container.LogFiles(c), o, func(en logs.Entry) error {
				w := a.stdout
				if en.Stream == "stderr" {
					w = a.stderr
				}
				if timestamps {
					fmt.Fprint(w, en.Time.Format(time.RFC3339Nano)+" ")
				}
				_, err := fmt.Fprint(w, en.Log)
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&follow, "follow", "f", false, "follow log output until the container exits")
	fl.BoolVarP(&timestamps, "timestamps", "t", false, "show timestamps")
	fl.StringVarP(&tail, "tail", "n", "all", "number of lines to show from the end of the logs")
	fl.StringVar(&since, "since", "", "show logs since a time (2013-01-02T13:23:37Z) or a duration before now (42m)")
	fl.StringVar(&until, "until", "", "show logs before a time or a duration before now")
	return cmd
}

// parseTime reads --since/--until: RFC 3339, a date, Unix seconds or a
// duration before now.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339, a date, Unix seconds) or a duration (10m)", s)
}

func execCmd(a *app) *cobra.Command {
	var o container.ExecOptions
	var envFiles []string
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Args:  minArgs(2, "the container and the command"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			o.Cmd = args[1:]
			for _, f := range envFiles {
				env, err := container.ReadEnvFile(f)
				if err != nil {
					return err
				}
				o.Env = append(env, o.Env...)
			}
			stdio := container.IO{Stdin: a.stdin, Stdout: a.stdout, Stderr: a.stderr}
			if f, ok := a.stdin.(*os.File); ok && o.Tty && term.IsTerminal(int(f.Fd())) {
				if state, err := term.MakeRaw(int(f.Fd())); err == nil {
					defer term.Restore(int(f.Fd()), state)
				}
				sizes := make(chan [2]uint16, 1)
				if w, h, err := term.GetSize(int(f.Fd())); err == nil {
					sizes <- [2]uint16{uint16(h), uint16(w)}
				}
				stdio.Resize = sizes
			}
			code, err := e.Exec(cmd.Context(), args[0], o, stdio)
			if err != nil {
				return containerError(err)
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&o.Interactive, "interactive", "i", false, "keep stdin open")
	fl.BoolVarP(&o.Tty, "tty", "t", false, "allocate a pseudo-terminal")
	fl.BoolVarP(&o.Detach, "detach", "d", false, "run the command in the background")
	fl.StringArrayVarP(&o.Env, "env", "e", nil, "set an environment variable")
	fl.StringArrayVar(&envFiles, "env-file", nil, "read environment variables from a file")
	fl.StringVarP(&o.User, "user", "u", "", "user (name|uid[:group|gid]) to run as")
	fl.StringVarP(&o.WorkingDir, "workdir", "w", "", "working directory inside the container")
	fl.BoolVar(&o.Privileged, "privileged", false, "give the command every capability")
	fl.StringVar(&detachKeys, "detach-keys", "ctrl-p,ctrl-q", "key sequence that detaches")
	return cmd
}

func waitCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until containers stop, then print their exit codes",
		Args:  minArgs(1, "the containers"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			return a.forEach(args, func(ref string) (string, error) {
				code, err := e.Wait(cmd.Context(), ref)
				return strconv.Itoa(code), err
			})
		},
	}
}

func renameCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  exactArgs(2, "the container and its new name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			return e.Rename(cmd.Context(), args[0], args[1])
		},
	}
}

func pauseCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "pause CONTAINER [CONTAINER...]",
		Short: "Freeze all processes of containers",
		Args:  minArgs(1, "the containers"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			return a.forEach(args, func(ref string) (string, error) { return ref, e.Pause(cmd.Context(), ref) })
		},
	}
}

func unpauseCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "unpause CONTAINER [CONTAINER...]",
		Short: "Thaw paused containers",
		Args:  minArgs(1, "the containers"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			return a.forEach(args, func(ref string) (string, error) { return ref, e.Unpause(cmd.Context(), ref) })
		},
	}
}

func containerPruneCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all stopped containers",
		Args:  exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				if err := confirm(a, cmd, "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?"); err != nil {
					return err
				}
			}
			e, err := a.containers()
			if err != nil {
				return err
			}
			removed, err := e.Prune(cmd.Context())
			if len(removed) > 0 {
				fmt.Fprintln(a.stdout, "Deleted Containers:")
				for _, c := range removed {
					fmt.Fprintln(a.stdout, c.ID)
				}
				fmt.Fprintln(a.stdout)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "Total reclaimed space: 0B")
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt for confirmation")
	return cmd
}

// cleanupCmd is the monitor's exit command.
func cleanupCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:    "cleanup CONTAINER",
		Short:  "Record a container's exit and release what it held (run by its monitor)",
		Hidden: true,
		Args:   exactArgs(1, "the container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			return e.Cleanup(context.WithoutCancel(cmd.Context()), args[0])
		},
	}
}

func generateSystemdCmd(a *app) *cobra.Command {
	var name bool
	cmd := &cobra.Command{
		Use:   "systemd [OPTIONS] CONTAINER",
		Short: "Write a systemd unit that runs an existing container and restarts it",
		Args:  exactArgs(1, "the container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			c, err := e.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			self, _ := os.Executable()
			ref := c.ID
			if name {
				ref = c.Name
			}
			t := template.Must(template.New("unit").Parse(systemdUnit))
			return t.Execute(a.stdout, map[string]string{
				"Name": c.Name, "Ref": ref, "Berth": self, "Root": a.root, "RunRoot": a.runRoot, "Image": c.Image,
			})
		},
	}
	cmd.Flags().BoolVarP(&name, "name", "n", false, "refer to the container by name instead of ID")
	return cmd
}

// systemdUnit runs a container in the foreground under systemd, which
// restarts it: the supervisor berth does not have.
const systemdUnit = `# berth-{{.Name}}.service: the container {{.Name}} ({{.Image}}), run and
# restarted by systemd. Install with:
#   berth generate systemd {{.Name}} > /etc/systemd/system/berth-{{.Name}}.service
#   systemctl daemon-reload && systemctl enable --now berth-{{.Name}}
[Unit]
Description=berth container {{.Name}}
Wants=network-online.target
After=network-online.target

[Service]
Restart=on-failure
RestartSec=2
TimeoutStopSec=70
ExecStart={{.Berth}} --root {{.Root}} --runroot {{.RunRoot}} start --attach {{.Ref}}
ExecStop={{.Berth}} --root {{.Root}} --runroot {{.RunRoot}} stop -t 10 {{.Ref}}
KillMode=mixed
Type=simple

[Install]
WantedBy=multi-user.target
`

func volumeCreateCmd(a *app) *cobra.Command {
	var labels []string
	var driver string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError(cmd, errors.New("give at most one volume name"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if driver != "" && driver != "local" {
				return usageError(cmd, fmt.Errorf("--driver %s: berth has the local driver only", driver))
			}
			vs, err := a.volumeStore()
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			l := map[string]string{}
			for _, kv := range labels {
				k, v, _ := strings.Cut(kv, "=")
				l[k] = v
			}
			v, err := vs.Create(name, l, false)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, v.Name)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "set a label (KEY=VALUE)")
	cmd.Flags().StringVarP(&driver, "driver", "d", "local", "volume driver (local)")
	return cmd
}

type volumeRow struct {
	Driver     string
	Name       string
	Mountpoint string
	Labels     string
	Scope      string
	CreatedAt  string
}

func volumeLsCmd(a *app) *cobra.Command {
	var quiet bool
	var filters []string
	var formatStr string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			vs, e, err := a.volumesAndContainers()
			if err != nil {
				return err
			}
			list, err := vs.List()
			if err != nil {
				return err
			}
			w, err := format.New(a.stdout, formatStr, "{{.Driver}}\t{{.Name}}", map[string]string{"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Scope": "SCOPE", "CreatedAt": "CREATED"})
			if err != nil {
				return usageError(cmd, err)
			}
		next:
			for _, v := range list {
				for _, f := range filters {
					k, val, _ := strings.Cut(f, "=")
					switch k {
					case "dangling":
						users, _ := e.VolumeUsers(cmd.Context(), v.Name)
						if (len(users) == 0) != (val == "true" || val == "1") {
							continue next
						}
					case "name":
						if !strings.Contains(v.Name, val) {
							continue next
						}
					case "label":
						lk, lv, hasV := strings.Cut(val, "=")
						got, ok := v.Labels[lk]
						if !ok || hasV && got != lv {
							continue next
						}
					default:
						return usageError(cmd, fmt.Errorf("bad filter %q: dangling, name or label", f))
					}
				}
				if quiet {
					fmt.Fprintln(a.stdout, v.Name)
					continue
				}
				var labels []string
				for k, val := range v.Labels {
					labels = append(labels, k+"="+val)
				}
				w.Write(volumeRow{Driver: v.Driver, Name: v.Name, Mountpoint: v.Mountpoint, Labels: strings.Join(labels, ","), Scope: v.Scope, CreatedAt: v.CreatedAt.Format(time.RFC3339)})
			}
			if quiet {
				return nil
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only display volume names")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter: dangling=true|false, name=, label=")
	cmd.Flags().StringVar(&formatStr, "format", "", "format output: table, table TEMPLATE, json, or a Go template")
	return cmd
}

func volumeInspectCmd(a *app) *cobra.Command {
	var formatStr string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Show volumes' details",
		Args:  minArgs(1, "the volumes"),
		RunE: func(cmd *cobra.Command, args []string) error {
			vs, err := a.volumeStore()
			if err != nil {
				return err
			}
			var found []any
			var firstErr error
			for _, n := range args {
				v, err := vs.Get(n)
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				found = append(found, v)
			}
			if err := printInspect(a, formatStr, found); err != nil {
				return err
			}
			return firstErr
		},
	}
	cmd.Flags().StringVarP(&formatStr, "format", "f", "", "format output with a Go template, or json")
	return cmd
}

// printInspect prints objects as docker inspect does: a JSON array, or
// each through a template.
func printInspect(a *app, formatStr string, objs []any) error {
	if formatStr != "" {
		for _, o := range objs {
			if formatStr == "json" {
				b, _ := json.Marshal(o)
				fmt.Fprintln(a.stdout, string(b))
				continue
			}
			if err := format.Execute(a.stdout, formatStr, o); err != nil {
				return err
			}
		}
		return nil
	}
	if objs == nil {
		objs = []any{}
	}
	b, err := json.MarshalIndent(objs, "", "    ")
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, string(b))
	return nil
}

func volumeRmCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove volumes",
		Args:    minArgs(1, "the volumes"),
		RunE: func(cmd *cobra.Command, args []string) error {
			vs, e, err := a.volumesAndContainers()
			if err != nil {
				return err
			}
			return a.forEach(args, func(n string) (string, error) {
				users, err := e.VolumeUsers(cmd.Context(), n)
				if err != nil {
					return "", err
				}
				if len(users) > 0 {
					return "", fmt.Errorf("remove volume %s: it is in use by container %s (remove the container first)", n, strings.Join(users, ", "))
				}
				if err := vs.Remove(n); err != nil {
					if force && strings.Contains(err.Error(), "no such volume") {
						return "", nil
					}
					return "", err
				}
				return n, nil
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not fail on volumes that do not exist")
	return cmd
}

func volumePruneCmd(a *app) *cobra.Command {
	var force, all bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused anonymous volumes (with -a, all unused volumes)",
		Args:  exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				if err := confirm(a, cmd, "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue?"); err != nil {
					return err
				}
			}
			vs, e, err := a.volumesAndContainers()
			if err != nil {
				return err
			}
			list, err := vs.List()
			if err != nil {
				return err
			}
			var freed int64
			var removed []string
			for _, v := range list {
				if !v.Anonymous && !all {
					continue
				}
				if users, _ := e.VolumeUsers(cmd.Context(), v.Name); len(users) > 0 {
					continue
				}
				size := vs.Size(v.Name)
				if err := vs.Remove(v.Name); err != nil {
					return err
				}
				freed += size
				removed = append(removed, v.Name)
			}
			if len(removed) > 0 {
				fmt.Fprintln(a.stdout, "Deleted Volumes:")
				for _, n := range removed {
					fmt.Fprintln(a.stdout, n)
				}
				fmt.Fprintln(a.stdout)
			}
			fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", humanSize(freed))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt for confirmation")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove all unused volumes, not only anonymous ones")
	return cmd
}
