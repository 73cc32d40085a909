package registry

import (
	"fmt"
	"io"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Reporter hears how a pull or push goes: status lines, and each layer's
// start, bytes and end. The CLI draws per-layer bars from it on a
// terminal; Lines prints Docker's lines elsewhere. Calls may come from
// several goroutines at once.
type Reporter interface {
	// Status is a line about the whole image ("Digest: ...").
	Status(line string)
	// Start: a layer's transfer begins (Total is desc.Size).
	Start(layer ocispec.Descriptor)
	// Add: n more bytes of the layer moved.
	Add(layer ocispec.Descriptor, n int64)
	// Done: the layer's transfer ended; Skipped when nothing had to move
	// (the registry had it, or the store did).
	Done(layer ocispec.Descriptor, err error, skipped bool)
}

// Lines reports as Docker does when not on a terminal: a line per event.
func Lines(w io.Writer, pushing bool) Reporter { return &lines{w: w, push: pushing} }

type lines struct {
	mu   sync.Mutex
	w    io.Writer
	push bool
}

func (l *lines) say(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format+"\n", a...)
}

func (l *lines) Status(line string)                    { l.say("%s", line) }
func (l *lines) Add(layer ocispec.Descriptor, n int64) {}
func (l *lines) Start(layer ocispec.Descriptor) {
	if l.push {
		l.say("%s: Pushing", short(layer.Digest))
	} else {
		l.say("%s: Pulling fs layer", short(layer.Digest))
	}
}
func (l *lines) Done(layer ocispec.Descriptor, err error, skipped bool) {
	switch {
	case err != nil:
		l.say("%s: %v", short(layer.Digest), err)
	case skipped && l.push:
		l.say("%s: Layer already exists", short(layer.Digest))
	case skipped:
		l.say("%s: Already exists", short(layer.Digest))
	case l.push:
		l.say("%s: Pushed", short(layer.Digest))
	default:
		l.say("%s: Pull complete", short(layer.Digest))
	}
}

// quiet is the Reporter of nothing.
type quiet struct{}

func (quiet) Status(string)                        {}
func (quiet) Start(ocispec.Descriptor)             {}
func (quiet) Add(ocispec.Descriptor, int64)        {}
func (quiet) Done(ocispec.Descriptor, error, bool) {}

// counting reports the bytes read through it.
type counting struct {
	io.ReadCloser
	rep  Reporter
	desc ocispec.Descriptor
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if n > 0 {
		c.rep.Add(c.desc, int64(n))
	}
	return n, err
}
