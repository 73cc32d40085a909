package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthproject/berth/image"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func platformFlag(s string) (ocispec.Platform, error) {
	if s == "" {
		return ocispec.Platform{}, nil
	}
	return image.ParsePlatform(s)
}

func loadCmd(a *app) *cobra.Command {
	var input, platform string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load images from a docker-archive or OCI archive (a file, a directory, or stdin)",
		Args:  exactArgs(0, "none: the archive comes with -i or on stdin"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := platformFlag(platform)
			if err != nil {
				return usageError(cmd, err)
			}
			s, err := a.images()
			if err != nil {
				return err
			}
			ch, err := a.checker()
			if err != nil {
				return err
			}
			opts := ch.LoadOptions(image.LoadOptions{Platform: p})
			var loaded []image.Loaded
			if input != "" {
				loaded, err = s.LoadPath(cmd.Context(), input, opts)
			} else {
				if isTerminal(a.stdin) {
					return usageError(cmd, errors.New("requested load from stdin, but stdin is a terminal: use -i FILE or redirect an archive in"))
				}
				loaded, err = s.Load(cmd.Context(), a.stdin, opts)
			}
			if err != nil {
				return err
			}
			for _, l := range loaded {
				if len(l.Names) == 0 {
					fmt.Fprintln(a.stdout, "Loaded image ID: "+l.ID.String())
				}
				for _, n := range l.Names {
					fmt.Fprintln(a.stdout, "Loaded image: "+image.FamiliarString(n))
				}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&input, "input", "i", "", "read from this archive file or OCI layout directory instead of stdin")
	fl.BoolVarP(&quiet, "quiet", "q", false, "suppress progress output")
	fl.StringVar(&platform, "platform", "", "choose this platform (os/arch[/variant]) from manifest lists (default: this host's)")
	return cmd
}

func saveCmd(a *app) *cobra.Command {
	var output, formatStr string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save images to a docker-archive, an OCI archive or an OCI layout directory",
		Args:  minArgs(1, "the images to save"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := image.ParseSaveFormat(formatStr)
			if err != nil {
				return usageError(cmd, err)
			}
			s, err := a.images()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var arts []image.Artifact
			if f != image.DockerArchive {
				// Signatures and custody records travel in OCI layouts.
				if arts, err = a.attachedArtifacts(ctx, s, args); err != nil {
					return err
				}
			}
			if f == image.OCIDir {
				if output == "" {
					return usageError(cmd, errors.New("--format oci-dir needs -o DIRECTORY"))
				}
				return s.SaveDirWith(ctx, output, args, arts)
			}
			if output == "" {
				if isTerminal(a.stdout) {
					return usageError(cmd, errors.New("cowardly refusing to write an archive to a terminal: use -o FILE or redirect"))
				}
				return s.SaveWith(ctx, a.stdout, args, f, arts)
			}
			// The archive appears whole or not at all.
			tmp, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".tmp-")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			if err := s.SaveWith(ctx, tmp, args, f, arts); err != nil {
				tmp.Close()
				return err
			}
			if err := tmp.Sync(); err != nil {
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
	fl := cmd.Flags()
	fl.StringVarP(&output, "output", "o", "", "write to this file (or directory, for oci-dir) instead of stdout")
	fl.StringVar(&formatStr, "format", "docker-archive", "docker-archive, oci-archive or oci-dir")
	return cmd
}

func importCmd(a *app) *cobra.Command {
	var changes []string
	var message, platform string
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
		Short: "Make an image from a root file system tarball",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError(cmd, fmt.Errorf("%q takes a tarball (file, URL or -) and optionally a name", cmd.CommandPath()))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := platformFlag(platform)
			if err != nil {
				return usageError(cmd, err)
			}
			opts := image.ImportOptions{Changes: changes, Message: message, Platform: p, Source: args[0]}
			if len(args) == 2 {
				opts.Ref = args[1]
			}
			var r io.Reader
			switch src := args[0]; {
			case src == "-":
				if isTerminal(a.stdin) {
					return usageError(cmd, errors.New("import from stdin, but stdin is a terminal: redirect a tarball in"))
				}
				r = a.stdin
			case strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"):
				req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, src, nil)
				if err != nil {
					return err
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return fmt.Errorf("import: download %s: %w", src, err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("import: download %s: %s", src, resp.Status)
				}
				r = resp.Body
			default:
				f, err := os.Open(src)
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				r = f
			}
			s, err := a.images()
			if err != nil {
				return err
			}
			img, err := s.Import(cmd.Context(), r, opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, img.ID.String())
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&changes, "change", "c", nil, "apply a Dockerfile instruction to the image ("+image.ChangeInstructions+")")
	fl.StringVarP(&message, "message", "m", "", "commit message for the image's history")
	fl.StringVar(&platform, "platform", "", "the image's platform (os/arch[/variant]; default: this host's)")
	return cmd
}

// attachedArtifacts are the signatures and custody records of the images
// refs name, and of the images their custody chains name.
func (a *app) attachedArtifacts(ctx context.Context, s *image.Store, refs []string) ([]image.Artifact, error) {
	ts, err := a.trustStore()
	if err != nil {
		return nil, err
	}
	var out []image.Artifact
	for _, r := range refs {
		img, err := s.Get(ctx, r)
		if err != nil {
			return nil, err
		}
		arts, err := ts.ChainArtifacts(img.Manifest)
		if err != nil {
			return nil, err
		}
		out = append(out, arts...)
	}
	return out, nil
}
