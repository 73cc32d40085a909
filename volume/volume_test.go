package volume

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/internal/atomicfile"
)

func openStore(t *testing.T) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

// noTemps fails the test if a temporary file of atomicfile is left anywhere
// under dir.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && atomicfile.IsTemp(d.Name()) {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

func TestOpenCreatesVolumesDir(t *testing.T) {
	root := filepath.Join(t.TempDir(), "deeper", "root")
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("volumes dir: %v, want a 0700 directory", fi.Mode())
	}
	// Opening again is fine.
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
}

func TestOpenFailsOnAFile(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "volumes"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root); err == nil {
		t.Fatal("Open over a file named volumes: no error")
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"ab", true},
		{"data", true},
		{"my-vol_1.2", true},
		{"0abc", true},
		{"A.", true},
		{"a--", true},
		{"", false},
		{"a", false}, // at least two characters
		{"-ab", false},
		{".ab", false},
		{"_ab", false},
		{"..", false},
		{"../x", false},
		{"a/b", false},
		{"/abs", false},
		{"a b", false},
		{"ab\n", false},
		{"ab:c", false},
		{"été", false},
		{"vol\x00x", false},
	}
	for _, tt := range tests {
		if got := ValidName(tt.name); got != tt.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

func TestCreate(t *testing.T) {
	s, root := openStore(t)
	before := time.Now().UTC().Add(-time.Second)
	labels := map[string]string{"team": "platform", "tier": "db"}
	v, err := s.Create("data", labels, false)
	if err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(root, "volumes", "data", "_data")
	want := Volume{Name: "data", Driver: "local", Mountpoint: mp, Labels: labels, Options: map[string]string{}, Scope: "local"}
	got := *v
	got.CreatedAt = time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Create = %+v\nwant     %+v", got, want)
	}
	if v.CreatedAt.Before(before) || v.CreatedAt.After(time.Now().Add(time.Second)) || v.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt %v: not now, in UTC", v.CreatedAt)
	}
	fi, err := os.Stat(mp)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Fatalf("_data: %v %v, want a 0755 directory", fi, err)
	}
	info := filepath.Join(root, "volumes", "data", "volume.json")
	fi, err = os.Stat(info)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("volume.json mode %v, want 0600", fi.Mode().Perm())
	}
	noTemps(t, root)

	// What is on disk is what Get returns.
	g, err := s.Get("data")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.Labels, labels) || !g.CreatedAt.Equal(v.CreatedAt) || g.Mountpoint != mp || g.Driver != "local" || g.Scope != "local" {
		t.Fatalf("Get = %+v, want %+v", g, v)
	}
}

func TestCreateWritesDockerShapedJSON(t *testing.T) {
	s, root := openStore(t)
	if _, err := s.Create("cfg", map[string]string{"a": "b"}, true); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "volumes", "cfg", "volume.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("volume.json is not JSON: %v\n%s", err, b)
	}
	for _, k := range []string{"Name", "Driver", "Mountpoint", "CreatedAt", "Labels", "Options", "Scope", "Anonymous"} {
		if _, ok := m[k]; !ok {
			t.Errorf("volume.json has no %s: %s", k, b)
		}
	}
	if _, ok := m["Initialized"]; ok {
		t.Errorf("volume.json of a new volume records Initialized: %s", b)
	}
	if m["Anonymous"] != true || m["Name"] != "cfg" {
		t.Errorf("volume.json: %s", b)
	}
	if l, ok := m["Labels"].(map[string]any); !ok || l["a"] != "b" {
		t.Errorf("Labels in volume.json: %s", b)
	}
}

func TestCreateNilLabelsAreEmpty(t *testing.T) {
	s, _ := openStore(t)
	v, err := s.Create("nolabels", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if v.Labels == nil || len(v.Labels) != 0 || v.Options == nil || len(v.Options) != 0 {
		t.Fatalf("Labels %#v Options %#v, want empty non-nil maps", v.Labels, v.Options)
	}
	g, err := s.Get("nolabels")
	if err != nil {
		t.Fatal(err)
	}
	if g.Labels == nil || g.Options == nil {
		t.Fatalf("after a round trip: Labels %#v Options %#v, want {} (Docker prints {} not null)", g.Labels, g.Options)
	}
}

func TestCreateAnonymous(t *testing.T) {
	tests := []struct {
		desc      string
		name      string
		anonymous bool
		want      bool
	}{
		{"named", "named", false, false},
		{"named but anonymous", "forimage", true, true},
		{"no name is anonymous", "", false, true},
		{"no name, anonymous", "", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			s, _ := openStore(t)
			v, err := s.Create(tt.name, nil, tt.anonymous)
			if err != nil {
				t.Fatal(err)
			}
			if v.Anonymous != tt.want {
				t.Errorf("Anonymous = %v, want %v", v.Anonymous, tt.want)
			}
			if tt.name == "" {
				if len(v.Name) != 64 {
					t.Errorf("random name %q: want 64 hex digits", v.Name)
				}
				if _, err := hex.DecodeString(v.Name); err != nil {
					t.Errorf("random name %q: %v", v.Name, err)
				}
			} else if v.Name != tt.name {
				t.Errorf("Name = %q, want %q", v.Name, tt.name)
			}
			g, err := s.Get(v.Name)
			if err != nil {
				t.Fatal(err)
			}
			if g.Anonymous != tt.want {
				t.Errorf("persisted Anonymous = %v, want %v", g.Anonymous, tt.want)
			}
		})
	}
}

func TestCreateRandomNamesDiffer(t *testing.T) {
	s, _ := openStore(t)
	a, err := s.Create("", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Create("", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name == b.Name {
		t.Fatalf("two anonymous volumes named %s", a.Name)
	}
	l, err := s.List()
	if err != nil || len(l) != 2 {
		t.Fatalf("List = %d volumes, %v; want 2", len(l), err)
	}
}

func TestCreateInvalidName(t *testing.T) {
	s, root := openStore(t)
	for _, name := range []string{"a", "../escape", "a/b", ".hidden", "-x", "with space", "/abs"} {
		_, err := s.Create(name, nil, false)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Create(%q) = %v, want ErrInvalidArgument", name, err)
		}
	}
	// Nothing was made, inside the store or next to it.
	ents, _ := os.ReadDir(filepath.Join(root, "volumes"))
	for _, e := range ents {
		if e.Name() != ".lock" {
			t.Errorf("left in volumes/: %s", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(root, "escape")); err == nil {
		t.Error("Create(../escape) made a directory outside the store")
	}
}

func TestCreateExistingReturnsIt(t *testing.T) {
	s, _ := openStore(t)
	first, err := s.Create("dup", map[string]string{"v": "1"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(first.Mountpoint, "keep"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	// As Docker does: the second create is the first volume, its labels and
	// flags unchanged, its content kept.
	second, err := s.Create("dup", map[string]string{"v": "2"}, true)
	if err != nil {
		t.Fatalf("Create of an existing volume: %v, want it returned", err)
	}
	if !second.CreatedAt.Equal(first.CreatedAt) || second.Labels["v"] != "1" || second.Anonymous {
		t.Fatalf("second Create = %+v, want the first volume %+v", second, first)
	}
	if b, err := os.ReadFile(filepath.Join(second.Mountpoint, "keep")); err != nil || string(b) != "data" {
		t.Fatalf("content after a second Create: %q %v", b, err)
	}
	g, _ := s.Get("dup")
	if g.Labels["v"] != "1" {
		t.Errorf("labels on disk after a second Create: %v", g.Labels)
	}
}

func TestCreateCompletesAHalfMadeVolume(t *testing.T) {
	// A process killed between mkdir and the write of volume.json leaves a
	// directory that is no volume; creating it again makes it one.
	s, root := openStore(t)
	if err := os.MkdirAll(filepath.Join(root, "volumes", "half", "_data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("half"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get of a volume without volume.json: %v, want ErrNotFound", err)
	}
	if l, _ := s.List(); len(l) != 0 {
		t.Fatalf("List shows a half-made volume: %+v", l)
	}
	if _, err := s.Create("half", nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("half"); err != nil {
		t.Fatal(err)
	}
}

func TestCreateDoesNotOverwriteCorruptMetadata(t *testing.T) {
	s, root := openStore(t)
	if _, err := s.Create("broken", map[string]string{"k": "v"}, false); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkInitialized("broken"); err != nil {
		t.Fatal(err)
	}
	info := filepath.Join(root, "volumes", "broken", "volume.json")
	if err := os.WriteFile(info, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create("broken", nil, false); !errors.Is(err, errdefs.ErrDataLoss) {
		t.Errorf("Create over a corrupt volume.json = %v, want ErrDataLoss", err)
	}
	if b, _ := os.ReadFile(info); string(b) != "{not json" {
		t.Errorf("corrupt volume.json was replaced by %s", b)
	}
}

func TestConcurrentCreateOfOneName(t *testing.T) {
	s, root := openStore(t)
	const n = 16
	var wg sync.WaitGroup
	vols := make([]*Volume, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each its own Store, as separate CLI processes would have.
			st, err := Open(root)
			if err != nil {
				errs[i] = err
				return
			}
			vols[i], errs[i] = st.Create("shared", map[string]string{"i": string(rune('a' + i))}, false)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Create %d: %v", i, errs[i])
		}
		if !vols[i].CreatedAt.Equal(vols[0].CreatedAt) || vols[i].Labels["i"] != vols[0].Labels["i"] {
			t.Fatalf("concurrent Creates made different volumes: %+v and %+v", vols[0], vols[i])
		}
	}
	g, err := s.Get("shared")
	if err != nil {
		t.Fatal(err)
	}
	if g.Labels["i"] != vols[0].Labels["i"] {
		t.Fatalf("on disk %v, returned %v", g.Labels, vols[0].Labels)
	}
	noTemps(t, root)
}

func TestGet(t *testing.T) {
	s, root := openStore(t)
	if _, err := s.Create("present", nil, false); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "volumes", "corrupt"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "volumes", "corrupt", "volume.json"), []byte(`{"Name": "corr`), 0o600); err != nil {
		t.Fatal(err)
	}
	// A volume.json outside the store must never be reachable by name.
	if err := os.MkdirAll(filepath.Join(root, "outside"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "outside", "volume.json"), []byte(`{"Name":"outside"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want error
	}{
		{"present", nil},
		{"absent", errdefs.ErrNotFound},
		{"x", errdefs.ErrNotFound},
		{"../outside", errdefs.ErrNotFound},
		{"..", errdefs.ErrNotFound},
		{"", errdefs.ErrNotFound},
		{".lock", errdefs.ErrNotFound},
		{"corrupt", errdefs.ErrDataLoss},
	}
	for _, tt := range tests {
		v, err := s.Get(tt.name)
		if tt.want == nil {
			if err != nil || v == nil || v.Name != tt.name {
				t.Errorf("Get(%q) = %+v, %v", tt.name, v, err)
			}
			continue
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("Get(%q) = %+v, %v; want %v", tt.name, v, err, tt.want)
		}
		if errors.Is(err, errdefs.ErrNotFound) && err.Error() != "no such volume: "+tt.name+": not found" {
			t.Errorf("Get(%q) error %q: want Docker's \"no such volume\"", tt.name, err)
		}
	}
}

func TestMountpointFollowsTheStore(t *testing.T) {
	// Mountpoint is derived from where the store is, never read back from
	// volume.json: a moved root, or an edited file, cannot point a container
	// at another directory.
	s, root := openStore(t)
	if _, err := s.Create("moved", nil, false); err != nil {
		t.Fatal(err)
	}
	info := filepath.Join(root, "volumes", "moved", "volume.json")
	b, _ := os.ReadFile(info)
	var m map[string]any
	json.Unmarshal(b, &m)
	m["Mountpoint"] = "/etc"
	b, _ = json.Marshal(m)
	if err := os.WriteFile(info, b, 0o600); err != nil {
		t.Fatal(err)
	}
	newRoot := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Rename(root, newRoot); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(newRoot)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s2.Get("moved")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(newRoot, "volumes", "moved", "_data"); v.Mountpoint != want {
		t.Fatalf("Mountpoint %s, want %s", v.Mountpoint, want)
	}
	l, _ := s2.List()
	if len(l) != 1 || l[0].Mountpoint != v.Mountpoint {
		t.Fatalf("List: %+v", l)
	}
}

func TestList(t *testing.T) {
	s, root := openStore(t)
	if l, err := s.List(); err != nil || len(l) != 0 {
		t.Fatalf("List of an empty store = %+v, %v", l, err)
	}
	for _, n := range []string{"zeta", "alpha", "Mid", "beta"} {
		if _, err := s.Create(n, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	vd := filepath.Join(root, "volumes")
	// Debris that is no volume: a half-made one, a corrupt one, a dot
	// directory, a stray file, a leftover temporary file.
	os.MkdirAll(filepath.Join(vd, "halfmade", "_data"), 0o755)
	os.MkdirAll(filepath.Join(vd, "corrupt"), 0o755)
	os.WriteFile(filepath.Join(vd, "corrupt", "volume.json"), []byte("garbage"), 0o600)
	os.MkdirAll(filepath.Join(vd, ".trash"), 0o755)
	os.WriteFile(filepath.Join(vd, ".trash", "volume.json"), []byte(`{"Name":".trash"}`), 0o600)
	os.WriteFile(filepath.Join(vd, "strayfile"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(vd, "beta", ".volume.json.tmp-123"), []byte("half"), 0o600)

	l, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range l {
		names = append(names, v.Name)
		if v.Mountpoint != filepath.Join(vd, v.Name, "_data") {
			t.Errorf("%s: Mountpoint %s", v.Name, v.Mountpoint)
		}
	}
	if want := []string{"Mid", "alpha", "beta", "zeta"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("List = %v, want %v (sorted, debris skipped)", names, want)
	}
}

func TestListWithoutVolumesDir(t *testing.T) {
	s, root := openStore(t)
	if err := os.RemoveAll(filepath.Join(root, "volumes")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(); err == nil {
		t.Fatal("List with the store directory gone: no error")
	}
}

func TestRemove(t *testing.T) {
	s, root := openStore(t)
	v, err := s.Create("gone", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(v.Mountpoint, "sub", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.Mountpoint, "sub", "deeper", "f"), []byte("x"), 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create("stays", nil, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "volumes", "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the volume's directory is still there: %v", err)
	}
	if _, err := s.Get("gone"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get after Remove: %v, want ErrNotFound", err)
	}
	if l, _ := s.List(); len(l) != 1 || l[0].Name != "stays" {
		t.Fatalf("List after Remove: %+v", l)
	}
	// Removing again is not found; and the name can be used again.
	if err := s.Remove("gone"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second Remove: %v, want ErrNotFound", err)
	}
	v2, err := s.Create("gone", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(v2.Mountpoint); len(ents) != 0 {
		t.Fatalf("a re-created volume has old content: %v", ents)
	}
}

func TestRemoveRefusesWhatIsNoVolume(t *testing.T) {
	s, root := openStore(t)
	// A directory next to the store that a path-like name would reach.
	victim := filepath.Join(root, "victim")
	os.MkdirAll(victim, 0o700)
	os.WriteFile(filepath.Join(victim, "volume.json"), []byte(`{"Name":"victim"}`), 0o600)
	os.MkdirAll(filepath.Join(root, "volumes", "halfmade", "_data"), 0o755)
	tests := []struct {
		name string
		want error
	}{
		{"absent", errdefs.ErrNotFound},
		{"../victim", errdefs.ErrNotFound},
		{"..", errdefs.ErrNotFound},
		{"", errdefs.ErrNotFound},
		{"halfmade", errdefs.ErrNotFound},
	}
	for _, tt := range tests {
		if err := s.Remove(tt.name); !errors.Is(err, tt.want) {
			t.Errorf("Remove(%q) = %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(victim, "volume.json")); err != nil {
		t.Errorf("Remove reached outside the store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "volumes")); err != nil {
		t.Errorf("Remove took the store: %v", err)
	}
}

func TestMarkInitialized(t *testing.T) {
	s, root := openStore(t)
	if _, err := s.Create("fresh", map[string]string{"k": "v"}, true); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get("fresh"); v.Initialized {
		t.Fatal("a new volume is Initialized")
	}
	if err := s.MarkInitialized("fresh"); err != nil {
		t.Fatal(err)
	}
	v, err := s.Get("fresh")
	if err != nil {
		t.Fatal(err)
	}
	// Only the flag changes.
	if !v.Initialized || !v.Anonymous || v.Labels["k"] != "v" {
		t.Fatalf("after MarkInitialized: %+v", v)
	}
	// A store opened afresh (another process) sees it.
	s2, _ := Open(root)
	if v, _ := s2.Get("fresh"); !v.Initialized {
		t.Fatal("Initialized not persisted")
	}
	// Twice is fine and does not rewrite the record.
	info := filepath.Join(root, "volumes", "fresh", "volume.json")
	old := time.Unix(1_000_000, 0)
	os.Chtimes(info, old, old)
	if err := s.MarkInitialized("fresh"); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(info); !fi.ModTime().Equal(old) {
		t.Errorf("second MarkInitialized rewrote volume.json")
	}
	if err := s.MarkInitialized("nosuch"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("MarkInitialized(nosuch) = %v, want ErrNotFound", err)
	}
	if err := s.MarkInitialized("../x"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("MarkInitialized(../x) = %v, want ErrNotFound", err)
	}
	noTemps(t, root)
}

func TestSize(t *testing.T) {
	s, _ := openStore(t)
	v, err := s.Create("sized", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Size("sized"); n != 0 {
		t.Fatalf("Size of an empty volume = %d", n)
	}
	files := map[string]int{"a": 10, "sub/b": 100, "sub/deeper/c": 1000}
	for p, n := range files {
		p = filepath.Join(v.Mountpoint, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Symlinks are not followed or counted; directories count nothing.
	os.Symlink("/etc/passwd", filepath.Join(v.Mountpoint, "link"))
	os.Symlink(filepath.Join(v.Mountpoint, "sub"), filepath.Join(v.Mountpoint, "dirlink"))
	if n := s.Size("sized"); n != 1110 {
		t.Fatalf("Size = %d, want 1110", n)
	}
	if n := s.Size("nosuch"); n != 0 {
		t.Fatalf("Size of a missing volume = %d, want 0", n)
	}
}
