// Package format renders the CLI's --format output as Docker does: Go
// templates with Docker's template functions, "table" templates aligned in
// columns under a header row, and "json" for one JSON object per line.
//
// It owns presentation only; what is printed comes from the caller.
package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"unicode"
)

// Funcs are Docker's template functions.
var Funcs = template.FuncMap{
	"json": func(v any) (string, error) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", err
		}
		return strings.TrimSpace(buf.String()), nil
	},
	"split":    strings.Split,
	"join":     strings.Join,
	"title":    title,
	"lower":    strings.ToLower,
	"upper":    strings.ToUpper,
	"pad":      func(s string, l, r int) string { return strings.Repeat(" ", l) + s + strings.Repeat(" ", r) },
	"truncate": truncate,
	"println":  fmt.Sprintln,
}

func title(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Writer writes rows with a format: "" or "table" (the default table
// columns), "table TEMPLATE", "json", or a plain TEMPLATE.
type Writer struct {
	out     io.Writer
	tmpl    *template.Template
	table   bool
	json    bool
	headers map[string]string
	tw      *tabwriter.Writer
	wroteHd bool
}

// New makes a Writer. def is the template used for "" and "table";
// headers map each field name (as in {{.ID}}) to its column title.
func New(out io.Writer, format, def string, headers map[string]string) (*Writer, error) {
	w := &Writer{out: out, headers: headers}
	switch {
	case format == "json":
		w.json = true
		return w, nil
	case format == "" || format == "table":
		format = "table " + def
	}
	if t, ok := strings.CutPrefix(format, "table"); ok && (t == "" || t[0] == ' ' || t[0] == '\t') {
		w.table = true
		format = strings.TrimLeft(t, " ")
		w.tw = tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
	}
	format = unescape(format)
	t, err := template.New("format").Funcs(Funcs).Parse(format)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	w.tmpl = t
	return w, nil
}

// unescape turns the \t and \n people type on a command line into the
// characters, as Docker does.
func unescape(s string) string {
	return strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(s)
}

// Write renders one row.
func (w *Writer) Write(v any) error {
	if w.json {
		enc := json.NewEncoder(w.out)
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	if w.table && !w.wroteHd {
		w.wroteHd = true
		if err := w.header(); err != nil {
			return err
		}
	}
	var dst io.Writer = w.out
	if w.table {
		dst = w.tw
	}
	var buf bytes.Buffer
	if err := w.tmpl.Execute(&buf, v); err != nil {
		return fmt.Errorf("template: %w", err)
	}
	buf.WriteString("\n")
	_, err := dst.Write(buf.Bytes())
	return err
}

func (w *Writer) header() error {
	var buf bytes.Buffer
	// The header row is the template run over the column titles: a map
	// answers {{.ID}} as a struct would.
	if err := w.tmpl.Execute(&buf, w.headers); err != nil {
		return nil // a template using functions on fields: no header, as Docker
	}
	buf.WriteString("\n")
	_, err := w.tw.Write(buf.Bytes())
	return err
}

// Flush ends the output; a table with no rows still gets its header.
func (w *Writer) Flush() error {
	if w.table {
		if !w.wroteHd {
			w.wroteHd = true
			w.header()
		}
		return w.tw.Flush()
	}
	return nil
}

// Execute renders v once with a plain template (inspect --format).
func Execute(out io.Writer, format string, v any) error {
	t, err := template.New("format").Funcs(Funcs).Parse(unescape(format))
	if err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return fmt.Errorf("template: %w", err)
	}
	buf.WriteString("\n")
	_, err = out.Write(buf.Bytes())
	return err
}
