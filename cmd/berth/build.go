package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthproject/berth/archive"
	"github.com/berthproject/berth/build"
	"github.com/berthproject/berth/container"
	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/registry"
	"github.com/spf13/cobra"
)

// buildFlags are berth build's flags.
type buildFlags struct {
	tags, buildArgs, labels, secrets, outputs []string
	file, target, pull, network, iidfile      string
	progress                                  string
	noCache, quiet                            bool
	team, signKey, platform                   string
	passwordStdin                             bool
	rf                                        remoteFlags
}

func buildCmd(a *app) *cobra.Command {
	var f buildFlags
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] PATH | -",
		Short: "Build an image from a Dockerfile",
		Long: `Build an image from a Dockerfile and a context (a directory, or a tar on stdin with "-").
Every step's result is cached by content: an unchanged rebuild runs nothing and gives the same image.
With SOURCE_DATE_EPOCH set (in the environment or as --build-arg) the image is byte-for-byte reproducible.
With --team and --sign-key the FROM image is verified under the trust policy first and a custody
record is signed for exactly the layers this build added.`,
		Args: exactArgs(1, "the build context: a directory, or - for a tar on stdin"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.build(cmd, f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.tags, "tag", "t", nil, "name the image (NAME[:TAG]); may be given more than once")
	fl.StringVarP(&f.file, "file", "f", "", "the Dockerfile (default: PATH/Dockerfile, or PATH/Containerfile); - reads it from stdin")
	fl.StringVar(&f.target, "target", "", "build this stage (default: the last)")
	fl.BoolVar(&f.noCache, "no-cache", false, "run every step, using no cached result")
	fl.StringVar(&f.pull, "pull", "missing", "pull FROM images: never, missing or always")
	fl.Lookup("pull").NoOptDefVal = "always"
	fl.StringVar(&f.iidfile, "iidfile", "", "write the image ID to this file")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "set a build argument (KEY=VALUE, or KEY to take it from the environment)")
	fl.StringArrayVar(&f.labels, "label", nil, "add a label to the image (KEY=VALUE)")
	fl.StringVar(&f.network, "network", "none", "RUN's network: none or host")
	fl.StringArrayVar(&f.secrets, "secret", nil, "give RUN --mount=type=secret a secret: id=ID,src=FILE (or env=VAR)")
	fl.StringArrayVarP(&f.outputs, "output", "o", nil, "also write the result: type=oci|docker|local,dest=PATH (a bare PATH is local)")
	fl.StringVar(&f.progress, "progress", "auto", "progress output: auto, plain, tty or quiet")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print only the image ID")
	fl.StringVar(&f.platform, "platform", "", "the platform to build for: this machine's only (berth runs steps natively)")
	fl.StringVar(&f.team, "team", "", "sign a custody record as this team (with --sign-key) for the layers this build adds")
	fl.StringVar(&f.signKey, "sign-key", "", "the team's private key for the custody record")
	fl.BoolVar(&f.passwordStdin, "password-stdin", false, "read the key's password from stdin")
	f.rf.add(fl)
	return cmd
}

// buildOutput is one --output.
type buildOutput struct{ typ, dest string }

func parseOutput(s string) (buildOutput, error) {
	if !strings.Contains(s, "=") {
		return buildOutput{typ: "local", dest: s}, nil
	}
	var o buildOutput
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "type":
			o.typ = v
		case "dest":
			o.dest = v
		default:
			return o, fmt.Errorf("--output %q: unknown field %q (type, dest)", s, k)
		}
	}
	switch o.typ {
	case "oci", "docker", "local":
	case "":
		return o, fmt.Errorf("--output %q: no type (oci, docker or local)", s)
	default:
		return o, fmt.Errorf("--output %q: type %q: berth writes oci, docker or local", s, o.typ)
	}
	if o.dest == "" {
		return o, fmt.Errorf("--output %q: no dest", s)
	}
	return o, nil
}

func parseKVList(flag string, list []string, env bool) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range list {
		k, v, ok := strings.Cut(s, "=")
		if k == "" {
			return nil, fmt.Errorf("%s %q: want KEY=VALUE", flag, s)
		}
		if !ok {
			if !env {
				return nil, fmt.Errorf("%s %q: want KEY=VALUE", flag, s)
			}
			ev, set := os.LookupEnv(k)
			if !set {
				continue // as docker: an unset variable is no argument
			}
			v = ev
		}
		out[k] = v
	}
	return out, nil
}

// parseSecrets reads --secret id=ID,src=FILE|env=VAR. Nothing is read or
// written here: the build reads a secret when a step mounts it.
func parseSecrets(list []string) (map[string]build.Secret, error) {
	out := map[string]build.Secret{}
	for _, s := range list {
		var id, src, env string
		for _, kv := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "id":
				id = v
			case "src", "source":
				src = v
			case "env":
				env = v
			case "type":
				if v != "file" && v != "env" {
					return nil, fmt.Errorf("--secret %q: type %q (file or env)", s, v)
				}
			default:
				return nil, fmt.Errorf("--secret %q: unknown field %q (id, src, env)", s, k)
			}
		}
		if id == "" {
			id = filepath.Base(src)
			if src == "" {
				id = env
			}
		}
		switch {
		case id == "":
			return nil, fmt.Errorf("--secret %q: no id", s)
		case src != "":
			if _, err := os.Stat(src); err != nil {
				return nil, fmt.Errorf("--secret %q: %w", s, err)
			}
			abs, _ := filepath.Abs(src)
			out[id] = build.Secret{File: abs}
		case env != "":
			if _, ok := os.LookupEnv(env); !ok {
				return nil, fmt.Errorf("--secret %q: the variable %s is not set", s, env)
			}
			out[id] = build.Secret{Env: env}
		default:
			return nil, fmt.Errorf("--secret %q: give src=FILE or env=VAR", s)
		}
	}
	return out, nil
}

func (a *app) build(cmd *cobra.Command, f buildFlags, ctxArg string) error {
	ctx := cmd.Context()
	pull, err := build.ParsePullPolicy(f.pull)
	if err != nil {
		return usageError(cmd, errors.New(message(err)))
	}
	if f.network != "none" && f.network != "host" {
		return usageError(cmd, fmt.Errorf("--network %q: berth build has none and host", f.network))
	}
	switch f.progress {
	case "auto", "plain", "tty", "quiet":
	default:
		return usageError(cmd, fmt.Errorf("--progress %q: use auto, plain, tty or quiet", f.progress))
	}
	if f.platform != "" {
		p, err := image.ParsePlatform(f.platform)
		if err != nil {
			return usageError(cmd, errors.New(message(err)))
		}
		if host := image.HostPlatform(); p.OS != host.OS || p.Architecture != host.Architecture {
			return usageError(cmd, fmt.Errorf("--platform %s: berth builds for this machine's platform (%s) only", f.platform, image.PlatformString(host)))
		}
	}
	if (f.team == "") != (f.signKey == "") {
		return usageError(cmd, errors.New("--team and --sign-key go together"))
	}
	if f.team != "" && len(f.tags) == 0 {
		return usageError(cmd, errors.New("a custody record needs the image's name: give -t"))
	}
	var outputs []buildOutput
	for _, s := range f.outputs {
		o, err := parseOutput(s)
		if err != nil {
			return usageError(cmd, err)
		}
		outputs = append(outputs, o)
	}
	for _, o := range outputs {
		// Where the result goes is checked before the build, which moves
		// the tags.
		switch {
		case o.dest == "-":
		case o.typ == "local":
			if err := os.MkdirAll(o.dest, 0o755); err != nil {
				return fmt.Errorf("--output %s: %w", o.dest, err)
			}
		default:
			t, err := os.CreateTemp(filepath.Dir(o.dest), ".berth-output-")
			if err != nil {
				return fmt.Errorf("--output %s: %w", o.dest, err)
			}
			t.Close()
			os.Remove(t.Name())
		}
	}
	args, err := parseKVList("--build-arg", f.buildArgs, true)
	if err != nil {
		return usageError(cmd, err)
	}
	labels, err := parseKVList("--label", f.labels, false)
	if err != nil {
		return usageError(cmd, err)
	}
	secrets, err := parseSecrets(f.secrets)
	if err != nil {
		return usageError(cmd, err)
	}
	if strings.Contains(ctxArg, "://") || strings.HasPrefix(ctxArg, "git@") {
		return usageError(cmd, fmt.Errorf("context %s: berth builds from a local directory or a tar on stdin, not a URL", ctxArg))
	}
	if ctxArg == "-" && f.file == "-" {
		return usageError(cmd, errors.New("the context and the Dockerfile cannot both come from stdin"))
	}

	// The context: a directory, or a tar (or a bare Dockerfile) on stdin.
	dir := ctxArg
	var dockerfile []byte
	dfName := "Dockerfile"
	if ctxArg == "-" {
		tmp, df, err := a.stdinContext(ctx)
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir, dockerfile = tmp, df
	} else if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usageError(cmd, fmt.Errorf("context %s: not a directory", ctxArg))
	}
	dfPath := ""
	switch {
	case f.file == "-":
		if dockerfile, err = io.ReadAll(a.stdin); err != nil {
			return err
		}
	case f.file != "":
		// Relative to here, or else to the context, as podman.
		dfPath = f.file
		if _, err := os.Stat(dfPath); err != nil && !filepath.IsAbs(dfPath) {
			if _, err := os.Stat(filepath.Join(dir, dfPath)); err == nil {
				dfPath = filepath.Join(dir, dfPath)
			}
		}
	case dockerfile == nil:
		dfPath = filepath.Join(dir, "Dockerfile")
		if _, err := os.Stat(dfPath); err != nil {
			if _, err2 := os.Stat(filepath.Join(dir, "Containerfile")); err2 == nil {
				dfPath = filepath.Join(dir, "Containerfile")
			}
		}
	}
	if dfPath != "" {
		if dockerfile, err = os.ReadFile(dfPath); err != nil {
			return fmt.Errorf("read the Dockerfile: %w", err)
		}
		dfName = filepath.Base(dfPath)
	}
	bctx, err := build.OpenContext(dir, dfPath)
	if err != nil {
		return err
	}

	s, err := a.images()
	if err != nil {
		return err
	}
	e, err := a.buildEngine()
	if err != nil {
		return err
	}
	b := &build.Builder{Images: s, Engine: e,
		Pull: func(ctx context.Context, ref string) (image.Image, error) {
			cl, err := f.rf.client(a, ref)
			if err != nil {
				return image.Image{}, err
			}
			check, err := a.pullCheck(cl)
			if err != nil {
				return image.Image{}, err
			}
			var rep registry.Reporter
			if !f.quiet {
				rep = registry.Lines(a.stderr, false)
			}
			pulled, err := cl.Pull(ctx, s, ref, registry.PullOptions{Progress: rep, Check: check})
			if err != nil {
				return image.Image{}, err
			}
			if len(pulled) == 0 {
				return image.Image{}, fmt.Errorf("pull %s: nothing pulled: %w", ref, errdefs.ErrNotFound)
			}
			return s.Get(ctx, ref)
		},
		Check: func(ctx context.Context, ref string, img image.Image) error {
			ch, err := a.checker()
			if err != nil {
				return err
			}
			_, err = ch.CheckStored(ctx, s, ref)
			return err
		},
	}
	o := build.Options{
		Dockerfile: dockerfile, DockerfileName: dfName, Context: bctx, Tags: f.tags, Target: f.target,
		NoCache: f.noCache, Pull: pull, BuildArgs: args, Labels: labels, Network: f.network, Secrets: secrets,
	}
	if v, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok && v != "" {
		if _, set := args["SOURCE_DATE_EPOCH"]; !set {
			t, err := build.ParseEpoch(v)
			if err != nil {
				return usageError(cmd, errors.New(message(err)))
			}
			o.SourceDateEpoch = &t
		}
	}
	mode := f.progress
	if f.quiet {
		mode = "quiet"
	}
	if mode == "auto" {
		mode = "plain"
		if fh, ok := a.stderr.(*os.File); ok && isTerminal(fh) {
			mode = "tty"
		}
	}
	pr := newBuildProgress(a.stderr, mode)
	o.Progress = pr.event
	o.Output = pr.output()
	res, err := b.Build(ctx, o)
	pr.finish()
	if err != nil {
		var re *build.RunError
		if errors.As(err, &re) && mode != "plain" && re.Tail != "" {
			// Plain progress showed the output as it came; otherwise show
			// its end, which is where the reason is.
			fmt.Fprintln(a.stderr, re.Tail)
		}
		return err
	}
	if len(res.UnusedArgs) > 0 {
		fmt.Fprintf(a.stderr, "[Warning] One or more build-args %v were not consumed\n", res.UnusedArgs)
	}
	if mode != "quiet" {
		for _, t := range f.tags {
			if n, err := image.ParseReference(t); err == nil {
				fmt.Fprintf(a.stderr, "Successfully tagged %s\n", n.String())
			}
		}
		fmt.Fprintf(a.stderr, "Built %s: %d step(s) run, %d cached\n", res.Image.ID.Encoded()[:12], res.Ran, res.Cached)
	}
	if f.iidfile != "" {
		if err := os.WriteFile(f.iidfile, []byte(res.Image.ID.String()), 0o644); err != nil {
			return fmt.Errorf("--iidfile: %w", err)
		}
	}
	if f.team != "" {
		co := custodyOpts{key: f.signKey, team: f.team, stdin: f.passwordStdin}
		if res.BaseRef != "" {
			co.base = res.BaseRef
		}
		if err := a.custodySign(ctx, co, f.tags[0]); err != nil {
			return err
		}
	}
	for _, out := range outputs {
		if err := a.writeBuildOutput(ctx, e, s, res, f.tags, out); err != nil {
			return err
		}
	}
	fmt.Fprintln(a.stdout, res.Image.ID.String())
	return nil
}

// buildEngine is an engine for build steps: the trust policy is checked
// on the images a build reads (FROM, --from), not on each step's own.
func (a *app) buildEngine() (*container.Engine, error) { return a.openEngine(nil) }

// stdinContext reads a build context from stdin: a tar (compressed or
// not) is unpacked to a temporary directory, with the same safety as a
// layer; anything else is the Dockerfile, with an empty context.
func (a *app) stdinContext(ctx context.Context) (string, []byte, error) {
	dir, err := os.MkdirTemp("", "berth-context-")
	if err != nil {
		return "", nil, err
	}
	br := bufio.NewReaderSize(a.stdin, 1<<16)
	head, _ := br.Peek(512)
	// A tar, compressed or not, says "ustar" at 257 of its first block.
	r, _, err := archive.DecompressStream(bytes.NewReader(head))
	isTar := false
	if err == nil {
		inner := make([]byte, 512)
		n, _ := io.ReadFull(r, inner)
		r.Close()
		isTar = n >= 262 && string(inner[257:262]) == "ustar"
	}
	if !isTar {
		df, err := io.ReadAll(br)
		if err != nil {
			os.RemoveAll(dir)
			return "", nil, err
		}
		return dir, df, nil
	}
	dr, _, err := archive.DecompressStream(br)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	defer dr.Close()
	if _, err := archive.Apply(ctx, dir, dr, archive.Options{Whiteouts: archive.WhiteoutDelete, IgnoreOwner: true}); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("read the context from stdin: %w", err)
	}
	return dir, nil, nil
}

// writeBuildOutput writes the result as --output asks.
func (a *app) writeBuildOutput(ctx context.Context, e *container.Engine, s *image.Store, res *build.Result, tags []string, o buildOutput) error {
	ref := res.Image.ID.String()
	if len(tags) > 0 {
		ref = tags[0]
	}
	switch o.typ {
	case "oci", "docker":
		format := image.OCIArchive
		if o.typ == "docker" {
			format = image.DockerArchive
		}
		arts, err := a.attachedArtifacts(ctx, s, []string{ref})
		if err != nil {
			return err
		}
		if o.dest == "-" {
			return s.SaveWith(ctx, a.stdout, []string{ref}, format, arts)
		}
		tmp, err := os.CreateTemp(filepath.Dir(o.dest), ".berth-output-")
		if err != nil {
			return fmt.Errorf("--output %s: %w", o.dest, err)
		}
		defer os.Remove(tmp.Name())
		if err := s.SaveWith(ctx, tmp, []string{ref}, format, arts); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		return os.Rename(tmp.Name(), o.dest)
	case "local":
		if err := os.MkdirAll(o.dest, 0o755); err != nil {
			return fmt.Errorf("--output %s: %w", o.dest, err)
		}
		empty := ""
		c, err := e.Create(ctx, container.CreateOptions{Image: res.Image.ID.String(), Entrypoint: &empty, Cmd: []string{"/"}, Network: "none", NoImageVolumes: true})
		if err != nil {
			return err
		}
		defer e.Remove(context.WithoutCancel(ctx), c.ID, true, true)
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(e.Export(ctx, c.ID, pw)) }()
		defer pr.Close()
		if _, err := archive.Apply(ctx, o.dest, pr, archive.Options{Whiteouts: archive.WhiteoutDelete, IgnoreOwner: os.Geteuid() != 0}); err != nil {
			return fmt.Errorf("--output %s: %w", o.dest, err)
		}
	}
	return nil
}

// buildProgress shows a build: podman's STEP lines and the steps' output
// (plain), a list of steps with their times that a terminal redraws
// (tty), or nothing (quiet).
type buildProgress struct {
	w       io.Writer
	mode    string
	started time.Time
	running string
}

func newBuildProgress(w io.Writer, mode string) *buildProgress {
	return &buildProgress{w: w, mode: mode, started: time.Now()}
}

func (p *buildProgress) output() io.Writer {
	if p.mode == "plain" {
		return p.w
	}
	return nil
}

func (p *buildProgress) event(ev build.Event) {
	switch p.mode {
	case "quiet":
		return
	case "plain":
		if !ev.Done {
			fmt.Fprintf(p.w, "STEP %d/%d: %s\n", ev.Step, ev.Steps, ev.Instruction)
			return
		}
		switch {
		case ev.Err != nil:
		case ev.Cached && strings.HasPrefix(ev.Instruction, "FROM "):
		case ev.Cached:
			fmt.Fprintf(p.w, "--> Using cache %s\n", ev.Image.Encoded()[:12])
		default:
			fmt.Fprintf(p.w, "--> %s (%.2fs)\n", ev.Image.Encoded()[:12], ev.Duration.Seconds())
		}
	case "tty":
		line := fmt.Sprintf(" => [%s %d/%d] %s", ev.Stage, ev.Step, ev.Steps, oneLine(ev.Instruction, 60))
		if !ev.Done {
			p.running = line
			fmt.Fprintf(p.w, "\r\x1b[K%s  %5.1fs", line, time.Since(p.started).Seconds())
			return
		}
		status := fmt.Sprintf("%5.2fs", ev.Duration.Seconds())
		if ev.Cached {
			status = "CACHED"
		}
		if ev.Err != nil {
			status = "ERROR"
		}
		fmt.Fprintf(p.w, "\r\x1b[K%s  %s\n", line, status)
		p.running = ""
	}
}

func (p *buildProgress) finish() {
	if p.mode == "tty" {
		fmt.Fprintf(p.w, "\r\x1b[K[+] Built in %.1fs\n", time.Since(p.started).Seconds())
	}
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n-1] + "…"
	}
	return s
}
