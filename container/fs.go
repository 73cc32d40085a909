package container

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	securejoin "github.com/cyphar/filepath-securejoin"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/sys/mountinfo"
)

// withRootfs runs fn with the container's root file system mounted,
// mounting it for the time of fn when the container is not running.
func (e *Engine) withRootfs(ctx context.Context, c *Container, fn func(rootfs string) error) error {
	dir := e.rootfsDir(c.ID)
	mounted, _ := mountinfo.Mounted(dir)
	if !mounted {
		if _, err := e.mountRootfs(ctx, c); err != nil {
			return err
		}
		defer e.unmountRootfs(c)
	}
	return fn(dir)
}

// hostPath maps a path inside the container to where it is on the host:
// in a volume or bind mount the container has there, or in its root file
// system; symlinks are resolved inside whichever of those it is.
func hostPath(c *Container, rootfs, p string) (string, error) {
	p = path.Clean("/" + p)
	var best *Mount
	for i := range c.Mounts {
		m := &c.Mounts[i]
		if m.Type == "tmpfs" {
			continue
		}
		if p == m.Destination || strings.HasPrefix(p, m.Destination+"/") {
			if best == nil || len(m.Destination) > len(best.Destination) {
				best = m
			}
		}
	}
	if best != nil {
		rel := strings.TrimPrefix(p, best.Destination)
		if best.Type == "bind" {
			fi, err := os.Stat(best.Source)
			if err == nil && !fi.IsDir() {
				return best.Source, nil
			}
		}
		return securejoin.SecureJoin(best.Source, rel)
	}
	return securejoin.SecureJoin(rootfs, p)
}

// PathStat describes a path inside a container.
type PathStat struct {
	Name       string
	Mode       os.FileMode
	Size       int64
	LinkTarget string
}

// StatPath describes the path p in a container (without following a
// final symlink), or errdefs.ErrNotFound.
func (e *Engine) StatPath(ctx context.Context, ref, p string) (*PathStat, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	var st *PathStat
	err = e.withRootfs(ctx, c, func(rootfs string) error {
		dir, err := hostPath(c, rootfs, path.Dir(path.Clean("/"+p)))
		if err != nil {
			return err
		}
		base := path.Base(path.Clean("/" + p))
		full := filepath.Join(dir, base)
		if base == "/" {
			full = dir
		}
		fi, err := os.Lstat(full)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("could not find the file %s in container %s: %w", p, c.Name, errdefs.ErrNotFound)
		}
		if err != nil {
			return err
		}
		st = &PathStat{Name: fi.Name(), Mode: fi.Mode(), Size: fi.Size()}
		if fi.Mode()&os.ModeSymlink != 0 {
			st.LinkTarget, _ = os.Readlink(full)
		}
		return nil
	})
	return st, err
}

// CopyFrom writes the path src of a container to w as a tar stream: the
// file or directory named name (or, with contents, what the directory
// holds, at the top).
func (e *Engine) CopyFrom(ctx context.Context, ref, src, name string, contents bool, w io.Writer) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	return e.withRootfs(ctx, c, func(rootfs string) error {
		clean := path.Clean("/" + src)
		dir, err := hostPath(c, rootfs, path.Dir(clean))
		if err != nil {
			return err
		}
		full := filepath.Join(dir, path.Base(clean))
		if clean == "/" {
			full = rootfs
		}
		if _, err := os.Lstat(full); err != nil {
			return fmt.Errorf("could not find the file %s in container %s: %w", src, c.Name, errdefs.ErrNotFound)
		}
		tw := tar.NewWriter(w)
		if err := archive.WriteTree(ctx, tw, full, name, archive.TreeOptions{Contents: contents}); err != nil {
			return err
		}
		return tw.Close()
	})
}

// CopyTo extracts the tar stream r into the directory dst of a container.
func (e *Engine) CopyTo(ctx context.Context, ref, dst string, r io.Reader) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	return e.withRootfs(ctx, c, func(rootfs string) error {
		dir, err := hostPath(c, rootfs, dst)
		if err != nil {
			return err
		}
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("could not find the directory %s in container %s: %w", dst, c.Name, errdefs.ErrNotFound)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s in container %s is not a directory: %w", dst, c.Name, errdefs.ErrInvalidArgument)
		}
		if _, err := archive.Apply(ctx, dir, r, archive.Options{Whiteouts: archive.WhiteoutDelete, IgnoreOwner: os.Geteuid() != 0}); err != nil {
			return fmt.Errorf("copy into %s: %w", c.Name, err)
		}
		return nil
	})
}

// Export writes a container's whole file system as a tar stream.
func (e *Engine) Export(ctx context.Context, ref string, w io.Writer) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	return e.withRootfs(ctx, c, func(rootfs string) error {
		tw := tar.NewWriter(w)
		if err := archive.WriteTree(ctx, tw, rootfs, ".", archive.TreeOptions{Contents: true}); err != nil {
			return err
		}
		return tw.Close()
	})
}

// changes lists what the container changed in its file system, and the
// directory its changed content is read from.
func (e *Engine) changes(ctx context.Context, c *Container) ([]archive.Change, string, error) {
	sn := e.images.Snapshots()
	mounts, err := sn.Mounts(ctx, c.Snapshot)
	if err != nil {
		return nil, "", err
	}
	if len(mounts) == 1 && mounts[0].Type == "overlay" {
		var upper string
		var lowers []string
		for _, o := range mounts[0].Options {
			k, v, _ := strings.Cut(o, "=")
			switch k {
			case "upperdir":
				upper = v
			case "lowerdir":
				lowers = strings.Split(v, ":")
			}
		}
		cs, err := archive.OverlayChanges(ctx, upper, &archive.OverlayLower{Dirs: lowers})
		return withoutMountpoints(c, upper, cs), upper, err
	}
	if len(mounts) != 1 || mounts[0].Type != "bind" {
		return nil, "", fmt.Errorf("container %s: unexpected mounts for its file system", c.Name)
	}
	cur := mounts[0].Source
	img, err := e.images.Get(ctx, c.ImageID.String())
	if err != nil {
		return nil, "", err
	}
	if e.images.Driver() == "overlay" {
		// An overlay snapshot with no parent (an image without layers):
		// everything in it is new.
		cs, err := archive.OverlayChanges(ctx, cur, nil)
		return withoutMountpoints(c, cur, cs), cur, err
	}
	key := "diff-" + newID()[:12]
	vm, err := sn.View(ctx, key, img.ChainID.String())
	if err != nil {
		return nil, "", err
	}
	defer sn.Remove(context.WithoutCancel(ctx), key)
	cs, err := archive.CompareChanges(ctx, vm[0].Source, cur)
	return withoutMountpoints(c, cur, cs), cur, err
}

// withoutMountpoints drops the empty files and directories a runtime made
// as mount points (/etc/hosts, /proc, a volume's target, ...): they are
// the engine's doing, not the container's, and neither docker diff nor
// docker commit shows them.
func withoutMountpoints(c *Container, root string, cs []archive.Change) []archive.Change {
	points := map[string]bool{"/etc/hostname": true, "/etc/hosts": true, "/etc/resolv.conf": true, "/dev/init": true}
	for _, m := range defaultMounts() {
		points[m.Destination] = true
	}
	for _, m := range c.Mounts {
		points[m.Destination] = true
	}
	out := cs[:0]
	var dropped []string
	for _, ch := range cs {
		if ch.Kind == archive.ChangeAdd && points[ch.Path] {
			fi, err := os.Lstat(filepath.Join(root, ch.Path))
			if err == nil && (fi.Mode().IsRegular() && fi.Size() == 0 || fi.IsDir() && isEmptyDir(filepath.Join(root, ch.Path))) {
				dropped = append(dropped, ch.Path)
				continue
			}
		}
		out = append(out, ch)
	}
	// A directory that shows as changed only because a mount point was
	// made in it (/etc for /etc/hosts) is not the container's change
	// either; Docker keeps those in an init layer of their own.
	under := func(dir, p string) bool { return strings.HasPrefix(p, dir+"/") }
	// Deepest first, so that /var goes once /var/lib has gone.
	for changed := true; changed; {
		changed = false
		kept := out[:0]
		for _, ch := range out {
			if ch.Kind == archive.ChangeModify {
				holdsPoint, holdsChange := false, false
				for _, d := range dropped {
					holdsPoint = holdsPoint || under(ch.Path, d)
				}
				for _, o := range out {
					holdsChange = holdsChange || under(ch.Path, o.Path)
				}
				if holdsPoint && !holdsChange {
					dropped = append(dropped, ch.Path)
					changed = true
					continue
				}
			}
			kept = append(kept, ch)
		}
		out = kept
	}
	return out
}

func isEmptyDir(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) == 0
}

// Diff lists what a container changed in its file system.
func (e *Engine) Diff(ctx context.Context, ref string) ([]archive.Change, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	cs, _, err := e.changes(ctx, c)
	return cs, err
}

// CommitOptions are `berth commit`'s flags.
type CommitOptions struct {
	Ref     string
	Author  string
	Message string
	Changes []string
	// Pause freezes a running container while its changes are read.
	Pause bool
}

// Commit makes an image of a container's changes on top of its image.
func (e *Engine) Commit(ctx context.Context, ref string, o CommitOptions) (image.Image, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return image.Image{}, err
	}
	if o.Pause && c.State.Status == StatusRunning {
		if err := e.runtime(c).Pause(ctx, c.ID); err == nil {
			defer e.runtime(c).Resume(context.WithoutCancel(ctx), c.ID)
		}
	}
	cs, root, err := e.changes(ctx, c)
	if err != nil {
		return image.Image{}, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.ChangesTar(ctx, pw, cs, root)) }()
	defer pr.Close()
	cmd := strings.Join(append([]string{c.Path}, c.Args...), " ")
	return e.images.Derive(ctx, image.DeriveOptions{
		Base: c.ImageID, Layer: pr, Changes: o.Changes, Author: o.Author, Comment: o.Message, CreatedBy: cmd, Ref: o.Ref,
		Config: func(cfg *dockerspec.DockerOCIImageConfig) {
			cfg.Cmd, cfg.Entrypoint, cfg.Env = c.Config.Cmd, c.Config.Entrypoint, c.Config.Env
			cfg.WorkingDir, cfg.User, cfg.Labels = c.Config.WorkingDir, c.Config.User, c.Config.Labels
			cfg.StopSignal = c.Config.StopSignal
			if c.Config.Volumes != nil {
				cfg.Volumes = c.Config.Volumes
			}
			if c.Config.ExposedPorts != nil {
				cfg.ExposedPorts = c.Config.ExposedPorts
			}
		},
	})
}

// WithRootfs calls fn with the container's root file system mounted (as
// it is while the container runs, or mounted for the call), for callers
// that read or write it in place (a build's COPY).
func (e *Engine) WithRootfs(ctx context.Context, ref string, fn func(rootfs string) error) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	return e.withRootfs(ctx, c, fn)
}

// Layer returns what a container changed, as docker diff lists it, and a
// function that writes changes (those, or some of them) as an
// uncompressed layer tar (what Commit stores), so that a caller can tell
// an empty change from a layer, or leave out its own mount points, before
// it stores anything.
func (e *Engine) Layer(ctx context.Context, ref string) ([]archive.Change, func(w io.Writer, cs []archive.Change) error, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	cs, root, err := e.changes(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	return cs, func(w io.Writer, cs []archive.Change) error { return archive.ChangesTar(ctx, w, cs, root) }, nil
}
