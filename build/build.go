package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berthproject/berth/container"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/internal/flock"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
)

// ContainerLabel marks the containers a build makes for its steps (its
// value says what for: run, copy, helper), so that listings can leave
// them out.
const ContainerLabel = "dev.berth.build"

// ownerLabel names the build a step container belongs to: a build that
// dies (SIGKILL) leaves its containers, which the next build removes once
// the owner's lock under <root>/build/builders is free.
const ownerLabel = "dev.berth.build.owner"

// secretDirPrefix names the private directories of secrets' copies
// (followed by the owner's token).
const secretDirPrefix = "berth-secret-"

// PullPolicy says when a FROM image is pulled: never, when missing, or
// always (as podman build --pull=).
type PullPolicy string

const (
	PullMissing PullPolicy = "missing"
	PullNever   PullPolicy = "never"
	PullAlways  PullPolicy = "always"
)

// ParsePullPolicy reads --pull's value (true and false as Docker's).
func ParsePullPolicy(s string) (PullPolicy, error) {
	switch strings.ToLower(s) {
	case "", "missing", "ifmissing", "false":
		return PullMissing, nil
	case "never":
		return PullNever, nil
	case "always", "true":
		return PullAlways, nil
	}
	return "", fmt.Errorf("--pull %q: want never, missing or always: %w", s, errdefs.ErrInvalidArgument)
}

// Options are one build's inputs.
type Options struct {
	// Dockerfile is the Dockerfile's text; DockerfileName names it in
	// errors and history ("Dockerfile").
	Dockerfile     []byte
	DockerfileName string
	// Context is the build context.
	Context *Context
	// Tags name the result (none: the image is known by its ID).
	Tags []string
	// Target is the stage to build (default: the last).
	Target    string
	NoCache   bool
	Pull      PullPolicy
	BuildArgs map[string]string
	// Labels are added to the result's config (--label).
	Labels map[string]string
	// Network is RUN's network: "none" (the default) or "host".
	Network string
	// Secrets are --secret id → where the secret is.
	Secrets map[string]Secret
	// SourceDateEpoch, when set, fixes every time in the image.
	SourceDateEpoch *time.Time
	// Progress receives the steps as they go (nil: nothing).
	Progress func(Event)
	// Output receives what RUN steps print.
	Output io.Writer
}

// Event is a step starting (Done false) or finished.
type Event struct {
	// Stage is the stage's name or number; Step and Steps count the
	// steps of the whole build.
	Stage       string
	Step, Steps int
	Instruction string
	Done        bool
	Cached      bool
	Duration    time.Duration
	Err         error
	// Image is the step's result (when Done without Err).
	Image digest.Digest
}

// Result is what a build made.
type Result struct {
	Image image.Image
	// Base is the image the target stage is built on ("" for scratch or a
	// stage of this build with no stored image of its own): its layers
	// are not this build's.
	Base image.Image
	// BaseRef is the target stage's FROM image as the Dockerfile names
	// it (after expansion); "" for scratch.
	BaseRef string
	// Ran is how many steps ran (were not taken from the cache).
	Ran, Cached int
	// UnusedArgs are the --build-arg names no ARG of a built stage (or
	// before FROM) declared, sorted: Docker warns about them.
	UnusedArgs []string
}

// Builder builds images into a store with an engine.
type Builder struct {
	Images *image.Store
	Engine *container.Engine
	// Pull fetches a FROM image that is not stored (or always, by
	// policy); nil: such an image is an error.
	Pull func(ctx context.Context, ref string) (image.Image, error)
	// Check, when set, decides whether an image may be built on (the
	// trust policy); it is called for every image the build reads.
	Check func(ctx context.Context, ref string, img image.Image) error
}

// StepError is a step that failed, with where it is.
type StepError struct {
	File        string
	Line        int
	Instruction string
	Err         error
	// Code is a RUN's exit code (0 when the step failed otherwise).
	Code int
}

func (e *StepError) Error() string {
	return fmt.Sprintf("%s:%d: %s: %v", e.File, e.Line, e.Instruction, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Build runs the build. The tags are given to the result only when every
// step succeeded: a failed build leaves the images the tags name as they
// were.
func (b *Builder) Build(ctx context.Context, o Options) (*Result, error) {
	if o.DockerfileName == "" {
		o.DockerfileName = "Dockerfile"
	}
	if o.Network == "" {
		o.Network = "none"
	}
	if o.Network != "none" && o.Network != "host" {
		return nil, fmt.Errorf("--network %q: berth build has none and host: %w", o.Network, errdefs.ErrInvalidArgument)
	}
	if o.Pull == "" {
		o.Pull = PullMissing
	}
	for _, t := range o.Tags {
		if _, err := image.ParseReference(t); err != nil {
			return nil, fmt.Errorf("tag %q: %w", t, err)
		}
	}
	if o.SourceDateEpoch == nil {
		if v, ok := o.BuildArgs["SOURCE_DATE_EPOCH"]; ok {
			t, err := ParseEpoch(v)
			if err != nil {
				return nil, err
			}
			o.SourceDateEpoch = &t
		}
	}
	df, err := parseDockerfile(o.DockerfileName, o.Dockerfile)
	if err != nil {
		return nil, err
	}
	args := autoArgs()
	fa, err := df.fromArgs(o.BuildArgs)
	if err != nil {
		return nil, err
	}
	for k, v := range fa {
		args[k] = v
	}
	p, target, err := df.planStages(o.Target, args)
	if err != nil {
		return nil, err
	}
	release, err := b.Images.Writing(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	cache, err := openCache(filepath.Join(b.Images.Root(), "build"))
	if err != nil {
		return nil, err
	}
	token, unlock, err := b.own(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r := &run{b: b, o: o, df: df, plan: p, cache: cache, fromArgs: args, stages: make([]*stage, len(df.stages)), token: token}
	for _, i := range p.order {
		r.steps += len(df.stages[i].Commands) + 1
	}
	defer r.cleanup()
	for _, i := range p.order {
		if err := r.buildStage(ctx, i); err != nil {
			return nil, err
		}
	}
	st := r.stages[target]
	final := st.img
	if final.ID == "" || st.dirty || len(o.Labels) > 0 {
		// A stage with no step of its own (FROM x alone) or --label: the
		// result is a new config on the last step's image.
		labels := o.Labels
		created := st.created()
		final, err = b.Images.Derive(ctx, image.DeriveOptions{
			Base: st.img.ID, NoHistory: true, Created: &created,
			Config: func(c *dockerspec.DockerOCIImageConfig) {
				*c = st.cfg.Config
				if len(labels) > 0 && c.Labels == nil {
					c.Labels = map[string]string{}
				}
				for k, v := range labels {
					c.Labels[k] = v
				}
			},
		})
		if err != nil {
			return nil, err
		}
	}
	for _, t := range o.Tags {
		if err := b.Images.Tag(ctx, final.ID.String(), t); err != nil {
			return nil, err
		}
	}
	if final, err = b.Images.Get(ctx, final.ID.String()); err != nil {
		return nil, err
	}
	// Entries of images removed since (rmi, prune) go; a failure here
	// costs nothing but a larger file.
	cache.compact(func() (map[digest.Digest]bool, error) {
		imgs, err := b.Images.List(ctx)
		if err != nil {
			return nil, err
		}
		live := map[digest.Digest]bool{}
		for _, img := range imgs {
			live[img.ID] = true
		}
		return live, nil
	})
	used := map[string]bool{"SOURCE_DATE_EPOCH": true}
	for _, k := range proxyArgs {
		used[k] = true
	}
	for _, a := range df.metaArgs {
		for _, kv := range a.Args {
			used[kv.Key] = true
		}
	}
	for _, s := range r.stages {
		if s != nil {
			for _, a := range s.args {
				used[a.Key] = true
			}
		}
	}
	var unused []string
	for k := range o.BuildArgs {
		if !used[k] {
			unused = append(unused, k)
		}
	}
	sort.Strings(unused)
	return &Result{Image: final, Base: st.base, BaseRef: st.baseRef, Ran: r.ran, Cached: r.cached, UnusedArgs: unused}, nil
}

// ParseEpoch reads SOURCE_DATE_EPOCH (seconds since 1970).
func ParseEpoch(v string) (time.Time, error) {
	var sec int64
	if _, err := fmt.Sscan(v, &sec); err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970: %w", v, errdefs.ErrInvalidArgument)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// autoArgs are the platform arguments BuildKit defines for every build.
func autoArgs() map[string]string {
	p := image.HostPlatform()
	ps := image.PlatformString(p)
	return map[string]string{
		"BUILDPLATFORM": ps, "BUILDOS": p.OS, "BUILDARCH": p.Architecture, "BUILDVARIANT": p.Variant,
		"TARGETPLATFORM": ps, "TARGETOS": p.OS, "TARGETARCH": p.Architecture, "TARGETVARIANT": p.Variant,
	}
}

// checkPlatform refuses a FROM --platform other than this machine's: berth
// runs build steps natively and has no emulation.
func checkPlatform(lex *shell.Lex, s string, env shell.EnvGetter) error {
	v, _, err := lex.ProcessWord(s, env)
	if err != nil {
		return err
	}
	want, err := image.ParsePlatform(v)
	if err != nil {
		return fmt.Errorf("FROM --platform=%s: %w", s, err)
	}
	host := image.HostPlatform()
	if want.OS != host.OS || want.Architecture != host.Architecture || (want.Variant != "" && want.Variant != host.Variant) {
		return fmt.Errorf("FROM --platform=%s: berth builds for this machine's platform (%s) only", v, image.PlatformString(host))
	}
	return nil
}

// run is one build in progress.
type run struct {
	b        *Builder
	o        Options
	df       *dockerfile
	plan     *plan
	cache    *cache
	fromArgs map[string]string
	stages   []*stage
	steps    int
	step     int
	ran      int
	cached   int
	// helpers are containers made to read images (COPY --from, bind
	// mounts), removed at the end.
	helpers []string
	// tmpDirs hold secrets' private copies, removed at the end.
	tmpDirs []string
	// token names this build's lock, containers and secret directories.
	token   string
	scratch image.Image
}

func (r *run) cleanup() {
	ctx := context.Background()
	for _, id := range r.helpers {
		r.b.Engine.Remove(ctx, id, true, true)
	}
	for _, d := range r.tmpDirs {
		os.RemoveAll(d)
	}
}

// labels are a step container's: what it is for, and whose.
func (r *run) labels(kind string) map[string]string {
	return map[string]string{ContainerLabel: kind, ownerLabel: r.token}
}

// own takes this build's lock, then removes what dead builds left: their
// step containers (whose records may hold a secret given as env) and
// their secrets' copies.
func (b *Builder) own(ctx context.Context) (string, func(), error) {
	dir := filepath.Join(b.Images.Root(), "build", "builders")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", nil, err
	}
	token := hex.EncodeToString(rnd[:])
	l, err := flock.Exclusive(filepath.Join(dir, token))
	if err != nil {
		return "", nil, err
	}
	dead := func(owner string) bool {
		if owner == token || strings.ContainsAny(owner, "/.") || owner == "" {
			return false
		}
		p := filepath.Join(dir, owner)
		ol, err := flock.TryExclusive(p)
		if err != nil {
			return false // alive (or unknowable: keep)
		}
		ol.Unlock()
		return true
	}
	// Only a dead build's lock file (left by a kill) sends the sweep
	// through the containers and secret directories: a build after a
	// clean one lists nothing.
	ents, _ := os.ReadDir(dir)
	gone := map[string]bool{}
	for _, e := range ents {
		if dead(e.Name()) {
			gone[e.Name()] = true
		}
	}
	release := func() {
		os.Remove(filepath.Join(dir, token))
		l.Unlock()
	}
	if len(gone) == 0 {
		return token, release, nil
	}
	if cs, err := b.Engine.List(ctx); err == nil {
		for _, c := range cs {
			if gone[c.Config.Labels[ownerLabel]] {
				b.Engine.Remove(ctx, c.ID, true, true)
			}
		}
	}
	for _, base := range []string{"/dev/shm", os.TempDir()} {
		ents, _ := os.ReadDir(base)
		for _, e := range ents {
			if rest, ok := strings.CutPrefix(e.Name(), secretDirPrefix); ok {
				if owner, _, ok := strings.Cut(rest, "-"); ok && gone[owner] {
					os.RemoveAll(filepath.Join(base, e.Name()))
				}
			}
		}
	}
	// The lock file goes once it is old: a fresh one may be a build
	// between creating and locking it (which has made nothing yet).
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && gone[e.Name()] && time.Since(fi.ModTime()) > time.Minute {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return token, release, nil
}

func (r *run) event(e Event) {
	if r.o.Progress != nil {
		r.o.Progress(e)
	}
}

// sourceImage finds an image a build reads (FROM, COPY --from, a mount's
// from=) as the pull policy says, and checks it.
func (r *run) sourceImage(ctx context.Context, ref string) (image.Image, error) {
	var img image.Image
	var err error
	if r.o.Pull != PullAlways {
		img, err = r.b.Images.Get(ctx, ref)
	}
	if r.o.Pull == PullAlways || (errors.Is(err, errdefs.ErrNotFound) && r.o.Pull == PullMissing) {
		if r.b.Pull == nil {
			return image.Image{}, fmt.Errorf("image %s is not stored here and this build cannot pull: %w", ref, errdefs.ErrNotFound)
		}
		img, err = r.b.Pull(ctx, ref)
	}
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) && r.o.Pull == PullNever {
			return image.Image{}, fmt.Errorf("image %s is not stored here (and --pull=never): %w", ref, err)
		}
		return image.Image{}, err
	}
	if r.b.Check != nil {
		if err := r.b.Check(ctx, ref, img); err != nil {
			return image.Image{}, err
		}
	}
	return img, nil
}

// scratchImage is the image FROM scratch starts from: no layers, no
// history, a fixed time, so that it is the same image every build.
func (r *run) scratchImage(ctx context.Context) (image.Image, error) {
	if r.scratch.ID != "" {
		return r.scratch, nil
	}
	t := time.Unix(0, 0).UTC()
	img, err := r.b.Images.Derive(ctx, image.DeriveOptions{NoHistory: true, Created: &t})
	if err != nil {
		return image.Image{}, err
	}
	r.scratch = img
	return img, nil
}

// Secret is a --secret: a host file, or an environment variable of the
// build's own.
type Secret struct {
	File string
	Env  string
}

// readSecret reads a secret when a step mounts it (it goes into no key,
// layer, history or record).
func readSecret(s Secret) ([]byte, error) {
	if s.File == "" {
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return nil, fmt.Errorf("secret from $%s: the variable is not set: %w", s.Env, errdefs.ErrNotFound)
		}
		return []byte(v), nil
	}
	b, err := os.ReadFile(s.File)
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", s.File, err)
	}
	return b, nil
}
