package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/container"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/internal/format"
	"github.com/spf13/cobra"
)

// splitCpArg splits CONTAINER:PATH; a plain path (or one with a slash
// before any colon) is local.
func splitCpArg(s string) (ctr, p string) {
	if filepath.IsAbs(s) || strings.HasPrefix(s, ".") {
		return "", s
	}
	i := strings.Index(s, ":")
	if i <= 0 || strings.Contains(s[:i], "/") {
		return "", s
	}
	return s[:i], s[i+1:]
}

func cpCmd(a *app) *cobra.Command {
	var keep, follow bool
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n  berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files between a container and the host",
		Args:  exactArgs(2, "a source and a destination, one of them CONTAINER:PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, sp := splitCpArg(args[0])
			dc, dp := splitCpArg(args[1])
			e, err := a.containers()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			switch {
			case sc != "" && dc != "":
				return usageError(cmd, errors.New("copying between containers is not supported: copy to the host first"))
			case sc != "":
				return a.copyOut(ctx, e, sc, sp, dp, follow)
			case dc != "":
				return a.copyIn(ctx, e, sp, dc, dp, keep, follow)
			}
			return usageError(cmd, errors.New("one of the paths must be CONTAINER:PATH"))
		},
	}
	cmd.Flags().BoolVarP(&keep, "archive", "a", false, "keep uid/gid of the copied files (default: root's, in the container)")
	cmd.Flags().BoolVarP(&follow, "follow-link", "L", false, "follow a symlink given as the source")
	return cmd
}

// copyOut copies CONTAINER:src to the host path dst with docker cp's rules.
func (a *app) copyOut(ctx context.Context, e *container.Engine, ref, src, dst string, follow bool) error {
	st, err := e.StatPath(ctx, ref, src)
	if err != nil {
		return err
	}
	if follow && st.LinkTarget != "" {
		target := st.LinkTarget
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(path.Clean("/"+src)), target)
		}
		src = target
		if st, err = e.StatPath(ctx, ref, src); err != nil {
			return err
		}
	}
	contents := strings.HasSuffix(src, "/.") && st.Mode.IsDir()
	if dst == "-" {
		return e.CopyFrom(ctx, ref, src, st.Name, false, a.stdout)
	}
	// Where on the host, under which name.
	dir, name := filepath.Dir(dst), filepath.Base(dst)
	if fi, err := os.Stat(dst); err == nil {
		if fi.IsDir() {
			dir, name = dst, st.Name
			if contents {
				dir, name = dst, ""
			}
		} else if st.Mode.IsDir() {
			return fmt.Errorf("cannot copy a directory (%s) onto the file %s: %w", src, dst, errdefs.ErrInvalidArgument)
		}
	} else {
		if strings.HasSuffix(dst, "/") && !st.Mode.IsDir() {
			return fmt.Errorf("the destination directory %s does not exist: %w", dst, errdefs.ErrNotFound)
		}
		if _, err := os.Stat(dir); err != nil {
			return fmt.Errorf("the destination's directory %s does not exist: %w", dir, errdefs.ErrNotFound)
		}
		contents = false
	}
	pr, pw := io.Pipe()
	go func() {
		if name == "" {
			pw.CloseWithError(e.CopyFrom(ctx, ref, src, ".", true, pw))
		} else {
			pw.CloseWithError(e.CopyFrom(ctx, ref, src, name, false, pw))
		}
	}()
	_, err = archive.Apply(ctx, dir, pr, archive.Options{Whiteouts: archive.WhiteoutDelete, IgnoreOwner: os.Geteuid() != 0})
	pr.CloseWithError(err)
	return err
}

// copyIn copies the host path src (or a tar stream on stdin) to
// CONTAINER:dst with docker cp's rules.
func (a *app) copyIn(ctx context.Context, e *container.Engine, src, ref, dst string, keep, follow bool) error {
	if src == "-" {
		return e.CopyTo(ctx, ref, dst, a.stdin)
	}
	lfi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if follow && lfi.Mode()&os.ModeSymlink != 0 {
		if lfi, err = os.Stat(src); err != nil {
			return err
		}
		if src, err = filepath.EvalSymlinks(src); err != nil {
			return err
		}
	}
	contents := strings.HasSuffix(src, "/.") && lfi.IsDir()
	dir, name := path.Dir(path.Clean("/"+dst)), path.Base(path.Clean("/"+dst))
	st, err := e.StatPath(ctx, ref, dst)
	switch {
	case err == nil && st.Mode.IsDir():
		dir, name = path.Clean("/"+dst), filepath.Base(src)
		if contents {
			name = ""
		}
	case err == nil:
		if lfi.IsDir() {
			return fmt.Errorf("cannot copy a directory (%s) onto the file %s: %w", src, dst, errdefs.ErrInvalidArgument)
		}
	case errdefs.IsNotFound(err):
		if strings.HasSuffix(dst, "/") && !lfi.IsDir() {
			return fmt.Errorf("the destination directory %s does not exist in the container: %w", dst, errdefs.ErrNotFound)
		}
	default:
		return err
	}
	var owner *[2]int
	if !keep {
		owner = &[2]int{0, 0}
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		var err error
		if name == "" {
			err = archive.WriteTree(ctx, tw, src, ".", archive.TreeOptions{Owner: owner, Contents: true})
		} else {
			err = archive.WriteTree(ctx, tw, src, name, archive.TreeOptions{Owner: owner})
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	err = e.CopyTo(ctx, ref, dir, pr)
	pr.CloseWithError(err)
	return err
}

func diffCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "diff CONTAINER",
		Short: "List the changes to a container's file system: A added, C changed, D deleted",
		Args:  exactArgs(1, "the container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			cs, err := e.Diff(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, c := range cs {
				fmt.Fprintln(a.stdout, c.String())
			}
			return nil
		},
	}
}

func commitCmd(a *app) *cobra.Command {
	var o container.CommitOptions
	var co custodyOpts
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Make an image of a container's changes",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError(cmd, errors.New("give the container and optionally the new image's name"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			if len(args) == 2 {
				o.Ref = args[1]
			}
			if (co.key == "") != (co.team == "") {
				return usageError(cmd, errors.New("--custody-key and --custody-team go together"))
			}
			if co.key != "" && o.Ref == "" {
				return usageError(cmd, errors.New("a custody record needs the new image's name"))
			}
			if co.key != "" && co.base == "" {
				// The team built on the image the container was made from.
				c, err := e.Get(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				co.base = c.Image
			}
			img, err := e.Commit(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, img.ID.String())
			if co.key != "" {
				return a.custodySign(cmd.Context(), co, o.Ref)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.Author, "author", "a", "", "author (\"A Name <a@example.com>\")")
	fl.StringVarP(&o.Message, "message", "m", "", "commit message")
	fl.StringArrayVarP(&o.Changes, "change", "c", nil, "apply a Dockerfile instruction to the image")
	fl.BoolVarP(&o.Pause, "pause", "p", true, "pause the container while it is committed")
	co.add(cmd, "custody-")
	return cmd
}

func exportCmd(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] CONTAINER",
		Short: "Write a container's file system as a tar archive",
		Args:  exactArgs(1, "the container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			if output == "" {
				if isTerminal(a.stdout) {
					return usageError(cmd, errors.New("cowardly refusing to write an archive to a terminal: use -o FILE or redirect"))
				}
				return e.Export(cmd.Context(), args[0], a.stdout)
			}
			tmp, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".tmp-")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			if err := e.Export(cmd.Context(), args[0], tmp); err != nil {
				tmp.Close()
				return err
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			os.Chmod(tmp.Name(), 0o644)
			return os.Rename(tmp.Name(), output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	return cmd
}

func topCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Show the running processes of a container",
		Args:  minArgs(1, "the container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			header, rows, err := e.Top(cmd.Context(), args[0], args[1:])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 1, 1, 3, ' ', 0)
			fmt.Fprintln(tw, strings.Join(header, "\t"))
			for _, r := range rows {
				fmt.Fprintln(tw, strings.Join(r, "\t"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().SetInterspersed(false)
	return cmd
}

type statsRow struct {
	Container string
	ID        string
	Name      string
	CPUPerc   string
	MemUsage  string
	MemPerc   string
	NetIO     string
	BlockIO   string
	PIDs      string
}

func statsCmd(a *app) *cobra.Command {
	var all, noStream, noTrunc bool
	var formatStr string
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Show containers' resource use",
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.containers()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			refs := args
			if len(refs) == 0 {
				cs, err := e.List(ctx)
				if err != nil {
					return err
				}
				for _, c := range cs {
					if all || c.State.Status == container.StatusRunning {
						refs = append(refs, c.ID)
					}
				}
			}
			prev := map[string]*container.Stats{}
			sample := func() ([]*container.Stats, error) {
				var out []*container.Stats
				for _, r := range refs {
					s, err := e.Sample(ctx, r, prev[r])
					if err != nil {
						return nil, err
					}
					prev[r] = s
					out = append(out, s)
				}
				return out, nil
			}
			if _, err := sample(); err != nil {
				return err
			}
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
				ss, err := sample()
				if err != nil {
					return err
				}
				var buf bytes.Buffer
				w, err := format.New(&buf, formatStr, "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}",
					map[string]string{"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"})
				if err != nil {
					return usageError(cmd, err)
				}
				for _, s := range ss {
					id := s.ID[:12]
					if noTrunc {
						id = s.ID
					}
					w.Write(statsRow{Container: id, ID: id, Name: s.Name,
						CPUPerc:  fmt.Sprintf("%.2f%%", s.CPUPercent),
						MemUsage: binarySize(s.MemUsage) + " / " + binarySize(s.MemLimit),
						MemPerc:  fmt.Sprintf("%.2f%%", s.MemPercent),
						NetIO:    humanSize(int64(s.NetRx)) + " / " + humanSize(int64(s.NetTx)),
						BlockIO:  humanSize(int64(s.BlockRead)) + " / " + humanSize(int64(s.BlockWrite)),
						PIDs:     fmt.Sprint(s.Pids)})
				}
				w.Flush()
				if !noStream && isTerminal(a.stdout) {
					fmt.Fprint(a.stdout, "\033[2J\033[H")
				}
				a.stdout.Write(buf.Bytes())
				if noStream {
					return nil
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show all containers (default shows just running)")
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "print one sample and exit")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "don't truncate output")
	cmd.Flags().StringVar(&formatStr, "format", "", "format output: table, table TEMPLATE, json, or a Go template")
	return cmd
}

// binarySize prints a size as docker stats does (binary units).
func binarySize(n uint64) string {
	const unit = 1024
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f := float64(n)
	i := 0
	for f >= unit && i < len(units)-1 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}
