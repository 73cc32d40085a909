package build

import (
	"context"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/berthproject/berth/container"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/sys/user"
)

// copyArgs are a COPY's or an ADD's flags and paths, expanded.
type copyArgs struct {
	add, unpack  bool
	from         string
	chown, chmod string
	sd           instructions.SourcesAndDest
	excludes     []string
}

// isRemote says whether an ADD source is a URL or a git repository.
func isRemote(src string) bool {
	for _, p := range []string{"http://", "https://", "git@", "git://", "ssh://"} {
		if strings.HasPrefix(src, p) {
			return true
		}
	}
	return false
}

// copyStep runs a COPY or ADD: the files are written into the root file
// system of a container made on the stage's image (never started), and
// what changed is the step's layer.
func (r *run) copyStep(ctx context.Context, st *stage, a copyArgs) (bool, error) {
	word := "COPY"
	if a.add {
		word = "ADD"
	}
	if len(a.excludes) > 0 {
		return false, fmt.Errorf("%s --exclude is not supported by berth build: %w", word, errdefs.ErrNotImplemented)
	}
	for _, s := range a.sd.SourcePaths {
		if isRemote(s) {
			if a.add {
				return false, fmt.Errorf("ADD %s: berth build does not fetch URLs or git repositories (this machine may have no network, and the result would not be reproducible): download it into the build context and COPY it: %w", s, errdefs.ErrNotImplemented)
			}
			return false, fmt.Errorf("COPY %s: a URL is not a file of the build context; ADD fetches URLs, COPY does not: %w", s, errdefs.ErrInvalidArgument)
		}
	}
	var mode *os.FileMode
	if a.chmod != "" {
		v, err := strconv.ParseUint(a.chmod, 8, 32)
		if err != nil || v > 0o7777 {
			return false, fmt.Errorf("%s --chmod=%s: want an octal mode such as 0755: %w", word, a.chmod, errdefs.ErrInvalidArgument)
		}
		m := os.FileMode(v)
		mode = &m
	}
	dest := absPath(st.cfg.Config.WorkingDir, a.sd.DestPath)
	if a.sd.DestPath == "." || a.sd.DestPath == "" || strings.HasSuffix(a.sd.DestPath, "/") || strings.HasSuffix(a.sd.DestPath, "/.") {
		if !strings.HasSuffix(dest, "/") {
			dest += "/"
		}
	}

	msg := word
	if a.chown != "" {
		msg += " --chown=" + a.chown
	}
	if a.chmod != "" {
		msg += " --chmod=" + a.chmod
	}
	for _, s := range a.sd.SourcePaths {
		msg += " " + s
	}
	for _, s := range a.sd.SourceContents {
		msg += " <<" + s.Path
	}
	msg += " " + a.sd.DestPath

	spec := CopySpec{Sources: a.sd.SourcePaths, Dest: dest, Mode: mode, Unpack: a.add && a.unpack}
	for _, s := range a.sd.SourceContents {
		spec.Inline = append(spec.Inline, InlineFile{Name: s.Path, Data: s.Data})
	}
	parts := []string{st.parentKey(), msg, "dest=" + dest, "unpack=" + strconv.FormatBool(spec.Unpack)}
	for _, f := range spec.Inline {
		parts = append(parts, "inline:"+f.Name+":"+f.Data)
	}
	var from image.Image
	if strings.Contains(a.from, "$") {
		return false, fmt.Errorf("%s --from=%s: variable expansion is not supported for --from; define a stage with FROM using an ARG from the global scope instead: %w", word, a.from, errdefs.ErrInvalidArgument)
	}
	if a.from != "" {
		img, err := r.fromImage(ctx, a.from)
		if err != nil {
			return false, err
		}
		from = img
		parts = append(parts, "from="+img.ID.String())
	} else {
		spec.SrcRoot, spec.Ignore, spec.IgnoreDir, spec.FromContext = r.o.Context.Dir, r.o.Context.Excluded, r.o.Context.SkipDir, true
	}
	if from.ID == "" && len(spec.Sources) > 0 {
		d, err := SourceDigest(ctx, spec)
		if err != nil {
			return false, err
		}
		parts = append(parts, "sources="+d.String())
	}
	key := stepKey(parts...)
	if hit, ok, err := r.lookup(ctx, key); err != nil || ok {
		if ok {
			return true, r.adopt(ctx, st, hit, key)
		}
		return false, err
	}
	img, err := r.fsStep(ctx, st, msg, func(rootfs string) error {
		if a.chown != "" {
			uid, gid, err := resolveChown(rootfs, a.chown)
			if err != nil {
				return fmt.Errorf("%s --chown=%s: %w", word, a.chown, err)
			}
			spec.UID, spec.GID = &uid, &gid
		}
		spec.DestRoot = rootfs
		if from.ID == "" {
			return Copy(ctx, spec)
		}
		return r.helperRootfs(ctx, from.ID, func(src string) error {
			spec.SrcRoot = src
			return Copy(ctx, spec)
		})
	})
	if err != nil {
		return false, err
	}
	return false, r.record(ctx, st, img, key)
}

// fsStep changes the stage's file system with fn (given the mounted root
// file system of a container on the stage's image) and commits the change.
func (r *run) fsStep(ctx context.Context, st *stage, msg string, fn func(rootfs string) error) (image.Image, error) {
	empty := ""
	ctr, err := r.b.Engine.Create(ctx, container.CreateOptions{
		Image: st.img.ID.String(), Entrypoint: &empty, Cmd: []string{"/"}, Network: "none",
		Labels: r.labels("copy"), NoImageVolumes: true,
	})
	if err != nil {
		return image.Image{}, err
	}
	defer r.b.Engine.Remove(context.WithoutCancel(ctx), ctr.ID, true, true)
	if err := r.b.Engine.WithRootfs(ctx, ctr.ID, fn); err != nil {
		return image.Image{}, err
	}
	return r.commit(ctx, st, ctr.ID, msg, nil)
}

// resolveChown reads --chown's USER[:GROUP] against the target's
// /etc/passwd and /etc/group; a user without a group takes the user's
// numeric ID as its group, as Docker documents.
func resolveChown(rootfs, spec string) (int, int, error) {
	_, g, hasGroup := strings.Cut(spec, ":")
	passwd, err := securejoin.SecureJoin(rootfs, "/etc/passwd")
	if err != nil {
		return 0, 0, err
	}
	group, err := securejoin.SecureJoin(rootfs, "/etc/group")
	if err != nil {
		return 0, 0, err
	}
	eu, err := user.GetExecUserPath(spec, &user.ExecUser{}, passwd, group)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	uid, gid := eu.Uid, eu.Gid
	if !hasGroup || g == "" {
		gid = uid
	}
	return uid, gid, nil
}

// workdirStep sets the working directory and, as BuildKit does, makes it
// (owned by the stage's USER) when it is not there.
func (r *run) workdirStep(ctx context.Context, st *stage, c *instructions.WorkdirCommand) (bool, error) {
	wd := path.Clean(absPath(st.cfg.Config.WorkingDir, c.Path))
	st.cfg.Config.WorkingDir = wd
	msg := "WORKDIR " + wd
	if wd == "/" {
		return r.configStep(ctx, st, msg, nil)
	}
	key := stepKey(st.parentKey(), msg, "user="+st.cfg.Config.User)
	if hit, ok, err := r.lookup(ctx, key); err != nil || ok {
		if ok {
			return true, r.adopt(ctx, st, hit, key)
		}
		return false, err
	}
	img, err := r.fsStep(ctx, st, msg, func(rootfs string) error {
		p, err := securejoin.SecureJoin(rootfs, wd)
		if err != nil {
			return err
		}
		if _, err := os.Lstat(p); err == nil {
			return nil
		}
		uid, gid := 0, 0
		if u := st.cfg.Config.User; u != "" {
			if uid, gid, err = resolveUser(rootfs, u); err != nil {
				return fmt.Errorf("USER %s: %w", u, err)
			}
		}
		return mkdirAllOwned(rootfs, wd, uid, gid)
	})
	if err != nil {
		return false, err
	}
	return false, r.record(ctx, st, img, key)
}

// resolveUser reads USER as the runtime would (a user's own group when none
// is given).
func resolveUser(rootfs, spec string) (int, int, error) {
	passwd, _ := securejoin.SecureJoin(rootfs, "/etc/passwd")
	group, _ := securejoin.SecureJoin(rootfs, "/etc/group")
	eu, err := user.GetExecUserPath(spec, &user.ExecUser{}, passwd, group)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	return eu.Uid, eu.Gid, nil
}

// mkdirAllOwned makes dir and its missing parents inside rootfs, each
// resolved within it, mode 0755 and owned by uid:gid.
func mkdirAllOwned(rootfs, dir string, uid, gid int) error {
	var missing []string
	for d := dir; d != "/"; d = path.Dir(d) {
		p, err := securejoin.SecureJoin(rootfs, d)
		if err != nil {
			return err
		}
		if _, err := os.Lstat(p); err == nil {
			break
		}
		missing = append([]string{d}, missing...)
	}
	for _, d := range missing {
		p, err := securejoin.SecureJoin(rootfs, d)
		if err != nil {
			return err
		}
		if err := os.Mkdir(p, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil && os.Geteuid() == 0 {
			return err
		}
	}
	return nil
}
