package logs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readAll(t *testing.T, path string, files int, o ReadOptions) []Entry {
	t.Helper()
	var out []Entry
	if err := Read(path, files, o, func(e Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteSplitsLinesAndStreams(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ctr-json.log")
	w, err := NewWriter(p, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.Write("stdout", []byte("one\ntw"))
	w.Write("stderr", []byte("err line\n"))
	w.Write("stdout", []byte("o\nthree"))
	w.Close()
	got := readAll(t, p, 1, ReadOptions{Tail: -1})
	want := []string{"stdout:one\n", "stderr:err line\n", "stdout:two\n", "stdout:three"}
	if len(got) != len(want) {
		t.Fatalf("entries %+v", got)
	}
	for i, e := range got {
		if e.Stream+":"+e.Log != want[i] || e.Time.IsZero() {
			t.Errorf("entry %d: %+v, want %q", i, e, want[i])
		}
	}
	b, _ := os.ReadFile(p)
	if !strings.HasPrefix(string(b), `{"log":"one\n","stream":"stdout","time":"`) {
		t.Fatalf("not Docker's json-file format: %s", b)
	}
}

func TestLongLineIsCut(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	w, _ := NewWriter(p, 0, 1)
	w.Write("stdout", []byte(strings.Repeat("x", maxLine*2+5)))
	w.Close()
	got := readAll(t, p, 1, ReadOptions{Tail: -1})
	if len(got) != 3 || len(got[0].Log) != maxLine || len(got[2].Log) != 5 {
		t.Fatalf("%d entries", len(got))
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "log")
	w, _ := NewWriter(p, 300, 3)
	for i := 0; i < 40; i++ {
		w.Write("stdout", []byte(fmt.Sprintf("line %02d\n", i)))
	}
	w.Close()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 {
		t.Fatalf("%d files, want 3 (max-file)", len(ents))
	}
	for _, e := range ents {
		if fi, _ := e.Info(); fi.Size() > 300 {
			t.Errorf("%s is %d bytes, past max-size", e.Name(), fi.Size())
		}
	}
	got := readAll(t, p, 3, ReadOptions{Tail: -1})
	if got[len(got)-1].Log != "line 39\n" {
		t.Fatalf("last entry %q", got[len(got)-1].Log)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Log <= got[i-1].Log {
			t.Fatalf("out of order: %q after %q", got[i].Log, got[i-1].Log)
		}
	}
	tail := readAll(t, p, 3, ReadOptions{Tail: 2})
	if len(tail) != 2 || tail[1].Log != "line 39\n" || tail[0].Log != "line 38\n" {
		t.Fatalf("tail 2: %+v", tail)
	}
}

func TestSinceUntil(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	w, _ := NewWriter(p, 0, 1)
	w.Write("stdout", []byte("early\n"))
	time.Sleep(20 * time.Millisecond)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	w.Write("stdout", []byte("late\n"))
	w.Close()
	if got := readAll(t, p, 1, ReadOptions{Tail: -1, Since: mid}); len(got) != 1 || got[0].Log != "late\n" {
		t.Fatalf("since: %+v", got)
	}
	if got := readAll(t, p, 1, ReadOptions{Tail: -1, Until: mid}); len(got) != 1 || got[0].Log != "early\n" {
		t.Fatalf("until: %+v", got)
	}
}

func TestFollow(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	// Rotating every few entries: the follower moves to the new file.
	w, _ := NewWriter(p, 400, 3)
	w.Write("stdout", []byte("before\n"))
	done := make(chan struct{})
	got := make(chan string, 100)
	go func() {
		Read(p, 3, ReadOptions{Tail: -1, Follow: true, Done: done}, func(e Entry) error { got <- e.Log; return nil })
		close(got)
	}()
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < 10; i++ {
		w.Write("stdout", []byte(fmt.Sprintf("after %d\n", i)))
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	close(done)
	var lines []string
	for l := range got {
		lines = append(lines, l)
	}
	if len(lines) != 11 || lines[0] != "before\n" || lines[10] != "after 9\n" {
		t.Fatalf("followed %q", lines)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"10": 10, "10k": 10 << 10, "2m": 2 << 20, "1g": 1 << 30, "3M": 3 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x", "-1", "0", "5t"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded", bad)
		}
	}
}
