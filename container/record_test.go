package container

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
)

func newEngine(t *testing.T) *Engine {
	t.Helper()
	root, runRoot := t.TempDir(), t.TempDir()
	e, err := Open(Options{Root: root, RunRoot: runRoot})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(root, "containers", "names"), filepath.Join(runRoot, "containers")} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Fatalf("Open did not make %s", d)
		}
	}
	return e
}

// store writes c's record and reserves its name, as Create does.
func store(t *testing.T, e *Engine, c *Container) {
	t.Helper()
	if err := os.MkdirAll(e.dir(c.ID), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := e.write(c); err != nil {
		t.Fatal(err)
	}
	if c.Name != "" {
		if err := e.reserveName(c.Name, c.ID); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewID(t *testing.T) {
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	seen := map[string]bool{}
	for range 100 {
		id := newID()
		if !hex64.MatchString(id) || seen[id] {
			t.Fatalf("newID() = %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
	c := &Container{ID: "0123456789abcdef" + strings.Repeat("0", 48)}
	if c.Short() != "0123456789ab" {
		t.Errorf("Short() = %q", c.Short())
	}
}

func TestNotFoundError(t *testing.T) {
	var err error = &NotFoundError{Ref: "web"}
	if err.Error() != "no such container: web" || !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("%v: is not found %v", err, errors.Is(err, errdefs.ErrNotFound))
	}
	if err := notRunning(&Container{Name: "web"}); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "container web is not running") {
		t.Errorf("notRunning: %v", err)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	e := newEngine(t)
	timeout := 5
	c := &Container{
		ID: newID(), Name: "web", Created: time.Date(2025, 3, 1, 12, 0, 0, 42, time.UTC), Image: "nginx:1.25",
		ImageID: digest.FromString("image"),
		Config: Config{Hostname: "web", Env: []string{"A=1"}, Cmd: []string{"nginx"}, Labels: map[string]string{"app": "web"},
			StopTimeout: &timeout, Volumes: map[string]struct{}{"/data": {}}},
		HostConfig: HostConfig{Memory: 1 << 30, Ulimits: []Ulimit{{"nofile", 1, 2}}, Tmpfs: map[string]string{"/run": "size=1m"},
			LogConfig: LogConfig{Type: "json-file", Config: map[string]string{"max-file": "2"}}},
		Mounts: []Mount{{Type: "volume", Name: "data", Source: "/v/data", Destination: "/data", RW: true}},
		State:  State{Status: StatusExited, ExitCode: 3, FinishedAt: time.Date(2025, 3, 1, 12, 1, 0, 0, time.UTC)},
		Path:   "nginx", Args: []string{"-g", "daemon off;"}, Snapshot: "container-x", RestartCount: 1,
	}
	c.HostConfig.RestartPolicy.Name = "no"
	store(t, e, c)
	got, err := e.read(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(c)
	b, _ := json.Marshal(got)
	if string(a) != string(b) {
		t.Errorf("read back\n%s\nwrote\n%s", b, a)
	}
	if fi, _ := os.Stat(e.recordPath(c.ID)); fi.Mode().Perm() != 0o600 {
		t.Errorf("record mode %v", fi.Mode().Perm())
	}
	// Docker's field names, so that --format templates and tools work.
	var raw map[string]any
	json.Unmarshal(a, &raw)
	for _, k := range []string{"Id", "Name", "Created", "Config", "HostConfig", "State", "Mounts"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("record has no %q", k)
		}
	}
}

func TestReadErrors(t *testing.T) {
	e := newEngine(t)
	id := newID()
	_, err := e.read(id)
	var nf *NotFoundError
	if !errors.As(err, &nf) || nf.Ref != id || !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing record: %v", err)
	}
	os.MkdirAll(e.dir(id), 0o700)
	os.WriteFile(e.recordPath(id), []byte(`{"Id": "trunc`), 0o600)
	if _, err := e.read(id); !errors.Is(err, errdefs.ErrDataLoss) || !strings.Contains(err.Error(), "record is damaged") {
		t.Errorf("damaged record: %v", err)
	}
}

func TestReserveName(t *testing.T) {
	e := newEngine(t)
	owner := &Container{ID: newID(), Name: "web"}
	store(t, e, owner)
	b, err := os.ReadFile(filepath.Join(e.namesDir(), "web"))
	if err != nil || string(b) != owner.ID {
		t.Fatalf("names/web = %q, %v", b, err)
	}

	other := newID()
	err = e.reserveName("web", other)
	checkErr(t, err, `the container name "web" is already in use by container `+owner.ID[:12], errdefs.ErrConflict)

	checkErr(t, e.reserveName("-web", other), `invalid container name "-web"`, errdefs.ErrInvalidArgument)
	checkErr(t, e.reserveName("a/b", other), "invalid container name", errdefs.ErrInvalidArgument)

	// A name whose owner's record is gone (a removal interrupted) is taken over.
	os.WriteFile(filepath.Join(e.namesDir(), "stale"), []byte(newID()), 0o600)
	if err := e.reserveName("stale", other); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(e.namesDir(), "stale")); string(b) != other {
		t.Errorf("names/stale = %q, want %s", b, other)
	}

	// releaseName removes only a name the container holds.
	e.releaseName("web", other)
	if _, err := os.Stat(filepath.Join(e.namesDir(), "web")); err != nil {
		t.Error("releaseName removed a name another container holds")
	}
	e.releaseName("web", owner.ID)
	if _, err := os.Stat(filepath.Join(e.namesDir(), "web")); err == nil {
		t.Error("releaseName left the owner's name")
	}
	if err := e.reserveName("web", other); err != nil {
		t.Errorf("reserve a released name: %v", err)
	}
}

func TestResolve(t *testing.T) {
	e := newEngine(t)
	a := &Container{ID: "abc1" + strings.Repeat("1", 60), Name: "web"}
	b := &Container{ID: "abc2" + strings.Repeat("2", 60), Name: "db"}
	// A name that looks like an ID prefix of another container.
	c := &Container{ID: "fed0" + strings.Repeat("3", 60), Name: "abc2"}
	for _, x := range []*Container{a, b, c} {
		store(t, e, x)
	}
	// A directory without a record (half created) is not a match.
	os.MkdirAll(e.dir("abc3"+strings.Repeat("4", 60)), 0o700)

	tests := []struct {
		ref, want string
		err       string
		kind      error
	}{
		{ref: "web", want: a.ID},
		{ref: "/web", want: a.ID},
		{ref: a.ID, want: a.ID},
		{ref: "abc1", want: a.ID},
		{ref: "abc2", want: c.ID}, // a name wins over an ID prefix, as in Docker
		{ref: "fed", want: c.ID},
		{ref: "abc3", err: "no such container: abc3", kind: errdefs.ErrNotFound},
		{ref: "abc", err: `container ID prefix "abc" is ambiguous`, kind: errdefs.ErrInvalidArgument},
		{ref: "nosuch", err: "no such container: nosuch", kind: errdefs.ErrNotFound},
		{ref: "ABC1", err: "no such container", kind: errdefs.ErrNotFound},
		{ref: "", err: "empty container name", kind: errdefs.ErrInvalidArgument},
		{ref: "/", err: "empty container name", kind: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			got, err := e.resolve(tt.ref)
			checkErr(t, err, tt.err, tt.kind)
			if err == nil && got != tt.want {
				t.Errorf("resolve(%q) = %s, want %s", tt.ref, got, tt.want)
			}
		})
	}
}

// List and Get over records that are not running (reconcile leaves them
// as they are).
func TestListGet(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	img1, img2 := digest.FromString("one"), digest.FromString("two")
	cs := []*Container{
		{ID: newID(), Name: "old", Created: t0, ImageID: img1, State: State{Status: StatusExited},
			Mounts: []Mount{{Type: "volume", Name: "data", Destination: "/data"}, {Type: "volume", Name: "data", Destination: "/again"}}},
		{ID: newID(), Name: "new", Created: t0.Add(2 * time.Hour), ImageID: img1, State: State{Status: StatusCreated},
			Mounts: []Mount{{Type: "bind", Name: "data", Source: "/data", Destination: "/data"}}},
		{ID: newID(), Name: "mid", Created: t0.Add(time.Hour), ImageID: img2, State: State{Status: StatusDead},
			Mounts: []Mount{{Type: "volume", Name: "cache", Destination: "/cache"}}},
	}
	for _, c := range cs {
		store(t, e, c)
	}
	// Damaged and half-made records are skipped.
	bad := newID()
	os.MkdirAll(e.dir(bad), 0o700)
	os.WriteFile(e.recordPath(bad), []byte("{"), 0o600)
	os.MkdirAll(e.dir(newID()), 0o700)

	list, err := e.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range list {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"new", "mid", "old"}) {
		t.Errorf("List = %q, want newest first", names)
	}

	for _, ref := range []string{"mid", cs[2].ID[:8]} {
		c, err := e.Get(ctx, ref)
		if err != nil || c.ID != cs[2].ID || c.State.Status != StatusDead {
			t.Errorf("Get(%q) = %+v, %v", ref, c, err)
		}
	}
	if _, err := e.Get(ctx, "nosuch"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get(nosuch): %v", err)
	}

	users, err := e.ImageUsers(ctx, img1)
	slices.Sort(users)
	want := []string{cs[0].Short(), cs[1].Short()}
	slices.Sort(want)
	if err != nil || !slices.Equal(users, want) {
		t.Errorf("ImageUsers = %q, %v; want %q", users, err, want)
	}
	// A bind named like the volume is no user of it; a container mounting it twice counts once.
	if users, err := e.VolumeUsers(ctx, "data"); err != nil || !slices.Equal(users, []string{cs[0].Short()}) {
		t.Errorf("VolumeUsers(data) = %q, %v", users, err)
	}
	if users, err := e.VolumeUsers(ctx, "nosuch"); err != nil || len(users) != 0 {
		t.Errorf("VolumeUsers(nosuch) = %q, %v", users, err)
	}
}
