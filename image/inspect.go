package image

import (
	"context"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
)

// Inspect is an image as docker image inspect shows it (the same field
// names, so --format templates written for Docker work).
type Inspect struct {
	Id            string
	RepoTags      []string
	RepoDigests   []string
	Parent        string
	Comment       string
	Created       string
	DockerVersion string
	Author        string
	Config        dockerspec.DockerOCIImageConfig
	Architecture  string
	Variant       string `json:",omitempty"`
	Os            string
	Size          int64
	VirtualSize   int64 `json:",omitempty"`
	GraphDriver   GraphDriver
	RootFS        RootFS
	Metadata      Metadata
	// Digest and MediaType name the manifest (as podman shows them).
	Digest    string
	MediaType string
}

// GraphDriver names the snapshot driver and where the layers are.
type GraphDriver struct {
	Name string
	Data map[string]string
}

// RootFS lists the layers' diff_ids.
type RootFS struct {
	Type   string
	Layers []string
}

// Metadata holds store-side facts.
type Metadata struct {
	LastTagTime string
}

// InspectImage returns what docker image inspect shows of ref.
func (s *Store) InspectImage(ctx context.Context, ref string) (*Inspect, error) {
	img, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	cfg, err := s.Config(ctx, img)
	if err != nil {
		return nil, err
	}
	in := &Inspect{
		Id:           img.ID.String(),
		Parent:       string(img.Parent),
		RepoTags:     familiarAll(img.Names),
		RepoDigests:  familiarAll(img.Digests),
		Author:       cfg.Author,
		Config:       cfg.Config,
		Architecture: cfg.Architecture,
		Variant:      cfg.Variant,
		Os:           cfg.OS,
		Size:         img.Size,
		GraphDriver:  GraphDriver{Name: s.Driver(), Data: map[string]string{}},
		RootFS:       RootFS{Type: "layers"},
		Metadata:     Metadata{LastTagTime: img.Added.Format(time.RFC3339Nano)},
		Digest:       img.Manifest.Digest.String(),
		MediaType:    img.Manifest.MediaType,
	}
	if in.RepoTags == nil {
		in.RepoTags = []string{}
	}
	if in.RepoDigests == nil {
		in.RepoDigests = []string{}
	}
	if cfg.Created != nil {
		in.Created = cfg.Created.UTC().Format(time.RFC3339Nano)
	}
	if n := len(cfg.History); n > 0 {
		in.Comment = cfg.History[n-1].Comment
	}
	for _, d := range cfg.RootFS.DiffIDs {
		in.RootFS.Layers = append(in.RootFS.Layers, d.String())
	}
	return in, nil
}
