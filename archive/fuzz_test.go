package archive

import (
	"bytes"
	"context"
	"strings"
	"testing"

	tu "github.com/berthproject/berth/internal/testutil"
)

// FuzzApply feeds arbitrary bytes to Apply as a layer: whatever they are,
// Apply must return (an error is fine) without touching anything outside
// the root. Seeds are the hostile shapes of TestBreakouts.
//
//	go test ./archive -run '^$' -fuzz FuzzApply -fuzztime 60s
func FuzzApply(f *testing.F) {
	seeds := [][]tu.Entry{
		{tu.Symlink("l", "/etc"), tu.File("l/x", "x")},
		{tu.Symlink("l", "../../../.."), tu.File("l/x", "x"), tu.Link("h", "l/x")},
		{tu.File("../../x", "x"), tu.File("/abs", "y")},
		{tu.Dir("d"), tu.File("d/.wh..wh..opq", ""), tu.File(".wh.d", ""), tu.File(".wh...", "")},
		{tu.Symlink("a", "b"), tu.Symlink("b", "a"), tu.File("a/x", "loop")},
		{tu.File("f", "x"), tu.Link("g", "f"), tu.Dir("f"), tu.Link("h", "g")},
		{tu.Symlink("o", "@SANDBOX@/outside"), tu.File("o/sentinel", "pwned"), tu.File("o/.wh.perm400", ""), tu.Link("s", "@SANDBOX@/secret")},
	}
	for _, s := range seeds {
		f.Add(tu.MakeTar(f, s...), false)
		f.Add(tu.MakeTar(f, s...), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, overlay bool) {
		s := newSandbox(t)
		before := s.outside(t)
		mode := WhiteoutDelete
		if overlay {
			mode = WhiteoutOverlay
		}
		// Hostile symlinks may also name the sandbox by its host path.
		data = bytes.ReplaceAll(data, []byte("@SANDBOX@"), []byte(s.dir))
		Apply(context.Background(), s.root, bytes.NewReader(data), Options{Whiteouts: mode, IgnoreOwner: true, MaxBytes: 1 << 20})
		if d := tu.DiffTrees(before, s.outside(t)); len(d) > 0 {
			t.Fatalf("the layer changed the host:\n%s", strings.Join(d, "\n"))
		}
	})
}
