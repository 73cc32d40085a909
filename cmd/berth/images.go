package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/internal/format"
	"github.com/distribution/reference"
	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// humanSize prints a size as Docker does (decimal units, 3 digits).
func humanSize(n int64) string { return units.HumanSizeWithPrecision(float64(n), 3) }

func since(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	return units.HumanDuration(time.Since(t)) + " ago"
}

// imageRow is one line of berth images, with Docker's field names.
type imageRow struct {
	ID           string
	Repository   string
	Tag          string
	Digest       string
	CreatedSince string
	CreatedAt    string
	Size         string
	VirtualSize  string
	SharedSize   string
	UniqueSize   string
	Containers   string
	created      time.Time
}

var imageHeaders = map[string]string{
	"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
	"CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "VirtualSize": "VIRTUAL SIZE",
	"SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "Containers": "CONTAINERS",
}

func imagesCmd(a *app, use string) *cobra.Command {
	var all, quiet, digests, noTrunc bool
	var filters []string
	var formatStr string
	cmd := &cobra.Command{
		Use:   use + " [REPOSITORY[:TAG]]",
		Short: "List images",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError(cmd, fmt.Errorf("%q takes at most one argument (a repository to list)", cmd.CommandPath()))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.images()
			if err != nil {
				return err
			}
			f, err := image.ParseFilters(filters)
			if err != nil {
				return usageError(cmd, err)
			}
			if len(args) == 1 {
				f.References = append(f.References, args[0])
			}
			ctx := cmd.Context()
			imgs, err := s.List(ctx)
			if err != nil {
				return err
			}
			if !all {
				inter := image.Intermediate(imgs)
				kept := imgs[:0]
				for _, img := range imgs {
					if !inter[img.ID] {
						kept = append(kept, img)
					}
				}
				imgs = kept
			}
			if imgs, err = s.Select(ctx, imgs, f); err != nil {
				return err
			}
			rows := imageRows(imgs, noTrunc, len(args) == 1 || len(f.References) > 0, f.References)
			if quiet {
				seen := map[string]bool{}
				for _, r := range rows {
					if !seen[r.ID] {
						seen[r.ID] = true
						fmt.Fprintln(a.stdout, r.ID)
					}
				}
				return nil
			}
			def := "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
			if digests {
				def = "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
			}
			w, err := format.New(a.stdout, formatStr, def, imageHeaders)
			if err != nil {
				return usageError(cmd, err)
			}
			for _, r := range rows {
				if err := w.Write(r); err != nil {
					return err
				}
			}
			return w.Flush()
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "show all images, the intermediate ones of builds too")
	fl.BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	fl.BoolVar(&digests, "digests", false, "show digests")
	fl.BoolVar(&noTrunc, "no-trunc", false, "don't truncate output")
	fl.StringArrayVarP(&filters, "filter", "f", nil, "filter output: dangling=true|false, reference=PATTERN, label=KEY[=VALUE], before=IMAGE, since=IMAGE")
	fl.StringVar(&formatStr, "format", "", "format output: table, table TEMPLATE, json, or a Go template")
	return cmd
}

// imageRows makes a row per name of each image (one <none> row for an
// image without names), newest first, as docker images does. With
// patterns only the matching names of an image get rows.
func imageRows(imgs []image.Image, noTrunc, onlyMatching bool, patterns []string) []imageRow {
	var rows []imageRow
	for _, img := range imgs {
		id := img.ID.String()
		if !noTrunc {
			id = img.ID.Encoded()[:12]
		}
		base := imageRow{
			ID: id, Repository: "<none>", Tag: "<none>", Digest: "<none>",
			CreatedSince: since(img.Created), CreatedAt: img.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
			Size: humanSize(img.Size), VirtualSize: humanSize(img.Size), SharedSize: "N/A", UniqueSize: "N/A", Containers: "N/A",
			created: img.Created,
		}
		digests := map[string]string{}
		for _, d := range img.Digests {
			if n, err := reference.ParseNormalizedNamed(d); err == nil {
				if dg, ok := n.(reference.Digested); ok {
					digests[n.Name()] = dg.Digest().String()
				}
			}
		}
		named := 0
		for _, name := range img.Names {
			n, err := reference.ParseNormalizedNamed(name)
			if err != nil {
				continue
			}
			if onlyMatching && !matchAny(patterns, n) {
				continue
			}
			r := base
			r.Repository = reference.FamiliarName(n)
			if t, ok := n.(reference.Tagged); ok {
				r.Tag = t.Tag()
			}
			if d, ok := digests[n.Name()]; ok {
				r.Digest = d
			}
			rows = append(rows, r)
			named++
		}
		if named == 0 && !onlyMatching {
			if len(img.Digests) > 0 {
				if n, err := reference.ParseNormalizedNamed(img.Digests[0]); err == nil {
					base.Repository = reference.FamiliarName(n)
					base.Digest = digests[n.Name()]
				}
			}
			rows = append(rows, base)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if !rows[i].created.Equal(rows[j].created) {
			return rows[i].created.After(rows[j].created)
		}
		if rows[i].Repository != rows[j].Repository {
			return rows[i].Repository < rows[j].Repository
		}
		return rows[i].Tag < rows[j].Tag
	})
	return rows
}

func matchAny(patterns []string, n reference.Named) bool {
	for _, p := range patterns {
		if ok, _ := reference.FamiliarMatch(p, n); ok {
			return true
		}
		if ok, _ := reference.FamiliarMatch(p, reference.TrimNamed(n)); ok {
			return true
		}
	}
	return false
}

func inspectCmd(a *app, imageOnly bool) *cobra.Command {
	var formatStr, typ string
	var size bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Show low-level information on containers and images",
		Args:  minArgs(1, "the objects to inspect"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if imageOnly {
				typ = "image"
			}
			switch typ {
			case "", "image", "container", "volume":
			default:
				return usageError(cmd, fmt.Errorf("--type %q: container, image or volume", typ))
			}
			ctx := cmd.Context()
			var found []any
			var firstErr error
			for _, ref := range args {
				obj, err := a.inspectOne(ctx, typ, ref)
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				found = append(found, obj)
			}
			if err := printInspect(a, formatStr, found); err != nil {
				return err
			}
			return firstErr
		},
	}
	cmd.Flags().StringVarP(&formatStr, "format", "f", "", "format output with a Go template, or json")
	if !imageOnly {
		cmd.Flags().StringVar(&typ, "type", "", "only inspect objects of this type: container, image, volume")
		cmd.Flags().BoolVarP(&size, "size", "s", false, "display total file sizes (containers)")
	}
	return cmd
}

// inspectOne finds ref as a container, then an image, then a volume (or
// only as typ), as docker inspect does.
func (a *app) inspectOne(ctx context.Context, typ, ref string) (any, error) {
	if typ == "" || typ == "container" {
		e, err := a.containers()
		if err != nil {
			return nil, err
		}
		in, err := e.InspectContainer(ctx, ref)
		if err == nil || typ == "container" {
			return in, err
		}
	}
	if typ == "" || typ == "image" {
		s, err := a.images()
		if err != nil {
			return nil, err
		}
		in, err := s.InspectImage(ctx, ref)
		if err == nil || typ == "image" {
			return in, err
		}
	}
	if typ == "" || typ == "volume" {
		vs, err := a.volumeStore()
		if err != nil {
			return nil, err
		}
		if v, err := vs.Get(ref); err == nil || typ == "volume" {
			return v, err
		}
	}
	return nil, fmt.Errorf("no such object: %s", ref)
}

type historyRow struct {
	ID           string
	CreatedSince string
	CreatedAt    string
	CreatedBy    string
	Size         string
	Comment      string
}

func historyCmd(a *app) *cobra.Command {
	var human, noTrunc, quiet bool
	var formatStr string
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] IMAGE",
		Short: "Show the history of an image",
		Args:  exactArgs(1, "the image"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.images()
			if err != nil {
				return err
			}
			hist, err := s.History(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if quiet {
				for _, h := range hist {
					if h.ID != "" {
						fmt.Fprintln(a.stdout, shortOr(h.ID.String(), noTrunc))
					} else {
						fmt.Fprintln(a.stdout, "<missing>")
					}
				}
				return nil
			}
			w, err := format.New(a.stdout, formatStr, "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
				map[string]string{"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"})
			if err != nil {
				return usageError(cmd, err)
			}
			for _, h := range hist {
				r := historyRow{ID: "<missing>", CreatedBy: h.CreatedBy, Comment: h.Comment}
				if h.ID != "" {
					r.ID = shortOr(h.ID.String(), noTrunc)
				}
				if human {
					r.CreatedSince = since(h.Created)
					r.Size = humanSize(h.Size)
				} else {
					r.CreatedSince = h.Created.Format(time.RFC3339)
					r.Size = fmt.Sprint(h.Size)
				}
				r.CreatedAt = h.Created.Format(time.RFC3339)
				if !noTrunc && len([]rune(r.CreatedBy)) > 45 {
					r.CreatedBy = string([]rune(r.CreatedBy)[:44]) + "…"
				}
				if err := w.Write(r); err != nil {
					return err
				}
			}
			return w.Flush()
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&human, "human", "H", true, "print sizes and dates in human readable format")
	fl.BoolVar(&noTrunc, "no-trunc", false, "don't truncate output")
	fl.BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	fl.StringVar(&formatStr, "format", "", "format output: table, table TEMPLATE, json, or a Go template")
	return cmd
}

func shortOr(id string, full bool) string {
	if full {
		return id
	}
	return strings.TrimPrefix(id, "sha256:")[:12]
}

func tagCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  exactArgs(2, "the source image and the new name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.images()
			if err != nil {
				return err
			}
			return s.Tag(cmd.Context(), args[0], args[1])
		},
	}
}

func rmiCmd(a *app, use string) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS] IMAGE [IMAGE...]",
		Short: "Remove one or more images",
		Args:  minArgs(1, "the images to remove"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.images()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var errs []error
			removed := false
			for _, ref := range args {
				rep, err := s.Remove(ctx, ref, force)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				for _, u := range rep.Untagged {
					fmt.Fprintln(a.stdout, "Untagged: "+u)
				}
				for _, d := range rep.Deleted {
					fmt.Fprintln(a.stdout, "Deleted: "+d.String())
					removed = true
				}
			}
			if removed {
				// Blobs and layers go now unless a writer is busy; then
				// the next collection takes them.
				if _, err := s.GC(ctx, image.GCOptions{}); err != nil {
					errs = append(errs, err)
				}
			}
			if len(errs) > 1 {
				for _, e := range errs[:len(errs)-1] {
					fmt.Fprintln(a.stderr, "Error: "+message(e))
				}
			}
			if len(errs) > 0 {
				return errs[len(errs)-1]
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove the image even if several names refer to it, or it is mounted")
	return cmd
}

// confirm asks on a terminal; elsewhere it refuses, so that a script does
// not delete by accident (it passes --force).
func confirm(a *app, cmd *cobra.Command, question string) error {
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return usageError(cmd, errors.New("not on a terminal to ask for confirmation: pass --force"))
	}
	fmt.Fprint(a.stdout, question+" [y/N] ")
	line, _ := bufio.NewReader(f).ReadString('\n')
	if ans := strings.ToLower(strings.TrimSpace(line)); ans != "y" && ans != "yes" {
		return &exitError{code: 0}
	}
	return nil
}

func pruneCmd(a *app) *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images, and what interrupted loads left",
		Args:  exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				q := "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
				if all {
					q = "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?"
				}
				if err := confirm(a, cmd, q); err != nil {
					return err
				}
			}
			s, err := a.images()
			if err != nil {
				return err
			}
			rep, err := s.Prune(cmd.Context(), all)
			if err != nil {
				return err
			}
			if len(rep.Deleted) > 0 {
				fmt.Fprintln(a.stdout, "Deleted Images:")
				for _, d := range rep.Deleted {
					fmt.Fprintln(a.stdout, "deleted: "+d.String())
				}
				fmt.Fprintln(a.stdout)
			}
			fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", humanSize(rep.GC.Bytes))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove all unused images, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt for confirmation")
	return cmd
}

func mountCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "mount [IMAGE...]",
		Short: "Mount an image's root file system read-only and print where; without arguments, list mounted images",
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.images()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if len(args) == 0 {
				ms, err := s.MountedImages(ctx)
				if err != nil {
					return err
				}
				for _, m := range ms {
					name := m.ID.Encoded()[:12]
					if len(m.Names) > 0 {
						name = image.FamiliarString(m.Names[0])
					}
					fmt.Fprintf(a.stdout, "%s %s\n", name, m.Path)
				}
				return nil
			}
			for _, ref := range args {
				p, err := s.MountImage(ctx, ref)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, p)
			}
			return nil
		},
	}
}

func unmountCmd(a *app) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "unmount [IMAGE...]",
		Aliases: []string{"umount"},
		Short:   "Unmount images mounted with berth image mount",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !all {
				return usageError(cmd, errors.New("name the images to unmount, or pass --all"))
			}
			s, err := a.images()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if all {
				ms, err := s.MountedImages(ctx)
				if err != nil {
					return err
				}
				for _, m := range ms {
					args = append(args, m.ID.String())
				}
			}
			for _, ref := range args {
				img, err := s.Get(ctx, ref)
				if err != nil {
					return err
				}
				if err := s.UnmountImage(ctx, ref); err != nil {
					if all && errdefs.IsFailedPrecondition(err) {
						continue
					}
					return err
				}
				fmt.Fprintln(a.stdout, img.ID.String())
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "unmount every mounted image")
	return cmd
}
