package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ConfigFile is the name of the runtime configuration inside a bundle.
const ConfigFile = "config.json"

// maxConfigSize bounds what Load reads: real configs are kilobytes, and a
// runaway file should not make the runtime allocate without limit.
const maxConfigSize = 64 << 20

// Load reads dir/config.json, decodes it strictly and validates it with
// Validate. Every error starts with "config.json: " and is one line.
//
// "Strictly" means every known field must have the type the spec gives it;
// unknown fields are ignored because the runtime spec requires runtimes to
// ignore unknown properties (config.md, "Extensibility").
func Load(dir string) (*specs.Spec, error) {
	path := filepath.Join(dir, ConfigFile)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: not found in bundle %s (write one with `berth-runtime spec`): %w", ConfigFile, dir, err)
		}
		return nil, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", ConfigFile, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("%s: larger than %d MiB; not a runtime config", ConfigFile, maxConfigSize>>20)
	}
	s, err := decode(data)
	if err != nil {
		// A position reads as the compilers' file:line:col.
		if _, ok := errors.AsType[*positionError](err); ok {
			return nil, fmt.Errorf("%s:%w", ConfigFile, err)
		}
		return nil, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	if err := Validate(s, dir); err != nil {
		return nil, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	return s, nil
}

// decode turns config bytes into a spec, with errors that say where in the
// document the problem is.
func decode(data []byte) (*specs.Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var s specs.Spec
	if err := dec.Decode(&s); err != nil {
		return nil, decodeError(data, err)
	}
	// A second document, or garbage after the first, usually means a bad
	// edit or two configs concatenated; running either half would surprise.
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, newPositionError(data, int64(len(data)-len(rest))+1, "unexpected data after the top-level object")
	}
	if err := checkDevicePresence(data); err != nil {
		return nil, err
	}
	return &s, nil
}

func decodeError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("empty file: expected a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("unexpected end of file: the JSON is truncated (an unclosed { or [ ?)")
	case errors.As(err, &syn):
		return newPositionError(data, syn.Offset, syn.Error())
	case errors.As(err, &typ):
		field := pathAt(data, typ.Offset)
		if field == "" {
			field = typ.Field
		}
		msg := fmt.Sprintf("expected %s, got %s", describeType(typ.Type), describeValue(typ.Value))
		if field == "" {
			return errors.New(msg)
		}
		return fmt.Errorf("%s: %s", field, msg)
	}
	return err
}

// positionError is a problem at a place in the document.
type positionError struct {
	line, col int
	msg       string
}

func newPositionError(data []byte, off int64, msg string) *positionError {
	line, col := position(data, off)
	return &positionError{line, col, msg}
}

func (e *positionError) Error() string { return fmt.Sprintf("%d:%d: %s", e.line, e.col, e.msg) }

// position turns an offset as encoding/json reports it (the number of bytes
// read, so the offending byte is the one before it) into a 1-based line and
// column.
func position(data []byte, off int64) (line, col int) {
	if off < 1 {
		off = 1
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off-1]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = len(before) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// pathAt re-reads data token by token and returns the JSON path
// ("process.args[1]") of the value that encoding/json was reading when it had
// consumed off bytes. encoding/json's own UnmarshalTypeError.Field has no
// array indices or map keys; a user with forty mounts needs the index.
func pathAt(data []byte, off int64) string {
	type frame struct {
		array     bool
		index     int
		key       string
		expectKey bool
	}
	var stack []*frame
	render := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.array {
				fmt.Fprintf(&b, "[%d]", f.index)
				continue
			}
			if !plainKey(f.key) {
				// linux.sysctl["net.ipv4.ip_forward"], not a dotted maze.
				fmt.Fprintf(&b, "[%q]", f.key)
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.key)
		}
		return b.String()
	}
	// valueDone moves the enclosing container past the value just read.
	valueDone := func() {
		if len(stack) == 0 {
			return
		}
		top := stack[len(stack)-1]
		if top.array {
			top.index++
		} else {
			top.expectKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if n := len(stack); n > 0 && !stack[n-1].array && stack[n-1].expectKey {
			if k, ok := tok.(string); ok {
				stack[n-1].key = k
				stack[n-1].expectKey = false
				continue
			}
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			valueDone()
			continue
		}
		// tok starts a value: if the decoder failed inside it, this is it.
		if dec.InputOffset() >= off {
			// The array index of the element itself belongs in the path,
			// but an object's key is only set once its value is reached.
			return render()
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{expectKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{array: true})
		default:
			valueDone()
		}
	}
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// describeType names a Go type the way a config author thinks of JSON.
func describeType(t reflect.Type) string {
	if t == nil {
		return "a different type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if t.Kind() == reflect.Int {
			return "integer"
		}
		return strconv.Itoa(t.Bits()) + "-bit integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if t.Kind() == reflect.Uint {
			return "non-negative integer"
		}
		return "non-negative " + strconv.Itoa(t.Bits()) + "-bit integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array of " + plural(t.Elem())
	case reflect.Map:
		return "object of " + plural(t.Elem())
	case reflect.Struct:
		return "object"
	}
	return t.String()
}

func plural(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "strings"
	case reflect.Bool:
		return "booleans"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "integers"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "non-negative integers"
	case reflect.Slice, reflect.Array:
		return "arrays"
	case reflect.Struct, reflect.Map:
		return "objects"
	}
	return t.String() + " values"
}

// describeValue rewords encoding/json's value kinds ("bool", "number -1").
func describeValue(v string) string {
	switch {
	case v == "bool":
		return "boolean"
	case strings.HasPrefix(v, "number "):
		return v
	case v == "":
		return "something else"
	}
	return v
}

// checkDevicePresence enforces "major, minor (int64, REQUIRED unless type is
// p)" for linux.devices: the Go types have no pointer there, so absence is
// only visible in the raw document. The document already decoded into
// specs.Spec, so the shapes here are known to fit.
func checkDevicePresence(data []byte) error {
	var raw struct {
		Linux *struct {
			Devices []map[string]json.RawMessage `json:"devices"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(data, &raw); err != nil || raw.Linux == nil {
		// decode has already reported any real error.
		return nil
	}
	for i, d := range raw.Linux.Devices {
		has := func(name string) bool {
			// encoding/json matches keys case-insensitively; so must this.
			for k, v := range d {
				if strings.EqualFold(k, name) && string(v) != "null" {
					return true
				}
			}
			return false
		}
		var typ string
		for k, v := range d {
			if strings.EqualFold(k, "type") {
				_ = json.Unmarshal(v, &typ)
			}
		}
		if typ != "c" && typ != "b" && typ != "u" {
			// p has no numbers; an unknown type is Validate's to report.
			continue
		}
		for _, f := range []string{"major", "minor"} {
			if !has(f) {
				return fmt.Errorf("linux.devices[%d].%s: required for a device of type %q (only type p has none)", i, f, typ)
			}
		}
	}
	return nil
}
