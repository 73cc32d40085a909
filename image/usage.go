package image

import (
	"context"
	"fmt"

	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/snapshot"
	digest "github.com/opencontainers/go-digest"
)

// ImageUsage is one image's share of the disk.
type ImageUsage struct {
	Image Image
	// Size is the unpacked size of all its layers.
	Size int64
	// Shared is the part of Size in layers other images use too.
	Shared int64
	// Unique is the part only this image uses.
	Unique int64
	// Containers using the image.
	Containers int
}

// DiskUsage is what system df reports about images.
type DiskUsage struct {
	Images []ImageUsage
	// LayersSize is the unpacked layers' size, each shared layer once.
	LayersSize int64
	// LayersSizeNaive is what the layers would take stored per image.
	LayersSizeNaive int64
	// BlobsSize is the content store: compressed layers, manifests, configs.
	BlobsSize int64
	// Reclaimable is what removing every image no container uses frees.
	Reclaimable int64
	// Active is the number of images containers use.
	Active int
}

// DiskUsage measures the store.
func (s *Store) DiskUsage(ctx context.Context) (DiskUsage, error) {
	var du DiskUsage
	imgs, err := s.List(ctx)
	if err != nil {
		return du, err
	}
	infos := map[string]snapshot.Info{}
	if err := s.snaps.Walk(ctx, func(i snapshot.Info) error { infos[i.Name] = i; return nil }); err != nil {
		return du, err
	}
	chains := make([][]string, len(imgs))
	users := map[string]int{}
	for i, img := range imgs {
		for c := img.ChainID.String(); c != ""; c = infos[c].Parent {
			if _, ok := infos[c]; !ok {
				break
			}
			chains[i] = append(chains[i], c)
			users[c]++
		}
	}
	counted := map[string]bool{}
	inUse := map[string]bool{}
	for i, img := range imgs {
		u := ImageUsage{Image: img}
		if c, _ := s.usersOf(ctx, img.ID); len(c) > 0 {
			u.Containers = len(c)
			du.Active++
			for _, l := range chains[i] {
				inUse[l] = true
			}
		}
		for _, l := range chains[i] {
			size := infos[l].Size
			u.Size += size
			if users[l] > 1 {
				u.Shared += size
			} else {
				u.Unique += size
			}
			if !counted[l] {
				counted[l] = true
				du.LayersSize += size
			}
		}
		du.LayersSizeNaive += u.Size
		du.Images = append(du.Images, u)
	}
	for l := range counted {
		if !inUse[l] {
			du.Reclaimable += infos[l].Size
		}
	}
	if err := s.content.Walk(ctx, func(i content.Info) error { du.BlobsSize += i.Size; return nil }); err != nil {
		return du, fmt.Errorf("disk usage: %w", err)
	}
	return du, nil
}

// layerSize is the unpacked size of one layer snapshot.
func (s *Store) layerSize(ctx context.Context, chainID digest.Digest) int64 {
	u, err := s.snaps.Usage(ctx, chainID.String())
	if err != nil {
		return 0
	}
	return u.Size
}
