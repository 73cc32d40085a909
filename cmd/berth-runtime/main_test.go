package main

import (
	"bytes"
	"reflect"
	"testing"
)

func TestNormalizeArgs(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"-root", "/x", "create", "-bundle", "b", "id"}, []string{"--root", "/x", "create", "--bundle", "b", "id"}},
		{[]string{"create", "-b", "b", "id"}, []string{"create", "-b", "b", "id"}},
		{[]string{"exec", "id", "--", "sh", "-root"}, []string{"exec", "id", "--", "sh", "-root"}},
		{[]string{"kill", "id", "-9"}, []string{"kill", "id", "-9"}},
		{[]string{"-pid-file=/p"}, []string{"--pid-file=/p"}},
	} {
		if got := normalizeArgs(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("normalizeArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"1024", 1024, false}, {"64m", 64 << 20, false}, {"64M", 64 << 20, false}, {"1g", 1 << 30, false},
		{"2kb", 2048, false}, {"-1", -1, false}, {"", 0, true}, {"abc", 0, true}, {"-5m", 0, true},
	} {
		got, err := parseBytes(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, err %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseUser(t *testing.T) {
	if u, g, err := parseUser("1000:100"); err != nil || u != 1000 || g != 100 {
		t.Fatalf("1000:100 → %d %d %v", u, g, err)
	}
	if u, g, err := parseUser("7"); err != nil || u != 7 || g != 0 {
		t.Fatalf("7 → %d %d %v", u, g, err)
	}
	for _, bad := range []string{"root", "1:x", ""} {
		if _, _, err := parseUser(bad); err == nil {
			t.Errorf("parseUser(%q) accepted", bad)
		}
	}
}

func TestFilterPs(t *testing.T) {
	in := "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 init\nroot 42 1 0 10:00 ? 00:00:00 sleep 60\nroot 43 1 0 10:00 ? 00:00:00 other\n"
	var out bytes.Buffer
	if err := filterPs(&out, []byte(in), []int{42}); err != nil {
		t.Fatal(err)
	}
	want := "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:00 ? 00:00:00 sleep 60\n"
	if out.String() != want {
		t.Fatalf("got %q want %q", out.String(), want)
	}
	if err := filterPs(&out, []byte("USER COMMAND\nx y\n"), nil); err == nil {
		t.Fatal("ps output without a PID column accepted")
	}
}
