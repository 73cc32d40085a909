package container

import (
	"context"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Filter selects containers as docker ps --filter does.
type Filter struct {
	IDs, Names, Labels, Statuses, Ancestors []string
	Exited                                  []int
	Before, Since                           []string
	// Running keeps only running (and paused) containers: ps without -a.
	Running bool
}

// ParseFilters reads --filter KEY=VALUE arguments.
func ParseFilters(args []string) (Filter, error) {
	var f Filter
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return f, invalid("bad filter %q: want KEY=VALUE", a)
		}
		switch k {
		case "id":
			f.IDs = append(f.IDs, v)
		case "name":
			if _, err := regexp.Compile(v); err != nil {
				return f, invalid("bad filter %q: %v", a, err)
			}
			f.Names = append(f.Names, v)
		case "label":
			f.Labels = append(f.Labels, v)
		case "status":
			switch Status(v) {
			case StatusCreated, StatusRunning, StatusPaused, StatusExited, StatusRemoving, StatusDead, "restarting":
			default:
				return f, invalid("bad filter %q: status is created, running, paused, exited, restarting, removing or dead", a)
			}
			f.Statuses = append(f.Statuses, v)
		case "ancestor":
			f.Ancestors = append(f.Ancestors, v)
		case "exited":
			n, err := strconv.Atoi(v)
			if err != nil {
				return f, invalid("bad filter %q: exited takes an exit code", a)
			}
			f.Exited = append(f.Exited, n)
		case "before":
			f.Before = append(f.Before, v)
		case "since":
			f.Since = append(f.Since, v)
		default:
			return f, invalid("bad filter %q: unknown key %q (id, name, label, status, ancestor, exited, before, since)", a, k)
		}
	}
	return f, nil
}

// HasStatus: the filter names statuses itself (so ps shows stopped ones).
func (f Filter) HasStatus() bool { return len(f.Statuses) > 0 || len(f.Exited) > 0 }

// Select returns the containers (newest first, as List gives them) that
// pass the filter.
func (f Filter) Select(cs []*Container) []*Container {
	byRef := func(ref string) *Container {
		for _, c := range cs {
			if c.Name == ref || strings.HasPrefix(c.ID, ref) {
				return c
			}
		}
		return nil
	}
	var out []*Container
next:
	for _, c := range cs {
		running := c.State.Status == StatusRunning || c.State.Status == StatusPaused
		if f.Running && !running {
			continue
		}
		if len(f.IDs) > 0 && !anyMatch(f.IDs, func(v string) bool { return strings.HasPrefix(c.ID, v) }) {
			continue
		}
		if len(f.Names) > 0 && !anyMatch(f.Names, func(v string) bool { return matchName(v, c.Name) }) {
			continue
		}
		for _, l := range f.Labels {
			k, v, hasV := strings.Cut(l, "=")
			got, ok := c.Config.Labels[k]
			if !ok || hasV && got != v {
				continue next
			}
		}
		if len(f.Statuses) > 0 && !anyMatch(f.Statuses, func(v string) bool { return string(c.State.Status) == v }) {
			continue
		}
		if len(f.Exited) > 0 && (c.State.Status != StatusExited || !anyInt(f.Exited, c.State.ExitCode)) {
			continue
		}
		if len(f.Ancestors) > 0 && !anyMatch(f.Ancestors, func(v string) bool {
			if ok, _ := path.Match(v, c.Image); ok || c.Image == v || c.ImageID != "" && strings.HasPrefix(c.ImageID.String(), "sha256:"+strings.TrimPrefix(v, "sha256:")) {
				return true
			}
			if !strings.Contains(v, ":") && strings.HasPrefix(c.Image, v+":") {
				return true
			}
			return false
		}) {
			continue
		}
		for _, b := range f.Before {
			if o := byRef(b); o == nil || !c.Created.Before(o.Created) {
				continue next
			}
		}
		for _, s := range f.Since {
			if o := byRef(s); o == nil || !c.Created.After(o.Created) {
				continue next
			}
		}
		out = append(out, c)
	}
	return out
}

// matchName is Docker's name filter: a regular expression searched for
// in the name.
func matchName(expr, name string) bool {
	re, err := regexp.Compile(expr)
	return err == nil && re.MatchString(name)
}

func anyMatch(list []string, fn func(string) bool) bool {
	for _, v := range list {
		if fn(v) {
			return true
		}
	}
	return false
}

func anyInt(list []int, n int) bool {
	for _, v := range list {
		if v == n {
			return true
		}
	}
	return false
}

// Size returns the bytes a container wrote (its read-write layer) and
// those plus its image's.
func (e *Engine) Size(ctx context.Context, c *Container) (rw, virtual int64) {
	if u, err := e.images.Snapshots().Usage(ctx, c.Snapshot); err == nil {
		rw = u.Size
	}
	virtual = rw
	if img, err := e.images.Get(ctx, c.ImageID.String()); err == nil {
		virtual += img.Size
	}
	return rw, virtual
}
