package build

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
)

// defaultPath is the PATH a stage gets when its base sets none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// historyComment is what BuildKit writes as each step's history comment.
const historyComment = "buildkit.dockerfile.v0"

// stage is one build stage in progress.
type stage struct {
	index int
	name  string
	// base is the image FROM named (or the base stage's base): the layers
	// below it are not this build's.
	base    image.Image
	baseRef string
	// img is the last step's image; cfg its config as the build sees it.
	img image.Image
	cfg dockerspec.DockerOCIImage
	// key is the cache key of the last step.
	key digest.Digest
	// args are the ARGs the stage declared, with values, in order.
	args   []instructions.KeyValuePairOptional
	cmdSet bool
	// dirty: cfg differs from img's config without a step (ONBUILD
	// triggers consumed).
	dirty bool
}

// parentKey is what every step's key starts with: the chain of keys so
// far, and the image the step is made on. The image matters apart from the
// chain: a step that ran again (its cached image removed) makes a new
// image, and the steps after it must not come from the cache of the old
// one. cmdSet is in it because ENTRYPOINT's result depends on it.
func (s *stage) parentKey() string {
	return stepKey(s.key.String(), s.img.ID.String(), "cmdset="+strconv.FormatBool(s.cmdSet), "dirty="+strconv.FormatBool(s.dirty)).String()
}

func (s *stage) created() time.Time {
	if s.cfg.Created != nil {
		return *s.cfg.Created
	}
	return time.Unix(0, 0).UTC()
}

// env is what words of the stage are expanded with: its ARGs, then ENV
// over them, as BuildKit.
func (s *stage) env() shell.EnvGetter {
	var list []string
	for _, a := range s.args {
		if a.Value != nil {
			list = append(list, a.Key+"="+*a.Value)
		}
	}
	list = append(list, s.cfg.Config.Env...)
	return shell.EnvsFromSlice(dedupEnv(list))
}

// runEnv is a RUN's environment: the config's Env plus the ARGs no ENV
// overrides.
func (s *stage) runEnv() []string {
	env := append([]string(nil), s.cfg.Config.Env...)
	for _, a := range s.args {
		if a.Value == nil {
			continue
		}
		if _, ok := lookupEnv(env, a.Key); !ok {
			env = append(env, a.Key+"="+*a.Value)
		}
	}
	return env
}

func lookupEnv(env []string, k string) (string, bool) {
	for _, e := range env {
		if key, v, _ := strings.Cut(e, "="); key == k {
			return v, true
		}
	}
	return "", false
}

// dedupEnv keeps the last value of each key.
func dedupEnv(list []string) []string {
	idx := map[string]int{}
	var out []string
	for _, e := range list {
		k, _, _ := strings.Cut(e, "=")
		if i, ok := idx[k]; ok {
			out[i] = e
			continue
		}
		idx[k] = len(out)
		out = append(out, e)
	}
	return out
}

func stepKey(parts ...string) digest.Digest {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return digest.NewDigest(digest.SHA256, h)
}

// buildStage builds stage i: its base, then each instruction.
func (r *run) buildStage(ctx context.Context, i int) error {
	ds := r.df.stages[i]
	st := &stage{index: i, name: ds.Name}
	if st.name == "" {
		st.name = strconv.Itoa(i)
	}
	r.stages[i] = st
	base := r.plan.bases[i]
	r.step++
	started := time.Now()
	instr := "FROM " + base
	r.event(Event{Stage: st.name, Step: r.step, Steps: r.steps, Instruction: instr})
	fail := func(err error) error {
		r.event(Event{Stage: st.name, Step: r.step, Steps: r.steps, Instruction: instr, Done: true, Err: err})
		return &StepError{File: r.df.name, Line: line(ds.Location), Instruction: instr, Err: err}
	}
	switch j := r.df.stageIndex(base, i); {
	case j >= 0:
		prev := r.stages[j]
		st.base, st.baseRef, st.img, st.key = prev.base, prev.baseRef, prev.img, prev.key
		st.cfg = cloneConfig(prev.cfg)
		st.dirty = prev.dirty
	case strings.EqualFold(base, "scratch"):
		img, err := r.scratchImage(ctx)
		if err != nil {
			return fail(err)
		}
		st.img = img
		st.key = stepKey("scratch", image.PlatformString(image.HostPlatform()))
		cfg, err := r.b.Images.Config(ctx, img)
		if err != nil {
			return fail(err)
		}
		st.cfg = *cfg
	default:
		img, err := r.sourceImage(ctx, base)
		if err != nil {
			return fail(err)
		}
		st.base, st.baseRef, st.img = img, base, img
		st.key = stepKey("FROM", img.ID.String())
		cfg, err := r.b.Images.Config(ctx, img)
		if err != nil {
			return fail(err)
		}
		st.cfg = *cfg
	}
	// As BuildKit and buildah: a stage always has a PATH.
	if _, ok := lookupEnv(st.cfg.Config.Env, "PATH"); !ok {
		st.cfg.Config.Env = append(st.cfg.Config.Env, "PATH="+defaultPath)
		st.dirty = true
	}
	if r.o.SourceDateEpoch != nil {
		st.key = stepKey(st.key.String(), "SOURCE_DATE_EPOCH", strconv.FormatInt(r.o.SourceDateEpoch.Unix(), 10))
	}
	r.event(Event{Stage: st.name, Step: r.step, Steps: r.steps, Instruction: instr, Done: true, Cached: true, Duration: time.Since(started), Image: st.img.ID})

	// ONBUILD triggers of an image (not of a stage of this build, whose
	// triggers are its own) run first, and the result does not keep them.
	if len(st.cfg.Config.OnBuild) > 0 && r.df.stageIndex(base, i) < 0 {
		triggers := st.cfg.Config.OnBuild
		st.cfg.Config.OnBuild = nil
		st.dirty = true
		for _, t := range triggers {
			res, err := parser.Parse(strings.NewReader(t))
			if err != nil {
				return &StepError{File: r.df.name, Line: line(ds.Location), Instruction: "ONBUILD " + t, Err: err}
			}
			for _, n := range res.AST.Children {
				cmd, err := instructions.ParseCommand(n)
				if err != nil {
					return &StepError{File: r.df.name, Line: line(ds.Location), Instruction: "ONBUILD " + t, Err: err}
				}
				r.steps++
				if err := r.dispatch(ctx, st, cmd, line(ds.Location)); err != nil {
					return err
				}
			}
		}
	}
	for _, cmd := range ds.Commands {
		if err := r.dispatch(ctx, st, cmd, line(cmd.Location())); err != nil {
			return err
		}
	}
	return nil
}

func cloneConfig(c dockerspec.DockerOCIImage) dockerspec.DockerOCIImage {
	b, _ := json.Marshal(c)
	var out dockerspec.DockerOCIImage
	json.Unmarshal(b, &out)
	return out
}

// dispatch runs one instruction on the stage.
func (r *run) dispatch(ctx context.Context, st *stage, cmd instructions.Command, ln int) error {
	r.step++
	lex := r.df.lexer()
	instr := cmd.(fmt.Stringer).String()
	started := time.Now()
	r.event(Event{Stage: st.name, Step: r.step, Steps: r.steps, Instruction: instr})
	done := func(cached bool, err error) error {
		r.event(Event{Stage: st.name, Step: r.step, Steps: r.steps, Instruction: instr, Done: true, Cached: cached, Duration: time.Since(started), Err: err, Image: st.img.ID})
		if err != nil {
			se := &StepError{File: r.df.name, Line: ln, Instruction: instr, Err: err}
			var re *RunError
			if errors.As(err, &re) {
				se.Code = re.Code
			}
			return se
		}
		if cached {
			r.cached++
		} else {
			r.ran++
		}
		return nil
	}
	env := st.env()
	expand := func(w string) (string, error) {
		out, _, err := lex.ProcessWord(w, env)
		return out, err
	}
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		if err := ex.Expand(expand); err != nil {
			return done(false, err)
		}
	}
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansionRaw); ok {
		if err := ex.ExpandRaw(func(w string) (string, error) {
			out, _, err := lex.ProcessWord(w, env)
			return out, err
		}); err != nil {
			return done(false, err)
		}
	}
	if c, ok := cmd.(*instructions.ExposeCommand); ok {
		// EXPOSE has no Expand of its own: BuildKit expands its words.
		var ports []string
		for _, p := range c.Ports {
			ps, err := lex.ProcessWords(p, env)
			if err != nil {
				return done(false, err)
			}
			ports = append(ports, ps...)
		}
		c.Ports = ports
	}
	switch c := cmd.(type) {
	case *instructions.RunCommand:
		cached, err := r.runStep(ctx, st, c)
		return done(cached, err)
	case *instructions.CopyCommand:
		cached, err := r.copyStep(ctx, st, copyArgs{
			add: false, from: c.From, chown: c.Chown, chmod: c.Chmod, sd: c.SourcesAndDest, excludes: c.ExcludePatterns,
		})
		return done(cached, err)
	case *instructions.AddCommand:
		if c.Checksum != "" || c.KeepGitDir != nil {
			return done(false, fmt.Errorf("ADD --checksum and --keep-git-dir are for remote sources, which berth build does not fetch: %w", errdefs.ErrInvalidArgument))
		}
		unpack := true
		if c.Unpack != nil {
			unpack = *c.Unpack
		}
		cached, err := r.copyStep(ctx, st, copyArgs{
			add: true, unpack: unpack, chown: c.Chown, chmod: c.Chmod, sd: c.SourcesAndDest, excludes: c.ExcludePatterns,
		})
		return done(cached, err)
	case *instructions.WorkdirCommand:
		cached, err := r.workdirStep(ctx, st, c)
		return done(cached, err)
	case *instructions.ArgCommand:
		var parts []string
		for _, a := range c.Args {
			if v, ok := r.o.BuildArgs[a.Key]; ok {
				a.Value = &v
			} else if a.Value == nil {
				if v, ok := r.fromArgs[a.Key]; ok {
					a.Value = &v
				}
			}
			replaced := false
			for i := range st.args {
				if st.args[i].Key == a.Key {
					st.args[i], replaced = a, true
				}
			}
			if !replaced {
				st.args = append(st.args, a)
			}
			s := a.Key
			if a.Value != nil {
				s += "=" + *a.Value
			}
			parts = append(parts, s)
		}
		cached, err := r.configStep(ctx, st, "ARG "+strings.Join(parts, " "), nil)
		return done(cached, err)
	case *instructions.EnvCommand:
		msg := "ENV"
		for _, kv := range c.Env {
			msg += " " + kv.Key + "=" + kv.Value
		}
		cached, err := r.configStep(ctx, st, msg, c)
		return done(cached, err)
	case *instructions.LabelCommand:
		msg := "LABEL"
		for _, kv := range c.Labels {
			msg += " " + kv.Key + "=" + kv.Value
		}
		cached, err := r.configStep(ctx, st, msg, c)
		return done(cached, err)
	case *instructions.MaintainerCommand:
		st.cfg.Author = c.Maintainer
		cached, err := r.configStep(ctx, st, "MAINTAINER "+c.Maintainer, nil)
		return done(cached, err)
	case *instructions.CmdCommand:
		cached, err := r.configStep(ctx, st, "", c)
		return done(cached, err)
	case *instructions.EntrypointCommand, *instructions.ExposeCommand, *instructions.UserCommand,
		*instructions.VolumeCommand, *instructions.StopSignalCommand, *instructions.ShellCommand,
		*instructions.HealthCheckCommand, *instructions.OnbuildCommand:
		cached, err := r.configStep(ctx, st, "", c)
		return done(cached, err)
	}
	return done(false, fmt.Errorf("%s is not supported by berth build: %w", strings.ToUpper(cmd.Name()), errdefs.ErrNotImplemented))
}

// configStep applies a config instruction (inst nil: msg alone, the
// change made by the caller) and records it as a step without a layer.
func (r *run) configStep(ctx context.Context, st *stage, msg string, inst any) (bool, error) {
	if inst != nil {
		if err := image.ApplyInstruction(&st.cfg.Config, inst, &st.cmdSet); err != nil {
			return false, err
		}
		if _, ok := inst.(*instructions.CmdCommand); ok {
			st.cmdSet = true
		}
		if msg == "" {
			msg = historyOf(&st.cfg.Config, inst)
		}
	}
	key := stepKey(st.parentKey(), msg)
	if hit, ok, err := r.lookup(ctx, key); err != nil || ok {
		if ok {
			return true, r.adopt(ctx, st, hit, key)
		}
		return false, err
	}
	cfg := st.cfg.Config
	author := st.cfg.Author
	img, err := r.b.Images.Derive(ctx, image.DeriveOptions{
		Base: st.img.ID, CreatedBy: msg, Comment: historyComment, Created: r.o.SourceDateEpoch, Author: author,
		Config: func(c *dockerspec.DockerOCIImageConfig) { *c = cfg },
	})
	if err != nil {
		return false, err
	}
	return false, r.record(ctx, st, img, key)
}

// historyOf is the history line BuildKit writes for a config instruction.
func historyOf(cfg *dockerspec.DockerOCIImageConfig, inst any) string {
	switch c := inst.(type) {
	case *instructions.CmdCommand:
		return fmt.Sprintf("CMD %q", cfg.Cmd)
	case *instructions.EntrypointCommand:
		return fmt.Sprintf("ENTRYPOINT %q", cfg.Entrypoint)
	case *instructions.ExposeCommand:
		ports := make([]string, 0, len(c.Ports))
		for _, p := range c.Ports {
			ps, _ := image.ExpandPorts(p)
			ports = append(ports, ps...)
		}
		sort.Strings(ports)
		return "EXPOSE map[" + strings.Join(mapKeys(ports), " ") + "]"
	case *instructions.UserCommand:
		return "USER " + c.User
	case *instructions.VolumeCommand:
		return fmt.Sprintf("VOLUME %v", c.Volumes)
	case *instructions.StopSignalCommand:
		return "STOPSIGNAL " + c.Signal
	case *instructions.ShellCommand:
		return fmt.Sprintf("SHELL %v", c.Shell)
	case *instructions.HealthCheckCommand:
		if cfg.Healthcheck == nil {
			return "HEALTHCHECK NONE"
		}
		return fmt.Sprintf("HEALTHCHECK %+v", *cfg.Healthcheck)
	case *instructions.OnbuildCommand:
		return "ONBUILD " + c.Expression
	case fmt.Stringer:
		return c.String()
	}
	return ""
}

func mapKeys(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p + ":{}"
	}
	return out
}

// lookup finds a step's cached image, unless --no-cache.
func (r *run) lookup(ctx context.Context, key digest.Digest) (image.Image, bool, error) {
	if r.o.NoCache {
		return image.Image{}, false, nil
	}
	id, ok := r.cache.get(key)
	if !ok {
		return image.Image{}, false, nil
	}
	img, err := r.b.Images.Get(ctx, id.String())
	if err != nil {
		// The image was removed since: the step runs again.
		return image.Image{}, false, nil
	}
	return img, true, nil
}

// adopt makes a cached image the stage's current one.
func (r *run) adopt(ctx context.Context, st *stage, img image.Image, key digest.Digest) error {
	cfg, err := r.b.Images.Config(ctx, img)
	if err != nil {
		return err
	}
	st.img, st.key, st.dirty = img, key, false
	// The build's own view (ENTRYPOINT's cmdSet) stays; the config is the
	// stored one, identical to what the step would have made.
	st.cfg = *cfg
	return nil
}

// record makes a new step's image the stage's current one and caches it.
func (r *run) record(ctx context.Context, st *stage, img image.Image, key digest.Digest) error {
	if err := r.adopt(ctx, st, img, key); err != nil {
		return err
	}
	return r.cache.put(key, img.ID)
}

// absPath makes a Dockerfile path absolute against the working directory.
func absPath(wd, p string) string {
	if path.IsAbs(p) {
		return p
	}
	if wd == "" {
		wd = "/"
	}
	return path.Join(wd, p)
}
