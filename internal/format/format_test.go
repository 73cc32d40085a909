package format

import (
	"bytes"
	"strings"
	"testing"
)

type row struct {
	ID, Repository string
	Size           int
	Tags           []string
}

func TestWriter(t *testing.T) {
	headers := map[string]string{"ID": "IMAGE ID", "Repository": "REPOSITORY", "Size": "SIZE"}
	rows := []row{{ID: "abc", Repository: "busybox", Size: 1, Tags: []string{"a", "b"}}, {ID: "defghi", Repository: "x", Size: 22}}
	tests := []struct {
		format string
		want   string
	}{
		{"", "REPOSITORY   IMAGE ID\nbusybox      abc\nx            defghi\n"},
		{"table {{.ID}}\\t{{.Size}}", "IMAGE ID   SIZE\nabc        1\ndefghi     22\n"},
		{"{{.ID}}:{{.Repository}}", "abc:busybox\ndefghi:x\n"},
		{"{{json .Tags}}", "[\"a\",\"b\"]\nnull\n"},
		{"{{join .Tags \",\"}} {{upper .Repository}}", "a,b BUSYBOX\n X\n"},
		{"json", "{\"ID\":\"abc\",\"Repository\":\"busybox\",\"Size\":1,\"Tags\":[\"a\",\"b\"]}\n{\"ID\":\"defghi\",\"Repository\":\"x\",\"Size\":22,\"Tags\":null}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := New(&buf, tt.format, "{{.Repository}}\t{{.ID}}", headers)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				if err := w.Write(r); err != nil {
					t.Fatal(err)
				}
			}
			w.Flush()
			if got := buf.String(); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestBadTemplates(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "{{.ID", "", nil); err == nil || !strings.Contains(err.Error(), "template parsing error") {
		t.Fatalf("unterminated template: %v", err)
	}
	w, _ := New(&bytes.Buffer{}, "{{.Nope}}", "", nil)
	if err := w.Write(row{}); err == nil {
		t.Fatal("an unknown field rendered")
	}
}

func TestEmptyTableHasHeader(t *testing.T) {
	var buf bytes.Buffer
	w, _ := New(&buf, "", "{{.ID}}\t{{.Size}}", map[string]string{"ID": "IMAGE ID", "Size": "SIZE"})
	w.Flush()
	if buf.String() != "IMAGE ID   SIZE\n" {
		t.Fatalf("%q", buf.String())
	}
}
