package build

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/berthproject/berth/errdefs"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// SyntaxError is a Dockerfile that does not parse, with where.
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

func (e *SyntaxError) Unwrap() error { return errdefs.ErrInvalidArgument }

// dockerfile is a parsed Dockerfile.
type dockerfile struct {
	name     string
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
	escape   rune
}

// parseDockerfile parses with BuildKit's parser and instruction set, and
// turns its errors into one line with the file and line.
func parseDockerfile(name string, src []byte) (*dockerfile, error) {
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, syntaxError(name, err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, syntaxError(name, err)
	}
	if len(stages) == 0 {
		return nil, &SyntaxError{File: name, Msg: "the Dockerfile has no FROM instruction"}
	}
	for _, st := range stages {
		for _, c := range st.Commands {
			if err := checkSupported(c); err != nil {
				return nil, &SyntaxError{File: name, Line: line(c.Location()), Msg: err.Error()}
			}
		}
	}
	return &dockerfile{name: name, stages: stages, metaArgs: metaArgs, escape: res.EscapeToken}, nil
}

func line(r []parser.Range) int {
	if len(r) == 0 {
		return 0
	}
	return r[0].Start.Line
}

func syntaxError(name string, err error) error {
	e := &SyntaxError{File: name, Msg: err.Error()}
	var loc *parser.LocationError
	if errors.As(err, &loc) && len(loc.Locations) > 0 {
		e.Line = line(loc.Locations[0])
		e.Msg = loc.Unwrap().Error()
	}
	var unknown *instructions.UnknownInstructionError
	if errors.As(err, &unknown) {
		e.Line = unknown.Line
		e.Msg = fmt.Sprintf("unknown instruction: %s", strings.ToUpper(unknown.Instruction))
	}
	// BuildKit's messages carry the location again in front; one is enough.
	e.Msg = strings.TrimPrefix(e.Msg, "dockerfile parse error on line "+strconv.Itoa(e.Line)+": ")
	return e
}

// checkSupported refuses, at parse time, what berth does not build, so that
// a long build does not fail at its last step.
func checkSupported(c instructions.Command) error {
	switch c := c.(type) {
	case *instructions.CopyCommand:
		if c.Link {
			// --link only changes how BuildKit stores the layer; the
			// result is the same files.
			return nil
		}
		if c.Parents {
			return fmt.Errorf("COPY --parents is not supported")
		}
	}
	return nil
}

// stageIndex finds a stage by name (case-insensitive, as BuildKit) or by
// number; -1 when ref names no stage before limit.
func (d *dockerfile) stageIndex(ref string, limit int) int {
	if i, ok := instructions.HasStage(d.stages[:limit], ref); ok {
		return i
	}
	if n, err := strconv.Atoi(ref); err == nil && n >= 0 && n < limit {
		return n
	}
	return -1
}

// lexer expands words as BuildKit does, with the Dockerfile's escape.
func (d *dockerfile) lexer() *shell.Lex { return shell.NewLex(d.escape) }

// fromArgs resolves the ARGs declared before the first FROM: their
// defaults, overridden by --build-arg, each expanded with those before it.
func (d *dockerfile) fromArgs(buildArgs map[string]string) (map[string]string, error) {
	out := map[string]string{}
	lex := d.lexer()
	for _, a := range d.metaArgs {
		for _, kv := range a.Args {
			if v, ok := buildArgs[kv.Key]; ok {
				out[kv.Key] = v
				continue
			}
			if kv.Value == nil {
				continue
			}
			v, _, err := lex.ProcessWord(*kv.Value, shell.EnvsFromSlice(envList(out)))
			if err != nil {
				return nil, &SyntaxError{File: d.name, Line: line(a.Location()), Msg: err.Error()}
			}
			out[kv.Key] = v
		}
	}
	return out, nil
}

func envList(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// plan is the order stages are built in: every stage the target needs,
// each after those it needs.
type plan struct {
	order []int
	// bases[i] is the base name of stage i after expansion (an image
	// reference or a stage name).
	bases []string
}

// planStages expands every FROM, finds which stages the target needs
// (through FROM, COPY --from and RUN --mount from=) and orders them,
// refusing a dependency cycle or a reference to no stage.
func (d *dockerfile) planStages(target string, args map[string]string) (*plan, int, error) {
	lex := d.lexer()
	env := shell.EnvsFromSlice(envList(args))
	p := &plan{bases: make([]string, len(d.stages))}
	for i, st := range d.stages {
		b, _, err := lex.ProcessWord(st.BaseName, env)
		if err != nil {
			return nil, 0, &SyntaxError{File: d.name, Line: line(st.Location), Msg: err.Error()}
		}
		if b == "" {
			return nil, 0, &SyntaxError{File: d.name, Line: line(st.Location), Msg: fmt.Sprintf("FROM %s: the base image name is empty after expansion", st.BaseName)}
		}
		p.bases[i] = b
		if st.Platform != "" {
			if err := checkPlatform(lex, st.Platform, env); err != nil {
				return nil, 0, &SyntaxError{File: d.name, Line: line(st.Location), Msg: err.Error()}
			}
		}
	}
	last := len(d.stages) - 1
	if target != "" {
		last = -1
		for i, st := range d.stages {
			if strings.EqualFold(st.Name, target) {
				last = i
			}
		}
		if last < 0 {
			return nil, 0, fmt.Errorf("target stage %q could not be found in %s: %w", target, d.name, errdefs.ErrNotFound)
		}
	}
	deps := func(i int) []int {
		var out []int
		if j := d.stageIndex(p.bases[i], i); j >= 0 {
			out = append(out, j)
		}
		for _, c := range d.stages[i].Commands {
			for _, from := range stageRefs(c) {
				if j := d.stageIndexAny(expandQuiet(lex, from, env)); j >= 0 {
					out = append(out, j)
				}
			}
		}
		return out
	}
	const (
		unseen = iota
		visiting
		done
	)
	state := make([]int, len(d.stages))
	var visit func(i int, path []string) error
	visit = func(i int, path []string) error {
		switch state[i] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("%s: circular dependency between stages: %s: %w", d.name, strings.Join(append(path, d.stageName(i)), " → "), errdefs.ErrInvalidArgument)
		}
		state[i] = visiting
		for _, j := range deps(i) {
			if err := visit(j, append(path, d.stageName(i))); err != nil {
				return err
			}
		}
		state[i] = done
		p.order = append(p.order, i)
		return nil
	}
	if err := visit(last, nil); err != nil {
		return nil, 0, err
	}
	return p, last, nil
}

// stageIndexAny finds a stage by name anywhere in the file, or by number;
// COPY --from may name a stage defined after the one copying.
func (d *dockerfile) stageIndexAny(ref string) int {
	return d.stageIndex(ref, len(d.stages))
}

func (d *dockerfile) stageName(i int) string {
	if d.stages[i].Name != "" {
		return d.stages[i].Name
	}
	return "stage " + strconv.Itoa(i)
}

// stageRefs are the --from values of a command (before expansion); RUN
// --mount from= values are read from the raw flags, as mounts are only
// parsed at expansion.
func stageRefs(c instructions.Command) []string {
	switch c := c.(type) {
	case *instructions.CopyCommand:
		if c.From != "" {
			return []string{c.From}
		}
	case *instructions.RunCommand:
		var out []string
		for _, field := range strings.Fields(c.String()) {
			if !strings.HasPrefix(field, "--mount=") {
				continue
			}
			for _, kv := range strings.Split(strings.TrimPrefix(field, "--mount="), ",") {
				if k, v, ok := strings.Cut(kv, "="); ok && k == "from" {
					out = append(out, v)
				}
			}
		}
		return out
	}
	return nil
}

func expandQuiet(lex *shell.Lex, w string, env shell.EnvGetter) string {
	out, _, err := lex.ProcessWord(w, env)
	if err != nil {
		return w
	}
	return out
}
