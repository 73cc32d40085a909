package main

import (
	"fmt"

	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/internal/format"
	"github.com/spf13/cobra"
)

type dfRow struct {
	Type        string
	TotalCount  string
	Active      string
	Size        string
	Reclaimable string
}

func dfCmd(a *app) *cobra.Command {
	var verbose bool
	var formatStr string
	cmd := &cobra.Command{
		Use:   "df [OPTIONS]",
		Short: "Show disk usage: what the store holds, and what sharing layers saves",
		Args:  exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.images()
			if err != nil {
				return err
			}
			du, err := s.DiskUsage(cmd.Context())
			if err != nil {
				return err
			}
			total := du.LayersSize + du.BlobsSize
			pct := 0
			if du.LayersSize > 0 {
				pct = int(du.Reclaimable * 100 / du.LayersSize)
			}
			rows := []dfRow{
				{"Images", fmt.Sprint(len(du.Images)), fmt.Sprint(du.Active), humanSize(total), fmt.Sprintf("%s (%d%%)", humanSize(du.Reclaimable+du.BlobsSize), pct)},
				{"Containers", "0", "0", "0B", "0B"},
				{"Local Volumes", "0", "0", "0B", "0B"},
				{"Build Cache", "0", "0", "0B", "0B"},
			}
			if !verbose {
				w, err := format.New(a.stdout, formatStr, "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
					map[string]string{"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"})
				if err != nil {
					return usageError(cmd, err)
				}
				for _, r := range rows {
					w.Write(r)
				}
				if err := w.Flush(); err != nil {
					return err
				}
				if formatStr == "" && du.LayersSizeNaive > du.LayersSize {
					fmt.Fprintf(a.stdout, "\nShared layers: %s stored once instead of %s (%s saved); compressed blobs: %s.\n",
						humanSize(du.LayersSize), humanSize(du.LayersSizeNaive), humanSize(du.LayersSizeNaive-du.LayersSize), humanSize(du.BlobsSize))
				}
				return nil
			}
			fmt.Fprintln(a.stdout, "Images space usage:")
			fmt.Fprintln(a.stdout)
			w, err := format.New(a.stdout, formatStr, "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}", imageHeaders)
			if err != nil {
				return usageError(cmd, err)
			}
			var imgs []image.Image
			byID := map[string]image.ImageUsage{}
			for _, u := range du.Images {
				imgs = append(imgs, u.Image)
				byID[u.Image.ID.Encoded()[:12]] = u
			}
			for _, r := range imageRows(imgs, false, false, nil) {
				u := byID[r.ID]
				r.SharedSize, r.UniqueSize, r.Containers = humanSize(u.Shared), humanSize(u.Unique), fmt.Sprint(u.Containers)
				w.Write(r)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "\nLayers: %s on disk for %s of image content (%s saved by sharing). Compressed blobs: %s.\n",
				humanSize(du.LayersSize), humanSize(du.LayersSizeNaive), humanSize(du.LayersSizeNaive-du.LayersSize), humanSize(du.BlobsSize))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show each image's size, shared and unique")
	cmd.Flags().StringVar(&formatStr, "format", "", "format output: table, table TEMPLATE, json, or a Go template")
	return cmd
}

func checkCmd(a *app) *cobra.Command {
	var repair bool
	cmd := &cobra.Command{
		Use:   "check [OPTIONS]",
		Short: "Verify every blob's digest, every layer's parent chain and every image's content",
		Args:  exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.images()
			if err != nil {
				return err
			}
			rep, err := s.Check(cmd.Context(), repair)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Checked %d blobs, %d layers and %d images.\n", rep.Blobs, rep.Snapshots, rep.Images)
			for _, p := range rep.Problems {
				fmt.Fprintln(a.stdout, "problem: "+p)
			}
			for _, r := range rep.Repaired {
				fmt.Fprintln(a.stdout, "repaired: "+r)
			}
			if rep.ReclaimableBlobs+rep.ReclaimableSnapshots+rep.StaleIngests > 0 {
				fmt.Fprintf(a.stdout, "Unused: %d blobs, %d layers, %d interrupted writes (berth image prune removes them).\n",
					rep.ReclaimableBlobs, rep.ReclaimableSnapshots, rep.StaleIngests)
			}
			if len(rep.Problems) == 0 {
				fmt.Fprintln(a.stdout, "No problems found.")
				return nil
			}
			if repair {
				fmt.Fprintln(a.stdout, "Repaired: the damaged content is gone, everything else is kept.")
				return nil
			}
			return &exitError{code: 1, err: fmt.Errorf("%d problems found: run berth system check --repair to remove what is damaged", len(rep.Problems))}
		},
	}
	cmd.Flags().BoolVarP(&repair, "repair", "r", false, "remove damaged blobs, broken layers and the images that need them")
	return cmd
}
