package container

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
)

func TestParseFilters(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want Filter
		err  string
	}{
		{name: "none", want: Filter{}},
		{name: "every key", args: []string{"id=abc", "name=web", "label=app", "label=tier=front", "status=running", "ancestor=nginx", "exited=137", "before=db", "since=web"},
			want: Filter{IDs: []string{"abc"}, Names: []string{"web"}, Labels: []string{"app", "tier=front"}, Statuses: []string{"running"},
				Ancestors: []string{"nginx"}, Exited: []int{137}, Before: []string{"db"}, Since: []string{"web"}}},
		{name: "repeated keys accumulate", args: []string{"status=exited", "status=paused", "exited=0", "exited=-1", "name=a", "name=b"},
			want: Filter{Statuses: []string{"exited", "paused"}, Exited: []int{0, -1}, Names: []string{"a", "b"}}},
		{name: "every status", args: []string{"status=created", "status=running", "status=paused", "status=exited", "status=restarting", "status=removing", "status=dead"},
			want: Filter{Statuses: []string{"created", "running", "paused", "exited", "restarting", "removing", "dead"}}},
		{name: "empty value", args: []string{"name="}, want: Filter{Names: []string{""}}},

		{name: "no =", args: []string{"status"}, err: `bad filter "status": want KEY=VALUE`},
		{name: "unknown status", args: []string{"status=sleeping"}, err: `bad filter "status=sleeping": status is created`},
		{name: "status is case-sensitive", args: []string{"status=Running"}, err: "status is created"},
		{name: "exited not a number", args: []string{"exited=oom"}, err: `bad filter "exited=oom": exited takes an exit code`},
		{name: "unknown key", args: []string{"health=healthy"}, err: `unknown key "health"`},
		{name: "key is case-sensitive", args: []string{"Name=web"}, err: `unknown key "Name"`},
		{name: "bad one after good", args: []string{"name=web", "color=red"}, err: `unknown key "color"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFilters(tt.args)
			checkErr(t, err, tt.err, errdefs.ErrInvalidArgument)
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseFilters(%q)\n got %+v\nwant %+v", tt.args, got, tt.want)
			}
		})
	}
}

func TestFilterHasStatus(t *testing.T) {
	tests := []struct {
		f    Filter
		want bool
	}{
		{Filter{}, false},
		{Filter{Running: true, Names: []string{"x"}}, false},
		{Filter{Statuses: []string{"exited"}}, true},
		{Filter{Exited: []int{0}}, true},
	}
	for _, tt := range tests {
		if got := tt.f.HasStatus(); got != tt.want {
			t.Errorf("%+v.HasStatus() = %v, want %v", tt.f, got, tt.want)
		}
	}
}

// psContainers are containers as List gives them, newest first.
func psContainers() []*Container {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	mk := func(name, idPrefix string, age int, st Status, code int, image, imageHex string, labels map[string]string) *Container {
		return &Container{
			ID: idPrefix + strings.Repeat("0", 64-len(idPrefix)), Name: name, Created: t0.Add(time.Duration(age) * time.Minute),
			Image: image, ImageID: digest.Digest("sha256:" + imageHex + strings.Repeat("f", 64-len(imageHex))),
			Config: Config{Labels: labels}, State: State{Status: st, ExitCode: code},
		}
	}
	return []*Container{
		mk("fresh", "dddd", 4, StatusCreated, 0, "alpine:3", "4444", nil),
		mk("webcache", "cccc", 3, StatusPaused, 0, "nginx", "1111", map[string]string{}),
		mk("worker", "abcd", 2, StatusExited, 137, "busybox", "3333", map[string]string{"app": "worker", "tier": ""}),
		mk("db", "bbbb", 1, StatusExited, 0, "postgres:16", "2222", map[string]string{"app": "db"}),
		mk("web_1", "aaaa", 0, StatusRunning, 0, "nginx:1.25", "1111", map[string]string{"app": "web", "tier": "front"}),
	}
}

func TestFilterSelect(t *testing.T) {
	all := []string{"fresh", "webcache", "worker", "db", "web_1"}
	tests := []struct {
		name string
		f    Filter
		want []string
	}{
		{name: "no filter", f: Filter{}, want: all},
		{name: "running (ps without -a) keeps paused", f: Filter{Running: true}, want: []string{"webcache", "web_1"}},

		{name: "status exited", f: Filter{Statuses: []string{"exited"}}, want: []string{"worker", "db"}},
		{name: "status created", f: Filter{Statuses: []string{"created"}}, want: []string{"fresh"}},
		{name: "status running is not paused", f: Filter{Statuses: []string{"running"}}, want: []string{"web_1"}},
		{name: "statuses or", f: Filter{Statuses: []string{"running", "paused"}}, want: []string{"webcache", "web_1"}},
		{name: "status dead", f: Filter{Statuses: []string{"dead"}}, want: nil},

		{name: "exited 0", f: Filter{Exited: []int{0}}, want: []string{"db"}},
		{name: "exited 137", f: Filter{Exited: []int{137}}, want: []string{"worker"}},
		{name: "exited or", f: Filter{Exited: []int{0, 137}}, want: []string{"worker", "db"}},
		{name: "exited needs exited status", f: Filter{Exited: []int{0}, Statuses: []string{"running"}}, want: nil},
		{name: "exited with Running", f: Filter{Exited: []int{0}, Running: true}, want: nil},

		{name: "label key", f: Filter{Labels: []string{"app"}}, want: []string{"worker", "db", "web_1"}},
		{name: "label key with empty value", f: Filter{Labels: []string{"tier"}}, want: []string{"worker", "web_1"}},
		{name: "label key=value", f: Filter{Labels: []string{"app=web"}}, want: []string{"web_1"}},
		{name: "label key= matches empty value", f: Filter{Labels: []string{"tier="}}, want: []string{"worker"}},
		{name: "labels and", f: Filter{Labels: []string{"app", "tier=front"}}, want: []string{"web_1"}},
		{name: "label value mismatch", f: Filter{Labels: []string{"app=nope"}}, want: nil},
		{name: "label value is exact", f: Filter{Labels: []string{"app=we"}}, want: nil},

		{name: "name substring", f: Filter{Names: []string{"web"}}, want: []string{"webcache", "web_1"}},
		{name: "name exact", f: Filter{Names: []string{"db"}}, want: []string{"db"}},
		{name: "names or", f: Filter{Names: []string{"db", "fresh"}}, want: []string{"fresh", "db"}},
		{name: "name is a regexp, as in Docker", f: Filter{Names: []string{"^web"}}, want: []string{"webcache", "web_1"}},
		{name: "name regexp anchored at both ends", f: Filter{Names: []string{"^web_[0-9]$"}}, want: []string{"web_1"}},
		{name: "name is case-sensitive", f: Filter{Names: []string{"WEB"}}, want: nil},

		{name: "id prefix", f: Filter{IDs: []string{"abcd"}}, want: []string{"worker"}},
		{name: "id short prefix", f: Filter{IDs: []string{"a"}}, want: []string{"worker", "web_1"}},
		{name: "ids or", f: Filter{IDs: []string{"bbbb", "cccc"}}, want: []string{"webcache", "db"}},
		{name: "id full", f: Filter{IDs: []string{"bbbb" + strings.Repeat("0", 60)}}, want: []string{"db"}},
		{name: "id not a prefix", f: Filter{IDs: []string{"bbb0bbbb"}}, want: nil},

		{name: "ancestor bare name matches any tag", f: Filter{Ancestors: []string{"nginx"}}, want: []string{"webcache", "web_1"}},
		{name: "ancestor name:tag", f: Filter{Ancestors: []string{"nginx:1.25"}}, want: []string{"web_1"}},
		{name: "ancestor other tag", f: Filter{Ancestors: []string{"nginx:1.24"}}, want: nil},
		{name: "ancestor glob", f: Filter{Ancestors: []string{"post*"}}, want: []string{"db"}},
		{name: "ancestor image ID prefix", f: Filter{Ancestors: []string{"3333"}}, want: []string{"worker"}},
		{name: "ancestor sha256: image ID prefix", f: Filter{Ancestors: []string{"sha256:1111"}}, want: []string{"webcache", "web_1"}},
		{name: "ancestors or", f: Filter{Ancestors: []string{"alpine", "busybox"}}, want: []string{"fresh", "worker"}},
		{name: "ancestor name prefix is not enough", f: Filter{Ancestors: []string{"ngin"}}, want: nil},

		{name: "before name", f: Filter{Before: []string{"worker"}}, want: []string{"db", "web_1"}},
		{name: "before ID prefix", f: Filter{Before: []string{"abcd"}}, want: []string{"db", "web_1"}},
		{name: "before the oldest", f: Filter{Before: []string{"web_1"}}, want: nil},
		{name: "since name", f: Filter{Since: []string{"db"}}, want: []string{"fresh", "webcache", "worker"}},
		{name: "since the newest", f: Filter{Since: []string{"fresh"}}, want: nil},
		{name: "since and before", f: Filter{Since: []string{"db"}, Before: []string{"fresh"}}, want: []string{"webcache", "worker"}},
		{name: "before unknown container", f: Filter{Before: []string{"nosuch"}}, want: nil},
		{name: "since unknown container", f: Filter{Since: []string{"nosuch"}}, want: nil},

		{name: "running and name", f: Filter{Running: true, Names: []string{"web"}}, want: []string{"webcache", "web_1"}},
		{name: "running and label", f: Filter{Running: true, Labels: []string{"app"}}, want: []string{"web_1"}},
		{name: "every kind at once", f: Filter{IDs: []string{"a"}, Names: []string{"w"}, Labels: []string{"app"}, Statuses: []string{"exited"},
			Exited: []int{137}, Ancestors: []string{"busybox"}, Before: []string{"fresh"}, Since: []string{"web_1"}}, want: []string{"worker"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range tt.f.Select(psContainers()) {
				got = append(got, c.Name)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Select(%+v) = %q, want %q", tt.f, got, tt.want)
			}
		})
	}
}

// ParseFilters and Select together, as ps uses them.
func TestParseFiltersSelect(t *testing.T) {
	f, err := ParseFilters([]string{"status=exited", "label=app"})
	if err != nil {
		t.Fatal(err)
	}
	cs := psContainers()
	got := f.Select(cs)
	if len(got) != 2 || got[0] != cs[2] || got[1] != cs[3] {
		t.Errorf("Select = %v, want the worker and db records themselves", got)
	}
}
