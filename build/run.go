package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/container"
	"github.com/berthproject/berth/container/monitor"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// RunError is a RUN whose command failed, with the end of what it printed.
type RunError struct {
	Code int
	Tail string
}

func (e *RunError) Error() string {
	// The output is shown apart (Tail): an error is one line.
	return fmt.Sprintf("the command exited with code %d", e.Code)
}

// runArgs is the command a RUN runs, as BuildKit makes it: the shell
// form through the stage's SHELL, heredocs as scripts.
func runArgs(cfg *dockerspec.DockerOCIImageConfig, c *instructions.RunCommand) ([]string, error) {
	args := c.CmdLine
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return nil, fmt.Errorf("a heredoc RUN must be in shell form: %w", errdefs.ErrInvalidArgument)
		}
		if h := parser.MustParseHeredoc(args[0]); h != nil {
			data := c.Files[0].Data
			if c.Files[0].Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				// A script with its own interpreter: run as a file
				// (written by runStep under /dev/pipes, as BuildKit).
				args = []string{"/dev/pipes/" + c.Files[0].Name}
			} else {
				args = []string{data}
			}
		} else {
			full := args[0]
			for _, f := range c.Files {
				full += "\n" + f.Data + f.Name
			}
			args = []string{full}
		}
	}
	if c.PrependShell {
		sh := cfg.Shell
		if len(sh) == 0 {
			sh = []string{"/bin/sh", "-c"}
		}
		args = append(append([]string(nil), sh...), strings.Join(args, " "))
	}
	return args, nil
}

// runHistory is BuildKit's history line for a RUN: the build arguments
// in use (|N K=V ...) before the command.
func runHistory(st *stage, args []string) string {
	var pre []string
	for _, a := range st.args {
		v, ok := lookupEnv(st.cfg.Config.Env, a.Key)
		if !ok {
			v = a.ValueString()
		}
		pre = append(pre, a.Key+"="+v)
	}
	if len(pre) > 0 {
		pre = append([]string{"|" + strconv.Itoa(len(pre))}, pre...)
	}
	return "RUN " + strings.Join(append(pre, args...), " ")
}

// runStep runs a RUN as a container on the stage's image and commits what
// it changed.
func (r *run) runStep(ctx context.Context, st *stage, c *instructions.RunCommand) (bool, error) {
	args, err := runArgs(&st.cfg.Config, c)
	if err != nil {
		return false, err
	}
	network := r.o.Network
	if n := string(instructions.GetNetwork(c)); n != "" {
		switch n {
		case "host":
			// The Dockerfile cannot widen what the builder allowed (as
			// BuildKit's --allow network.host).
			if r.o.Network != "host" {
				return false, fmt.Errorf("RUN --network=host needs the build run with --network host: %w", errdefs.ErrPermissionDenied)
			}
			network = n
		case "none":
			network = n
		case "default":
		default:
			return false, fmt.Errorf("RUN --network=%s: berth build has none and host: %w", n, errdefs.ErrInvalidArgument)
		}
	}
	if s := instructions.GetSecurity(c); s == instructions.SecurityInsecure {
		return false, fmt.Errorf("RUN --security=insecure is not allowed: %w", errdefs.ErrInvalidArgument)
	}
	mounts, keyParts, err := r.runMounts(ctx, st, instructions.GetMounts(c))
	if err != nil {
		return false, err
	}
	msg := runHistory(st, args)
	parts := append([]string{st.parentKey(), msg, "network=" + network, "user=" + st.cfg.Config.User, "workdir=" + st.cfg.Config.WorkingDir}, keyParts...)
	parts = append(parts, st.runEnv()...)
	for _, f := range c.Files {
		parts = append(parts, "heredoc:"+f.Name+":"+f.Data)
	}
	key := stepKey(parts...)
	if hit, ok, err := r.lookup(ctx, key); err != nil || ok {
		if ok {
			return true, r.adopt(ctx, st, hit, key)
		}
		return false, err
	}

	// A shebang heredoc is run as a file: it goes in a directory of its
	// own, bind-mounted read-only, so that it is in no layer.
	if len(c.Files) > 0 && strings.HasPrefix(args[len(args)-1], "/dev/pipes/") {
		dir, err := os.MkdirTemp("", "berth-heredoc-")
		if err != nil {
			return false, err
		}
		defer os.RemoveAll(dir)
		data := c.Files[0].Data
		if c.Files[0].Chomp {
			data = parser.ChompHeredocContent(data)
		}
		if err := os.WriteFile(filepath.Join(dir, c.Files[0].Name), []byte(data), 0o755); err != nil {
			return false, err
		}
		mounts = append(mounts, runMount{opt: "type=bind,source=" + dir + ",target=/dev/pipes,readonly", target: "/dev/pipes"})
	}

	img, err := r.withMountSources(ctx, mounts, func(opts []string, tmpfs []string, secretEnv []string) (image.Image, error) {
		empty := ""
		o := container.CreateOptions{
			Image: st.img.ID.String(), Cmd: args, Entrypoint: &empty,
			Env: append(append(st.runEnv(), r.proxyEnv(st)...), secretEnv...), User: st.cfg.Config.User, WorkingDir: st.cfg.Config.WorkingDir,
			Network: network, Mounts: opts, Tmpfs: tmpfs, Attached: true,
			Labels: r.labels("run"), NoImageVolumes: true,
		}
		ctr, err := r.b.Engine.Create(ctx, o)
		if err != nil {
			return image.Image{}, err
		}
		defer r.b.Engine.Remove(context.WithoutCancel(ctx), ctr.ID, true, true)
		code, tail, err := r.attachRun(ctx, ctr)
		if err != nil {
			return image.Image{}, err
		}
		if code != 0 {
			return image.Image{}, &RunError{Code: code, Tail: tail}
		}
		// The runtime's own mount points too: on a base without /etc, the
		// /etc it makes for /etc/hosts is not the step's.
		targets := []string{"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}
		for _, m := range mounts {
			targets = append(targets, m.target)
		}
		return r.commit(ctx, st, ctr.ID, msg, targets)
	})
	if err != nil {
		return false, err
	}
	return false, r.record(ctx, st, img, key)
}

// attachRun starts the container attached and returns its exit code and
// the last lines it printed (for the error of a failed step).
func (r *run) attachRun(ctx context.Context, ctr *container.Container) (int, string, error) {
	e := r.b.Engine
	c, err := e.Start(ctx, ctr.ID, container.StartOptions{Attach: true})
	if err != nil {
		return -1, "", err
	}
	cl, err := e.Attach(ctx, c)
	if err != nil {
		return -1, "", err
	}
	defer cl.Close()
	cl.TakeCleanup()
	tail := &tailBuffer{max: 4096}
	out := io.Writer(tail)
	if r.o.Output != nil {
		out = io.MultiWriter(r.o.Output, tail)
	}
	if err := cl.Start(); err != nil {
		return -1, "", err
	}
	// An interrupted build stops its step: the container is killed, so
	// that Receive returns and the deferred removals run.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
			e.Kill(context.WithoutCancel(ctx), c.ID, unix.SIGKILL)
		case <-stop:
		}
	}()
	code, err := cl.Receive(out, out, nil)
	var se *monitor.StartError
	if errors.As(err, &se) {
		return -1, tail.String(), errors.New(se.Msg)
	}
	if errors.Is(err, monitor.ErrDetached) {
		code, err = e.Wait(context.WithoutCancel(ctx), c.ID)
	} else if err == nil && cl.CleanupIsYours() {
		if e.Cleanup(context.WithoutCancel(ctx), c.ID) == nil {
			cl.CleanedUp()
		}
	}
	if ctx.Err() != nil {
		return -1, tail.String(), ctx.Err()
	}
	if err != nil {
		return -1, tail.String(), err
	}
	return code, tail.String(), nil
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return strings.TrimRight(string(t.buf), "\n") }

// commit stores what the container changed as the stage's next image:
// with a layer, or as an empty layer's history entry when nothing
// changed (as BuildKit's exporter does). Mount targets the build made
// (for secrets, caches, heredocs) are not the step's change.
func (r *run) commit(ctx context.Context, st *stage, id, msg string, mountTargets []string) (image.Image, error) {
	// BuildKit marks the steps that run or copy (not WORKDIR's mkdir).
	if !strings.HasPrefix(msg, "WORKDIR ") {
		msg += " # buildkit"
	}
	changes, write, err := r.b.Engine.Layer(ctx, id)
	if err != nil {
		return image.Image{}, err
	}
	changes = withoutMountParents(changes, mountTargets)
	cfg := st.cfg.Config
	o := image.DeriveOptions{
		Base: st.img.ID, CreatedBy: msg, Comment: historyComment, Created: r.o.SourceDateEpoch, Author: st.cfg.Author,
		Config: func(c *dockerspec.DockerOCIImageConfig) { *c = cfg },
	}
	if len(changes) == 0 {
		return r.b.Images.Derive(ctx, o)
	}
	pr, pw := io.Pipe()
	go func() {
		w := io.Writer(pw)
		var cl *clampWriter
		if r.o.SourceDateEpoch != nil {
			cl = newClampWriter(pw, *r.o.SourceDateEpoch)
			w = cl
		}
		err := write(w, changes)
		if err == nil && cl != nil {
			err = cl.Close()
		}
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	o.Layer = pr
	return r.b.Images.Derive(ctx, o)
}

// withoutMountParents drops the directories a build mount made (the
// parents of /run/secrets/x, a cache's /var/cache) when nothing else
// changed in them, as BuildKit's mount stub cleaner does. A directory that
// was there before stays: the step may have changed it.
func withoutMountParents(cs []archive.Change, targets []string) []archive.Change {
	if len(targets) == 0 {
		return cs
	}
	made := map[string]bool{}
	for _, t := range targets {
		for d := path.Dir(t); d != "/" && d != "."; d = path.Dir(d) {
			made[d] = true
		}
		made[t] = true
	}
	for changed := true; changed; {
		changed = false
		var out []archive.Change
		for _, c := range cs {
			if made[c.Path] && c.Kind == archive.ChangeAdd {
				holds := false
				for _, o := range cs {
					if strings.HasPrefix(o.Path, c.Path+"/") {
						holds = true
						break
					}
				}
				if !holds {
					changed = true
					delete(made, c.Path)
					continue
				}
			}
			out = append(out, c)
		}
		cs = out
	}
	return cs
}

// proxyArgs are the build arguments every RUN sees without an ARG, and
// that stay out of the history and the cache key (BuildKit's and
// Docker's predefined arguments).
var proxyArgs = []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}

// proxyEnv is the proxy arguments given and not declared by the stage.
func (r *run) proxyEnv(st *stage) []string {
	var out []string
	for _, k := range proxyArgs {
		v, ok := r.o.BuildArgs[k]
		if !ok {
			continue
		}
		declared := false
		for _, a := range st.args {
			declared = declared || a.Key == k
		}
		if _, set := lookupEnv(st.cfg.Config.Env, k); !declared && !set {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// runMount is one --mount, as an engine --mount (opt) or tmpfs, with what
// must be set up first.
type runMount struct {
	opt    string
	tmpfs  string
	target string
	// secret is read (env, the variable it goes in) or copied (mount,
	// its mode and owner) only when the step runs: a cached step reads
	// no secret.
	secret      *Secret
	secretEnv   string
	secretMount *instructions.Mount
	// from is an image whose root file system is the bind source, at
	// source inside it.
	from   digest.Digest
	source string
	rw     bool
	// ctxCopy: the bind's source (source, in the context) is copied for
	// the step: a writable bind's writes must go nowhere, and
	// .dockerignore hides from a bind what it hides from COPY.
	ctxCopy bool
}

// runMounts turns RUN --mount flags into engine mounts and the parts of
// the step's cache key they add (a bind mount's content, a cache's id).
func (r *run) runMounts(ctx context.Context, st *stage, ms []*instructions.Mount) ([]runMount, []string, error) {
	var out []runMount
	var key []string
	for _, m := range ms {
		target := m.Target
		if target != "" {
			target = absPath(st.cfg.Config.WorkingDir, target)
		}
		switch m.Type {
		case instructions.MountTypeSecret:
			id := m.CacheID
			if id == "" {
				id = path.Base(m.Target)
			}
			if target == "" && m.Env == nil {
				target = "/run/secrets/" + id
			}
			src, ok := r.o.Secrets[id]
			if !ok {
				if m.Required {
					return nil, nil, fmt.Errorf("RUN --mount=type=secret,id=%s: no such secret was given (--secret id=%s,src=FILE): %w", id, id, errdefs.ErrNotFound)
				}
				continue
			}
			if m.Env != nil {
				name := *m.Env
				if name == "" {
					name = id
				}
				out = append(out, runMount{secret: &src, secretEnv: name})
				key = append(key, "secret="+id+"@$"+name)
				if target == "" {
					continue
				}
			}
			out = append(out, runMount{secret: &src, secretMount: m, target: target})
			key = append(key, "secret="+id+"@"+target)
		case instructions.MountTypeCache:
			id := m.CacheID
			if id == "" {
				id = target
			}
			dir := filepath.Join(r.b.Images.Root(), "build", "mounts", stepKey("cache", id).Encoded()[:32])
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, nil, err
			}
			if m.UID != nil || m.GID != nil {
				uid, gid := -1, -1
				if m.UID != nil {
					uid = int(*m.UID)
				}
				if m.GID != nil {
					gid = int(*m.GID)
				}
				os.Lchown(dir, uid, gid)
			}
			if m.Mode != nil {
				os.Chmod(dir, os.FileMode(*m.Mode))
			}
			out = append(out, runMount{opt: "type=bind,source=" + dir + ",target=" + target, target: target})
			// A cache's content is not an input: BuildKit keys on the id.
			key = append(key, "cache="+id+"@"+target)
		case instructions.MountTypeTmpfs:
			t := target
			if m.SizeLimit > 0 {
				t += ":size=" + strconv.FormatInt(m.SizeLimit, 10)
			}
			out = append(out, runMount{tmpfs: t, target: target})
			key = append(key, "tmpfs="+t)
		case instructions.MountTypeBind:
			rm := runMount{target: target, rw: !m.ReadOnly, source: m.Source}
			if m.From == "" {
				src, err := securejoin.SecureJoin(r.o.Context.Dir, m.Source)
				if err != nil {
					return nil, nil, err
				}
				fi, err := os.Stat(src)
				if err != nil || r.o.Context.Excluded(strings.TrimPrefix(path.Clean("/"+m.Source), "/")) {
					return nil, nil, fmt.Errorf("RUN --mount=type=bind,source=%s: not in the build context (or excluded by .dockerignore): %w", m.Source, errdefs.ErrNotFound)
				}
				d, err := SourceDigest(ctx, CopySpec{SrcRoot: r.o.Context.Dir, Ignore: r.o.Context.Excluded, Sources: []string{orDot(m.Source)}, FromContext: true})
				if err != nil {
					return nil, nil, err
				}
				key = append(key, "bind="+target+"@"+d.String()+"/rw="+strconv.FormatBool(rm.rw))
				if rm.rw || (fi.IsDir() && r.o.Context.IgnoreFile != "") {
					rm.ctxCopy = true
				} else {
					rm.opt = "type=bind,source=" + src + ",target=" + target + ",readonly,bind-recursive=readonly"
				}
			} else {
				img, err := r.fromImage(ctx, m.From)
				if err != nil {
					return nil, nil, err
				}
				rm.from = img.ID
				key = append(key, "bind="+target+"@"+img.ID.String()+":"+m.Source+"/rw="+strconv.FormatBool(rm.rw))
			}
			out = append(out, rm)
		case instructions.MountTypeSSH:
			return nil, nil, fmt.Errorf("RUN --mount=type=ssh is not supported by berth build: %w", errdefs.ErrNotImplemented)
		default:
			return nil, nil, fmt.Errorf("RUN --mount=type=%s: unknown mount type: %w", m.Type, errdefs.ErrInvalidArgument)
		}
	}
	sort.Strings(key)
	return out, key, nil
}

// secretFile copies a secret for one RUN; the build's cleanup removes it.
func (r *run) secretFile(src Secret, m *instructions.Mount) (string, error) {
	b, err := readSecret(src)
	if err != nil {
		return "", err
	}
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, secretDirPrefix+r.token+"-")
	if err != nil {
		return "", err
	}
	r.tmpDirs = append(r.tmpDirs, dir)
	mode := os.FileMode(0o400)
	if m.Mode != nil {
		mode = os.FileMode(*m.Mode) & os.ModePerm
	}
	p := filepath.Join(dir, "secret")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return "", err
	}
	uid, gid := 0, 0
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	if err := os.Lchown(p, uid, gid); err != nil && os.Geteuid() == 0 {
		return "", err
	}
	if err := os.Chmod(p, mode); err != nil {
		return "", err
	}
	// The directory is only the way to the file for the runtime (root).
	os.Chmod(dir, 0o711)
	return p, nil
}

func orDot(s string) string {
	if s == "" {
		return "."
	}
	return s
}

// withMountSources sets up the mounts that need a source prepared (an
// image's root file system, a writable copy of context files) for fn.
func (r *run) withMountSources(ctx context.Context, ms []runMount, fn func(opts, tmpfs, env []string) (image.Image, error)) (image.Image, error) {
	var opts, tmpfs, env []string
	var pending []runMount
	for _, m := range ms {
		switch {
		case m.secret != nil && m.secretEnv != "":
			b, err := readSecret(*m.secret)
			if err != nil {
				return image.Image{}, err
			}
			env = append(env, m.secretEnv+"="+string(b))
		case m.secret != nil:
			// A private copy with the mount's mode (0400 by default, as
			// BuildKit) and owner, on tmpfs where there is one,
			// bind-mounted read-only: it is never in the container's
			// upper directory, so never in a layer.
			f, err := r.secretFile(*m.secret, m.secretMount)
			if err != nil {
				return image.Image{}, err
			}
			opts = append(opts, "type=bind,source="+f+",target="+m.target+",readonly")
		case m.tmpfs != "":
			tmpfs = append(tmpfs, m.tmpfs)
		case m.opt != "":
			opts = append(opts, m.opt)
		default:
			pending = append(pending, m)
		}
	}
	var next func(i int) (image.Image, error)
	next = func(i int) (image.Image, error) {
		if i == len(pending) {
			return fn(opts, tmpfs, env)
		}
		m := pending[i]
		if m.ctxCopy {
			dir, err := os.MkdirTemp("", "berth-bind-")
			if err != nil {
				return image.Image{}, err
			}
			defer os.RemoveAll(dir)
			if err := Copy(ctx, CopySpec{SrcRoot: r.o.Context.Dir, Ignore: r.o.Context.Excluded, IgnoreDir: r.o.Context.SkipDir,
				Sources: []string{orDot(m.source)}, FromContext: true, DestRoot: dir, Dest: "/"}); err != nil {
				return image.Image{}, err
			}
			src := dir
			if fi, err := os.Stat(filepath.Join(r.o.Context.Dir, m.source)); err == nil && !fi.IsDir() {
				src = filepath.Join(dir, filepath.Base(m.source))
			} else if err == nil {
				// The copy's root is the source directory: its mode, not
				// MkdirTemp's 0700, so that a non-root USER reads it.
				os.Chmod(dir, fi.Mode().Perm())
			}
			o := "type=bind,source=" + src + ",target=" + m.target
			if !m.rw {
				o += ",readonly"
			}
			opts = append(opts, o)
			return next(i + 1)
		}
		// An image's root file system, through a container made for the
		// purpose: its writable layer takes a rw mount's writes, which
		// go with it.
		var res image.Image
		err := r.helperRootfs(ctx, m.from, func(rootfs string) error {
			src, err := securejoin.SecureJoin(rootfs, m.source)
			if err != nil {
				return err
			}
			o := "type=bind,source=" + src + ",target=" + m.target
			if !m.rw {
				o += ",readonly"
			}
			opts = append(opts, o)
			res, err = next(i + 1)
			return err
		})
		return res, err
	}
	return next(0)
}

// helperRootfs calls fn with the root file system of img mounted, through
// a container that is never started.
func (r *run) helperRootfs(ctx context.Context, img digest.Digest, fn func(rootfs string) error) error {
	empty := ""
	ctr, err := r.b.Engine.Create(ctx, container.CreateOptions{
		Image: img.String(), Entrypoint: &empty, Cmd: []string{"/"}, Network: "none",
		Labels: r.labels("helper"), NoImageVolumes: true,
	})
	if err != nil {
		return err
	}
	defer r.b.Engine.Remove(context.WithoutCancel(ctx), ctr.ID, true, true)
	return r.b.Engine.WithRootfs(ctx, ctr.ID, fn)
}

// fromImage is what a --from names: a stage of this build (built before)
// or an image.
func (r *run) fromImage(ctx context.Context, ref string) (image.Image, error) {
	if j := r.df.stageIndexAny(ref); j >= 0 {
		st := r.stages[j]
		if st == nil {
			return image.Image{}, fmt.Errorf("stage %s is not built yet: %w", ref, errdefs.ErrFailedPrecondition)
		}
		return st.img, nil
	}
	return r.sourceImage(ctx, ref)
}
