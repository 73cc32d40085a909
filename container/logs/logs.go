// Package logs writes and reads container logs in Docker's json-file
// format: one JSON object per line of output,
//
//	{"log":"hello\n","stream":"stdout","time":"2026-12-01T10:00:00.000000001Z"}
//
// with rotation by size over a fixed number of files (--log-opt max-size,
// max-file), so that `berth logs` reads what `docker logs` would.
//
// The monitor writes; the CLI reads, also while the monitor writes.
package logs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Entry is one log line.
type Entry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// maxLine is where Docker cuts a line without a newline into entries.
const maxLine = 16 << 10

// Writer appends entries to a log file, rotating it.
type Writer struct {
	mu       sync.Mutex
	path     string
	maxSize  int64
	maxFiles int
	f        *os.File
	size     int64
	partial  map[string][]byte
}

// NewWriter opens (appending to) the log at path. maxSize <= 0 means no
// rotation; maxFiles is how many files to keep in all (at least 1).
func NewWriter(path string, maxSize int64, maxFiles int) (*Writer, error) {
	if maxFiles < 1 {
		maxFiles = 1
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Writer{path: path, maxSize: maxSize, maxFiles: maxFiles, f: f, size: fi.Size(), partial: map[string][]byte{}}, nil
}

// Write logs the bytes a stream produced: complete lines become entries
// at once, a partial line waits for its end (or for Flush, or for 16 KiB).
func (w *Writer) Write(stream string, p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	buf := append(w.partial[stream], p...)
	now := time.Now().UTC()
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			if len(buf) >= maxLine {
				if err := w.entry(stream, buf[:maxLine], now); err != nil {
					return err
				}
				buf = buf[maxLine:]
				continue
			}
			break
		}
		if err := w.entry(stream, buf[:i+1], now); err != nil {
			return err
		}
		buf = buf[i+1:]
	}
	w.partial[stream] = append([]byte(nil), buf...)
	return nil
}

// Flush writes what is left of partial lines (at the end of a stream).
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now().UTC()
	for s, b := range w.partial {
		if len(b) > 0 {
			if err := w.entry(s, b, now); err != nil {
				return err
			}
		}
		delete(w.partial, s)
	}
	return nil
}

func (w *Writer) entry(stream string, line []byte, t time.Time) error {
	b, err := json.Marshal(Entry{Log: string(line), Stream: stream, Time: t})
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if w.maxSize > 0 && w.size > 0 && w.size+int64(len(b)) > w.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	return err
}

// rotate shifts path.N-1 to path.N ... path to path.1 and starts afresh;
// the oldest beyond maxFiles goes.
func (w *Writer) rotate() error {
	w.f.Close()
	if w.maxFiles == 1 {
		os.Truncate(w.path, 0)
	} else {
		os.Remove(fmt.Sprintf("%s.%d", w.path, w.maxFiles-1))
		for i := w.maxFiles - 2; i >= 1; i-- {
			os.Rename(fmt.Sprintf("%s.%d", w.path, i), fmt.Sprintf("%s.%d", w.path, i+1))
		}
		os.Rename(w.path, w.path+".1")
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("rotate log %s: %w", w.path, err)
	}
	w.f, w.size = f, 0
	return nil
}

// Close flushes and closes the log.
func (w *Writer) Close() error {
	w.Flush()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// ParseSize reads a --log-opt max-size value (10k, 20m, 1g, plain bytes).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1<<10, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "m"):
		mult, s = 1<<20, strings.TrimSuffix(s, "m")
	case strings.HasSuffix(s, "g"):
		mult, s = 1<<30, strings.TrimSuffix(s, "g")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("max-size %q: want a positive size such as 10m", s)
	}
	return n * mult, nil
}

// ReadOptions select entries.
type ReadOptions struct {
	// Tail keeps only the last N entries (< 0: all).
	Tail int
	// Since and Until bound entry times (zero: unbounded).
	Since, Until time.Time
	// Follow keeps reading as the log grows, until Done is closed and the
	// log has been read to its end.
	Follow bool
	Done   <-chan struct{}
}

// Read calls fn for each selected entry, oldest first, across rotated
// files.
func Read(path string, maxFiles int, o ReadOptions, fn func(Entry) error) error {
	if maxFiles < 1 {
		maxFiles = 1
	}
	var files []string
	for i := maxFiles - 1; i >= 1; i-- {
		files = append(files, fmt.Sprintf("%s.%d", path, i))
	}
	files = append(files, path)
	keep := func(e Entry) bool {
		return (o.Since.IsZero() || !e.Time.Before(o.Since)) && (o.Until.IsZero() || !e.Time.After(o.Until))
	}
	var last *os.File
	var lastReader *bufio.Reader
	if o.Tail >= 0 {
		var ring []Entry
		for _, f := range files {
			err := scan(f, func(e Entry) error {
				if keep(e) {
					ring = append(ring, e)
					if len(ring) > o.Tail {
						ring = ring[1:]
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		for _, e := range ring {
			if err := fn(e); err != nil {
				return err
			}
		}
		if !o.Follow {
			return nil
		}
		// Follow from the end of the current file.
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		f.Seek(0, io.SeekEnd)
		last, lastReader = f, bufio.NewReader(f)
	} else {
		for i, p := range files {
			if i == len(files)-1 && o.Follow {
				f, err := os.Open(p)
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				if err != nil {
					return err
				}
				last, lastReader = f, bufio.NewReader(f)
				break
			}
			if err := scan(p, func(e Entry) error {
				if keep(e) {
					return fn(e)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if last == nil {
			return nil
		}
	}
	return follow(last, lastReader, path, o.Done, func(e Entry) error {
		if keep(e) {
			return fn(e)
		}
		return nil
	})
}

func scan(p string, fn func(Entry) error) error {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var e Entry
			if json.Unmarshal(line, &e) == nil {
				if err := fn(e); err != nil {
					return err
				}
			}
		}
		if err != nil {
			return nil
		}
	}
}

// follow reads entries as they are appended, reopening the log when it is
// rotated away, until done is closed and nothing more comes.
func follow(f *os.File, r *bufio.Reader, path string, done <-chan struct{}, fn func(Entry) error) error {
	defer func() { f.Close() }()
	var pending []byte
	finishing := false
	for {
		line, err := r.ReadBytes('\n')
		pending = append(pending, line...)
		if len(pending) > 0 && pending[len(pending)-1] == '\n' {
			var e Entry
			if json.Unmarshal(pending, &e) == nil {
				if err := fn(e); err != nil {
					return err
				}
			}
			pending = nil
			continue
		}
		if err != io.EOF {
			return err
		}
		if finishing {
			return nil
		}
		// At the end: has the file been rotated away?
		if fi, err := os.Stat(path); err == nil {
			if cur, err := f.Stat(); err == nil && !os.SameFile(fi, cur) {
				nf, err := os.Open(path)
				if err == nil {
					f.Close()
					f = nf
					r.Reset(f)
					continue
				}
			}
		}
		select {
		case <-done:
			finishing = true // one last read of what came before the end
		case <-time.After(20 * time.Millisecond):
		}
	}
}
