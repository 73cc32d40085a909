package container

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

func TestNameLists(t *testing.T) {
	word := regexp.MustCompile(`^[a-z]+$`)
	for list, words := range map[string][]string{"adjectives": nameAdjectives, "nouns": nameNouns} {
		seen := map[string]bool{}
		for _, w := range words {
			if !word.MatchString(w) {
				t.Errorf("%s: %q is not a lower-case word", list, w)
			}
			if seen[w] {
				t.Errorf("%s: %q twice", list, w)
			}
			seen[w] = true
		}
		if len(words) < 20 {
			t.Errorf("%s: only %d words", list, len(words))
		}
	}
}

func newNameEngine(t *testing.T) *Engine {
	t.Helper()
	e := &Engine{root: t.TempDir()}
	if err := os.MkdirAll(e.namesDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	return e
}

var generatedName = regexp.MustCompile(`^([a-z]+)_([a-z]+)(_[0-9a-f]{4})?$`)

// checkGenerated fails unless name is adjective_noun, with the 4-hex
// suffix only when suffixed.
func checkGenerated(t *testing.T, name string, suffixed bool) {
	t.Helper()
	m := generatedName.FindStringSubmatch(name)
	if m == nil || !slices.Contains(nameAdjectives, m[1]) || !slices.Contains(nameNouns, m[2]) || (m[3] != "") != suffixed {
		t.Errorf("generated name %q is not adjective_noun (suffixed: %v)", name, suffixed)
	}
	if !validName.MatchString(name) {
		t.Errorf("generated name %q is not a valid container name", name)
	}
}

func TestFreeNameShape(t *testing.T) {
	e := newNameEngine(t)
	seen := map[string]bool{}
	for range 200 {
		name := e.freeName()
		checkGenerated(t, name, false)
		seen[name] = true
	}
	if len(seen) < 100 {
		t.Errorf("200 names, only %d different: not random enough", len(seen))
	}
}

func takeAllNames(t *testing.T, e *Engine, except string) {
	t.Helper()
	for _, a := range nameAdjectives {
		for _, n := range nameNouns {
			if name := a + "_" + n; name != except {
				if err := os.WriteFile(filepath.Join(e.namesDir(), name), []byte(newID()), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// With every adjective_noun taken, freeName still finds one: it adds a
// random suffix after 20 tries.
func TestFreeNameAllTaken(t *testing.T) {
	e := newNameEngine(t)
	takeAllNames(t, e, "")
	for range 20 {
		name := e.freeName()
		checkGenerated(t, name, true)
		if _, err := os.Stat(filepath.Join(e.namesDir(), name)); err == nil {
			t.Errorf("freeName returned %q, which is taken", name)
		}
	}
}

// With one adjective_noun free, freeName returns it or a suffixed name,
// never a taken one.
func TestFreeNameAvoidsTaken(t *testing.T) {
	e := newNameEngine(t)
	const free = "calm_harbour"
	takeAllNames(t, e, free)
	for range 50 {
		name := e.freeName()
		if name == free {
			continue
		}
		checkGenerated(t, name, true)
	}
}

// A name freeName gives can be reserved.
func TestFreeNameReserve(t *testing.T) {
	e := newNameEngine(t)
	name := e.freeName()
	if err := e.reserveName(name, newID()); err != nil {
		t.Fatalf("reserve %q: %v", name, err)
	}
}
