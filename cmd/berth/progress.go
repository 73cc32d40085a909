package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/berthproject/berth/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// reporter is how a pull or push shows itself: per-layer bars on a
// terminal, Docker's lines elsewhere, nothing with -q.
func (a *app) reporter(quiet, pushing bool) (registry.Reporter, func()) {
	if quiet {
		return nil, func() {}
	}
	f, ok := a.stdout.(*os.File)
	if !ok || !isTerminal(f) {
		return registry.Lines(a.stdout, pushing), func() {}
	}
	if w, _, err := term.GetSize(int(f.Fd())); err != nil || w < 40 {
		// A terminal of no size (script(1)) or too narrow for a bar.
		return registry.Lines(a.stdout, pushing), func() {}
	}
	b := &bars{out: a.stdout, p: mpb.New(mpb.WithOutput(a.stdout), mpb.WithWidth(40)), bars: map[string]*mpb.Bar{}, push: pushing}
	return b, func() {
		b.p.Wait()
		for _, l := range b.after {
			fmt.Fprintln(b.out, l)
		}
	}
}

// bars draws a bar per layer with mpb.
type bars struct {
	out  io.Writer
	p    *mpb.Progress
	mu   sync.Mutex
	bars map[string]*mpb.Bar
	push bool
	// after are the status lines that came once bars were drawn: they go
	// below the bars when all are done.
	after []string
}

func shortDigest(d ocispec.Descriptor) string {
	s := d.Digest.Encoded()
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}

func (b *bars) Status(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bars) == 0 {
		fmt.Fprintln(b.out, line)
		return
	}
	b.after = append(b.after, line)
}

func (b *bars) bar(layer ocispec.Descriptor) *mpb.Bar {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bar, ok := b.bars[layer.Digest.String()]; ok {
		return bar
	}
	verb, done := "Downloading", "Pull complete"
	if b.push {
		verb, done = "Pushing", "Pushed"
	}
	bar := b.p.AddBar(layer.Size,
		mpb.PrependDecorators(decor.Name(shortDigest(layer)+": ", decor.WCSyncSpaceR), decor.OnComplete(decor.Name(verb), done)),
		mpb.AppendDecorators(decor.OnComplete(decor.CountersKibiByte("% .1f / % .1f"), "")),
	)
	b.bars[layer.Digest.String()] = bar
	return bar
}

func (b *bars) Start(layer ocispec.Descriptor) { b.bar(layer) }

func (b *bars) Add(layer ocispec.Descriptor, n int64) { b.bar(layer).IncrInt64(n) }

func (b *bars) Done(layer ocispec.Descriptor, err error, skipped bool) {
	bar := b.bar(layer)
	switch {
	case err != nil:
		bar.Abort(false)
	case skipped:
		bar.SetTotal(layer.Size, false)
		bar.SetCurrent(layer.Size)
	default:
		bar.SetTotal(-1, true)
	}
}
