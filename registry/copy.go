package registry

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/berthproject/berth/content"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/internal/atomicfile"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Transport names where an image is, in skopeo's words.
type Transport string

const (
	Docker        Transport = "docker"         // docker://REF: a registry
	OCI           Transport = "oci"            // oci:DIR[:REF]: an OCI layout directory
	OCIArchive    Transport = "oci-archive"    // oci-archive:FILE[:REF]: the same, as a tar
	DockerArchive Transport = "docker-archive" // docker-archive:FILE[:REF]: docker save's format
	Store         Transport = "berth"          // berth:NAME: berth's image store
)

// Location is an image's place: a transport and what it names there.
type Location struct {
	Transport Transport
	// Path is the directory or file of a layout or archive.
	Path string
	// Ref is the image's name: in a registry or the store, the image
	// reference; in a layout, its ref.name (a tag); in a docker-archive,
	// the name:tag it is saved as.
	Ref string
}

func (l Location) String() string {
	switch l.Transport {
	case Docker:
		return "docker://" + l.Ref
	case Store:
		return "berth:" + l.Ref
	}
	if l.Ref != "" {
		return string(l.Transport) + ":" + l.Path + ":" + l.Ref
	}
	return string(l.Transport) + ":" + l.Path
}

// ParseLocation reads TRANSPORT:... as skopeo does.
func ParseLocation(s string) (Location, error) {
	t, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return Location{}, fmt.Errorf("image location %q: want TRANSPORT:NAME (docker://, oci:, oci-archive:, docker-archive:, berth:): %w", s, errdefs.ErrInvalidArgument)
	}
	switch Transport(t) {
	case Docker:
		ref, found := strings.CutPrefix(rest, "//")
		if !found || ref == "" {
			return Location{}, fmt.Errorf("image location %q: docker:// takes a registry reference (docker://quay.io/x/y:1): %w", s, errdefs.ErrInvalidArgument)
		}
		return Location{Transport: Docker, Ref: ref}, nil
	case Store:
		return Location{Transport: Store, Ref: rest}, nil
	case OCI, OCIArchive, DockerArchive:
		// The reference follows the last colon, when it names no path.
		p, ref := rest, ""
		if i := strings.LastIndexByte(rest, ':'); i > 0 && !strings.Contains(rest[i+1:], "/") {
			p, ref = rest[:i], rest[i+1:]
		}
		if Transport(t) == DockerArchive && ref != "" && !strings.Contains(ref, "/") && strings.Count(rest, ":") >= 2 {
			// docker-archive:FILE:NAME:TAG
			i := strings.IndexByte(rest, ':')
			p, ref = rest[:i], rest[i+1:]
		}
		return Location{Transport: Transport(t), Path: p, Ref: ref}, nil
	}
	return Location{}, fmt.Errorf("image location %q: unknown transport %q (docker, oci, oci-archive, docker-archive, berth): %w", s, t, errdefs.ErrInvalidArgument)
}

// CopyOptions control Copy.
type CopyOptions struct {
	Platform ocispec.Platform
	Progress Reporter
}

// Copy copies an image from src to dst. Between a registry, a layout and
// an OCI archive the manifest is copied as it is, so the image keeps its
// digest; a docker-archive has a manifest format of its own. The store is
// reached through Pull, Push, Load and Tag, with their checks.
func (cl *Client) Copy(ctx context.Context, store *image.Store, src, dst Location, o CopyOptions) error {
	what := "copy " + src.String() + " to " + dst.String()
	switch {
	case dst.Transport == Store && src.Transport == Store:
		if err := store.Tag(ctx, src.Ref, dst.Ref); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	case dst.Transport == Store && src.Transport == Docker:
		pulled, err := cl.Pull(ctx, store, src.Ref, PullOptions{Platform: o.Platform, Progress: o.Progress})
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return tagAs(ctx, store, pulled[0].ID.String(), dst.Ref, what)
	case dst.Transport == Store:
		return cl.copyIntoStore(ctx, store, src, dst, o, what)
	case src.Transport == Store && dst.Transport == Docker:
		_, err := cl.Push(ctx, store, src.Ref, dst.Ref, PushOptions{Progress: o.Progress})
		return err
	}
	img, cleanup, err := cl.openImage(ctx, store, src, o)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer cleanup()
	if err := cl.writeImage(ctx, img, dst); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func tagAs(ctx context.Context, store *image.Store, id, ref, what string) error {
	if ref == "" {
		return nil
	}
	if err := store.Tag(ctx, id, ref); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// copyIntoStore loads a layout or an archive (the store's own loader, with
// its checks), then names the image as dst says.
func (cl *Client) copyIntoStore(ctx context.Context, store *image.Store, src, dst Location, o CopyOptions, what string) error {
	p := src.Path
	if src.Transport == OCIArchive {
		tmp, err := os.MkdirTemp("", "berth-copy-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := untar(src.Path, tmp); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		src, p = Location{Transport: OCI, Path: tmp, Ref: src.Ref}, tmp
	}
	if src.Transport == OCI {
		// One image of the layout (the one named, or its only one) goes
		// in, and nothing when that is not clear.
		plat := v1.Platform{OS: o.Platform.OS, Architecture: o.Platform.Architecture, Variant: o.Platform.Variant}
		if plat.OS == "" {
			hp := image.HostPlatform()
			plat = v1.Platform{OS: hp.OS, Architecture: hp.Architecture, Variant: hp.Variant}
		}
		img, err := layoutImage(src.Path, src.Ref, plat)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if src.Ref != "" {
			tmp, err := os.MkdirTemp("", "berth-copy-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			if err := writeLayout(tmp, img, ""); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			p = tmp
		}
	}
	loaded, err := store.LoadPath(ctx, p, image.LoadOptions{Platform: o.Platform})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if len(loaded) != 1 {
		return fmt.Errorf("%s: the source holds %d images: name one (%s:PATH:REF): %w", what, len(loaded), src.Transport, errdefs.ErrInvalidArgument)
	}
	return tagAs(ctx, store, loaded[0].ID.String(), dst.Ref, what)
}

// openImage opens src as a go-containerregistry image.
func (cl *Client) openImage(ctx context.Context, store *image.Store, src Location, o CopyOptions) (v1.Image, func(), error) {
	nothing := func() {}
	plat := v1.Platform{OS: o.Platform.OS, Architecture: o.Platform.Architecture, Variant: o.Platform.Variant}
	if plat.OS == "" {
		hp := image.HostPlatform()
		plat = v1.Platform{OS: hp.OS, Architecture: hp.Architecture, Variant: hp.Variant}
	}
	switch src.Transport {
	case Docker:
		ref, err := cl.Reference(src.Ref)
		if err != nil {
			return nil, nothing, err
		}
		base, err := cl.base(ref.Context().RegistryStr())
		if err != nil {
			return nil, nothing, err
		}
		img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithTransport(base), remote.WithAuthFromKeychain(cl.creds), remote.WithPlatform(plat))
		if err != nil {
			return nil, nothing, classify(ref.Context().RegistryStr(), err)
		}
		return img, nothing, nil
	case OCI:
		img, err := layoutImage(src.Path, src.Ref, plat)
		return img, nothing, err
	case OCIArchive:
		tmp, err := os.MkdirTemp("", "berth-copy-")
		if err != nil {
			return nil, nothing, err
		}
		cleanup := func() { os.RemoveAll(tmp) }
		if err := untar(src.Path, tmp); err != nil {
			cleanup()
			return nil, nothing, err
		}
		img, err := layoutImage(tmp, src.Ref, plat)
		if err != nil {
			cleanup()
			return nil, nothing, err
		}
		return img, cleanup, nil
	case DockerArchive:
		var tag *name.Tag
		if src.Ref != "" {
			t, err := name.NewTag(src.Ref)
			if err != nil {
				return nil, nothing, fmt.Errorf("docker-archive name %q: %v: %w", src.Ref, err, errdefs.ErrInvalidArgument)
			}
			tag = &t
		}
		img, err := tarball.ImageFromPath(src.Path, tag)
		if err != nil {
			return nil, nothing, fmt.Errorf("docker-archive %s: %v: %w", src.Path, err, errdefs.ErrInvalidArgument)
		}
		return img, nothing, nil
	case Store:
		img, err := storeAsImage(ctx, store, src.Ref)
		return img, nothing, err
	}
	return nil, nothing, fmt.Errorf("transport %q cannot be read: %w", src.Transport, errdefs.ErrInvalidArgument)
}

// layoutImage finds the image a layout names ref (its only one when ref
// is empty), for the platform when it is an index.
func layoutImage(dir, ref string, plat v1.Platform) (v1.Image, error) {
	ii, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %v: %w", dir, err, errdefs.ErrInvalidArgument)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %v: %w", dir, err, errdefs.ErrInvalidArgument)
	}
	var pick []v1.Descriptor
	for _, m := range im.Manifests {
		if ref == "" || m.Annotations[ocispec.AnnotationRefName] == ref {
			pick = append(pick, m)
		}
	}
	switch {
	case len(pick) == 0 && ref != "":
		return nil, fmt.Errorf("OCI layout %s has no image named %q: %w", dir, ref, errdefs.ErrNotFound)
	case len(pick) == 0:
		return nil, fmt.Errorf("OCI layout %s holds no image: %w", dir, errdefs.ErrNotFound)
	case len(pick) > 1:
		return nil, fmt.Errorf("OCI layout %s holds %d images: name one (oci:%s:REF): %w", dir, len(pick), dir, errdefs.ErrInvalidArgument)
	}
	d := pick[0]
	if d.MediaType.IsIndex() {
		child, err := ii.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		cm, err := child.IndexManifest()
		if err != nil {
			return nil, err
		}
		for _, c := range cm.Manifests {
			if c.Platform != nil && c.Platform.Satisfies(plat) {
				return child.Image(c.Digest)
			}
		}
		return nil, fmt.Errorf("OCI layout %s: no image for %s/%s: %w", dir, plat.OS, plat.Architecture, errdefs.ErrNotFound)
	}
	return ii.Image(d.Digest)
}

// storeAsImage is a stored image as a go-containerregistry image, with its
// manifest and config as stored.
func storeAsImage(ctx context.Context, store *image.Store, ref string) (v1.Image, error) {
	img, err := store.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	cs := store.Content()
	mb, err := content.ReadBlob(ctx, cs, img.Manifest, MaxManifest)
	if err != nil {
		return nil, err
	}
	m, err := store.Manifest(ctx, img)
	if err != nil {
		return nil, err
	}
	cb, err := content.ReadBlob(ctx, cs, m.Config, maxConfig)
	if err != nil {
		return nil, err
	}
	mt := img.Manifest.MediaType
	if mt == "" {
		mt = m.MediaType
	}
	si := &storeImage{ctx: ctx, cs: cs, manifest: mb, config: cb, mediaType: types.MediaType(mt), layers: map[string]ocispec.Descriptor{}, rep: quiet{}, opened: map[string]bool{}}
	for _, l := range m.Layers {
		si.layers[l.Digest.String()] = l
	}
	return partial.CompressedToImage(si)
}

// writeImage writes img to dst (not the store).
func (cl *Client) writeImage(ctx context.Context, img v1.Image, dst Location) error {
	switch dst.Transport {
	case Docker:
		ref, err := cl.Reference(dst.Ref)
		if err != nil {
			return err
		}
		base, err := cl.base(ref.Context().RegistryStr())
		if err != nil {
			return err
		}
		if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(base), remote.WithAuthFromKeychain(cl.creds), remote.WithJobs(4)); err != nil {
			return classify(ref.Context().RegistryStr(), err)
		}
		return nil
	case OCI:
		return writeLayout(dst.Path, img, dst.Ref)
	case OCIArchive:
		tmp, err := os.MkdirTemp(filepath.Dir(dst.Path), ".berth-copy-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := writeLayout(tmp, img, dst.Ref); err != nil {
			return err
		}
		return tarDir(tmp, dst.Path)
	case DockerArchive:
		if dst.Ref == "" {
			return fmt.Errorf("a docker-archive destination needs a name (docker-archive:FILE:NAME:TAG): %w", errdefs.ErrInvalidArgument)
		}
		tag, err := name.NewTag(dst.Ref)
		if err != nil {
			return fmt.Errorf("docker-archive name %q: %v: %w", dst.Ref, err, errdefs.ErrInvalidArgument)
		}
		tmp := dst.Path + ".tmp"
		if err := tarball.WriteToFile(tmp, tag, img); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("write %s: %w", dst.Path, err)
		}
		return os.Rename(tmp, dst.Path)
	}
	return fmt.Errorf("transport %q cannot be written: %w", dst.Transport, errdefs.ErrInvalidArgument)
}

// writeLayout adds img to the layout at dir (made when missing), named ref.
func writeLayout(dir string, img v1.Image, ref string) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("OCI layout %s: %w", dir, err)
		}
	}
	var opts []layout.Option
	if ref != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: ref}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		return fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	return nil
}

// tarDir writes dir's files into a tar at out (sorted, so that the same
// layout makes the same archive), atomically.
func tarDir(dir, out string) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	return atomicfile.WriteWith(out, 0o644, func(w io.Writer) error {
		tw := tar.NewWriter(w)
		for _, p := range files {
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			hdr, err := tar.FileInfoHeader(fi, "")
			if err != nil {
				return err
			}
			hdr.Name = filepath.ToSlash(rel)
			if fi.IsDir() {
				hdr.Name += "/"
			}
			hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				_, err = io.Copy(tw, f)
				f.Close()
				if err != nil {
					return err
				}
			}
		}
		return tw.Close()
	})
}

// untar unpacks an OCI archive (a layout as a tar: regular files and
// directories only, every name inside dir).
func untar(archivePath, dir string) error {
	f, err := os.Open(archivePath)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("OCI archive %s: %v: %w", archivePath, err, errdefs.ErrInvalidArgument)
		}
		clean := filepath.Clean("/" + hdr.Name)
		p := filepath.Join(dir, clean)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("OCI archive %s: %s: %w", archivePath, hdr.Name, err)
			}
			_, err = io.Copy(out, tr)
			out.Close()
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("OCI archive %s: %s is not a file or directory: %w", archivePath, hdr.Name, errdefs.ErrInvalidArgument)
		}
	}
}
