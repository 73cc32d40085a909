package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/berthproject/berth/runtime"
	"github.com/berthproject/berth/runtime/bundle"
)

func runtimeSpecVersion() string { return specs.Version }

func execCommand(g *globals) *cobra.Command {
	var (
		o            runtime.ExecOptions
		processPath  string
		tty          bool
		cwd          string
		env          []string
		userSpec     string
		addGids      []string
		caps         []string
		noNewPrivs   bool
		apparmor     string
		processLabel string
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] CONTAINER_ID [COMMAND [ARG...]]",
		Short: "run a new process in a running container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			st, err := g.rt().Config(o.ID)
			if err != nil {
				return err
			}
			var p specs.Process
			if processPath != "" {
				b, err := os.ReadFile(processPath)
				if err != nil {
					return fmt.Errorf("--process: %w", err)
				}
				if err := json.Unmarshal(b, &p); err != nil {
					return fmt.Errorf("--process %s: %w", processPath, err)
				}
			} else {
				if len(args) < 2 {
					return errors.New("exec: give a command to run, or --process FILE")
				}
				if st.Process != nil {
					p = *st.Process
				}
				p.Args = args[1:]
				p.Terminal = tty
				if cmd.Flags().Changed("cwd") {
					p.Cwd = cwd
				}
				p.Env = append(append([]string(nil), p.Env...), env...)
				if userSpec != "" {
					uid, gid, err := parseUser(userSpec)
					if err != nil {
						return err
					}
					p.User.UID, p.User.GID = uid, gid
				}
				for _, s := range addGids {
					gid, err := strconv.ParseUint(s, 10, 32)
					if err != nil {
						return fmt.Errorf("--additional-gids %q: want a number", s)
					}
					p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(gid))
				}
				if len(caps) > 0 {
					c := &specs.LinuxCapabilities{}
					if p.Capabilities != nil {
						cc := *p.Capabilities
						c = &cc
					}
					for _, name := range caps {
						name = strings.ToUpper(name)
						if !strings.HasPrefix(name, "CAP_") {
							name = "CAP_" + name
						}
						c.Bounding = append(c.Bounding, name)
						c.Effective = append(c.Effective, name)
						c.Permitted = append(c.Permitted, name)
					}
					p.Capabilities = c
				}
				if noNewPrivs {
					p.NoNewPrivileges = true
				}
				if apparmor != "" {
					p.ApparmorProfile = apparmor
				}
				if processLabel != "" {
					p.SelinuxLabel = processLabel
				}
			}
			if p.Cwd == "" {
				p.Cwd = "/"
			}
			o.Process = &p
			code, err := g.rt().Exec(o)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.StringVarP(&processPath, "process", "p", "", "process.json describing the process (replaces the command and flags)")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a pseudo-terminal")
	f.BoolVarP(&o.Detach, "detach", "d", false, "do not wait for the process")
	f.StringVar(&cwd, "cwd", "", "working directory in the container")
	f.StringArrayVarP(&env, "env", "e", nil, "set an environment variable (KEY=VALUE)")
	f.StringVarP(&userSpec, "user", "u", "", "UID[:GID] to run as")
	f.StringArrayVarP(&addGids, "additional-gids", "g", nil, "additional group id")
	f.StringArrayVarP(&caps, "cap", "c", nil, "add a capability (CAP_NET_ADMIN)")
	f.BoolVar(&noNewPrivs, "no-new-privs", false, "set no_new_privs for the process")
	f.StringVar(&apparmor, "apparmor", "", "AppArmor profile for the process")
	f.StringVar(&processLabel, "process-label", "", "SELinux label for the process")
	f.StringVar(&o.PidFile, "pid-file", "", "file to write the process's pid to")
	f.StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket that receives the pty master")
	f.IntVar(&o.PreserveFDs, "preserve-fds", 0, "pass N extra file descriptors (3..3+N-1)")
	f.Bool("ignore-paused", false, "ignored")
	return cmd
}

func parseUser(s string) (uint32, uint32, error) {
	us, gs, hasGid := strings.Cut(s, ":")
	uid, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("--user %q: want UID[:GID] as numbers", s)
	}
	var gid uint64
	if hasGid {
		if gid, err = strconv.ParseUint(gs, 10, 32); err != nil {
			return 0, 0, fmt.Errorf("--user %q: want UID[:GID] as numbers", s)
		}
	}
	return uint32(uid), uint32(gid), nil
}

func listCommand(g *globals) *cobra.Command {
	var quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "list containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.rt().List()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if quiet {
				for _, c := range list {
					fmt.Fprintln(out, c.ID)
				}
				return nil
			}
			switch format {
			case "json":
				if list == nil {
					list = []runtime.ContainerState{}
				}
				b, err := json.Marshal(list)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s\n", b)
			case "table", "":
				w := tabwriter.NewWriter(out, 12, 1, 3, ' ', 0)
				fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
				for _, c := range list {
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", c.ID, c.Pid, c.Status, c.Bundle, c.Created.Format(time.RFC3339Nano), c.Owner)
				}
				return w.Flush()
			default:
				return fmt.Errorf("--format %q: want table or json", format)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only ids")
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	return cmd
}

func psCommand(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ps [flags] CONTAINER_ID [ps OPTIONS]",
		Short: "show the processes of a container (ps options default to -ef)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pids, err := g.rt().Pids(args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if format == "json" {
				if pids == nil {
					pids = []int{}
				}
				b, _ := json.Marshal(pids)
				fmt.Fprintf(out, "%s\n", b)
				return nil
			}
			if format != "table" {
				return fmt.Errorf("--format %q: want table or json", format)
			}
			psArgs := args[1:]
			if len(psArgs) == 0 {
				psArgs = []string{"-ef"}
			}
			b, err := exec.Command("ps", psArgs...).Output()
			if err != nil {
				return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
			}
			return filterPs(out, b, pids)
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	return cmd
}

// filterPs keeps the header and the lines of ps output whose PID column
// names one of pids.
func filterPs(w interface{ Write([]byte) (int, error) }, psOut []byte, pids []int) error {
	sc := bufio.NewScanner(bytes.NewReader(psOut))
	if !sc.Scan() {
		return errors.New("ps printed nothing")
	}
	header := sc.Text()
	col := -1
	for i, f := range strings.Fields(header) {
		if f == "PID" {
			col = i
		}
	}
	if col < 0 {
		return errors.New("ps output has no PID column: pass options that print it")
	}
	want := map[string]bool{}
	for _, p := range pids {
		want[strconv.Itoa(p)] = true
	}
	fmt.Fprintln(w, header)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if col < len(f) && want[f[col]] {
			fmt.Fprintln(w, sc.Text())
		}
	}
	return nil
}

func specCommand(g *globals) *cobra.Command {
	var dir string
	var rootless bool
	cmd := &cobra.Command{
		Use:   "spec [flags]",
		Short: "write a default config.json into the bundle directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s := bundle.Default()
			if rootless {
				bundle.ToRootless(s)
			}
			path := filepath.Join(dir, "config.json")
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s already exists: remove it first", path)
			}
			b, err := json.MarshalIndent(s, "", "\t")
			if err != nil {
				return err
			}
			return os.WriteFile(path, append(b, '\n'), 0o666)
		},
	}
	cmd.Flags().StringVarP(&dir, "bundle", "b", ".", "bundle directory to write config.json into")
	cmd.Flags().BoolVar(&rootless, "rootless", false, "a spec for running as an unprivileged user")
	return cmd
}

func featuresCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "features",
		Short: "print what this runtime supports (runtime-spec features JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return printJSON(cmd.OutOrStdout(), bundle.Features(version))
		},
	}
}
