package content

import (
	"bytes"
	"context"
	"crypto/sha512"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthproject/berth/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func newStore(t *testing.T) *Local {
	t.Helper()
	s, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func descOf(b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))}
}

func TestCommitChecks(t *testing.T) {
	data := []byte("hello, blob")
	other := []byte("something else")
	sha512d := digest.NewDigestFromBytes(digest.SHA512, func() []byte { h := sha512.Sum512(data); return h[:] }())
	tests := []struct {
		name     string
		write    []byte
		size     int64
		expected digest.Digest
		wantErr  error
	}{
		{"exact", data, int64(len(data)), digest.FromBytes(data), nil},
		{"any size", data, 0, digest.FromBytes(data), nil},
		{"no expected digest", data, int64(len(data)), "", nil},
		{"sha512", data, int64(len(data)), sha512d, nil},
		{"wrong digest", other, int64(len(other)), digest.FromBytes(data), errdefs.ErrDataLoss},
		{"short", data[:3], int64(len(data)), digest.FromBytes(data), errdefs.ErrFailedPrecondition},
		{"long", data, 3, digest.FromBytes(data), errdefs.ErrFailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ctx := context.Background()
			w, err := s.Writer(ctx, "ref-"+tt.name, ocispec.Descriptor{Digest: tt.expected, Size: tt.size})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(tt.write); err != nil {
				t.Fatal(err)
			}
			err = w.Commit(ctx, tt.size, tt.expected)
			if !errors.Is(err, tt.wantErr) && !(tt.wantErr == nil && err == nil) {
				t.Fatalf("commit: %v, want %v", err, tt.wantErr)
			}
			w.Close()
			d := tt.expected
			if d == "" {
				d = digest.FromBytes(tt.write)
			}
			_, infoErr := s.Info(ctx, d)
			if tt.wantErr == nil {
				if infoErr != nil {
					t.Fatalf("committed blob not found: %v", infoErr)
				}
				got, err := ReadBlob(ctx, s, ocispec.Descriptor{Digest: d, Size: int64(len(tt.write))}, 1<<20)
				if err != nil || !bytes.Equal(got, tt.write) {
					t.Fatalf("read back %q, %v", got, err)
				}
			} else if !errdefs.IsNotFound(infoErr) {
				t.Fatalf("a rejected blob is visible: %v", infoErr)
			}
			if ins, _ := s.Ingests(); len(ins) != 0 {
				t.Errorf("ingest left after commit: %+v", ins)
			}
		})
	}
}

func TestNothingVisibleBeforeCommit(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	data := []byte("partial")
	w, err := s.Writer(ctx, "r", descOf(data))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if _, err := s.Info(ctx, digest.FromBytes(data)); !errdefs.IsNotFound(err) {
		t.Fatalf("blob visible before commit: %v", err)
	}
	n := 0
	s.Walk(ctx, func(Info) error { n++; return nil })
	if n != 0 {
		t.Fatalf("walk saw %d blobs before commit", n)
	}
	w.Close()
}

func TestResume(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789"), 1000)
	desc := descOf(data)
	w, err := s.Writer(ctx, "resume", desc)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:4000])
	w.Close() // as a killed process would leave it, minus the lock

	ins, err := s.Ingests()
	if err != nil || len(ins) != 1 || ins[0].Ref != "resume" || ins[0].Size != 4000 || ins[0].Active {
		t.Fatalf("ingests after an interrupted write: %+v, %v", ins, err)
	}
	w, err = s.Writer(ctx, "resume", desc)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 4000 {
		t.Fatalf("resumed at %d, want 4000", w.Offset())
	}
	w.Write(data[4000:])
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatalf("commit of a resumed write: %v", err)
	}
}

func TestTruncateRehashes(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	w, err := s.Writer(ctx, "t", ocispec.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("abcdef"))
	if err := w.Truncate(3); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("xyz"))
	if got, want := w.Digest(), digest.FromString("abcxyz"); got != want {
		t.Fatalf("digest after truncate %s, want %s", got, want)
	}
	if err := w.Truncate(100); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("truncate past the end: %v", err)
	}
}

func TestAlreadyExists(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	data := []byte("once")
	if _, err := WriteBytes(ctx, s, "x", data); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Writer(ctx, "again", descOf(data)); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("writer for a stored blob: %v, want already exists", err)
	}
	wrote, err := WriteBlob(ctx, s, "again", strings.NewReader("never read"), descOf(data))
	if err != nil || wrote {
		t.Fatalf("WriteBlob of a stored blob: wrote=%v err=%v", wrote, err)
	}
}

func TestVerifiedReadDetectsCorruption(t *testing.T) {
	ctx := context.Background()
	data := []byte("the stored bytes")
	for name, corrupt := range map[string]func(p string) error{
		"flipped": func(p string) error {
			b, _ := os.ReadFile(p)
			b[0] ^= 0xff
			return os.WriteFile(p, b, 0o444)
		},
		"truncated": func(p string) error { return os.Truncate(p, 5) },
		"grown": func(p string) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteString("extra")
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			desc, err := WriteBytes(ctx, s, "", data)
			if err != nil {
				t.Fatal(err)
			}
			p, _ := s.BlobPath(desc.Digest)
			os.Chmod(p, 0o644)
			if err := corrupt(p); err != nil {
				t.Fatal(err)
			}
			rc, err := Open(ctx, s, desc)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			_, err = io.ReadAll(rc)
			if !errdefs.IsDataLoss(err) {
				t.Fatalf("read of a %s blob: %v, want data loss", name, err)
			}
		})
	}
}

func TestConcurrentWritersOfOneRef(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("x"), 1<<16)
	desc := descOf(data)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = WriteBlob(ctx, s, "same-ref", bytes.NewReader(data), desc)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	got, err := ReadBlob(ctx, s, desc, 1<<20)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob after concurrent writes: %d bytes, %v", len(got), err)
	}
}

func TestWriterWaitHonoursContext(t *testing.T) {
	s := newStore(t)
	w, err := s.Writer(context.Background(), "held", ocispec.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Writer(ctx, "held", ocispec.Descriptor{}); !errdefs.IsUnavailable(err) {
		t.Fatalf("second writer of a held ref: %v, want unavailable", err)
	}
}

func TestStaleIngestsRemovedLiveKept(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	dead, _ := s.Writer(ctx, "dead", ocispec.Descriptor{})
	dead.Write([]byte("leftover"))
	dead.Close()
	live, _ := s.Writer(ctx, "live", ocispec.Descriptor{})
	live.Write([]byte("in progress"))
	defer live.Close()

	freed, err := s.RemoveStaleIngests()
	if err != nil || freed != int64(len("leftover")) {
		t.Fatalf("freed %d, %v", freed, err)
	}
	ins, _ := s.Ingests()
	if len(ins) != 1 || ins[0].Ref != "live" || !ins[0].Active {
		t.Fatalf("ingests left: %+v", ins)
	}
	live.Write([]byte("!"))
	if err := live.Commit(ctx, 0, ""); err != nil {
		t.Fatalf("the live ingest was damaged: %v", err)
	}
}

func TestInvalidDigests(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, d := range []digest.Digest{"sha256:xyz", "md5:abc", "sha256:../../etc/passwd", "nonsense"} {
		if _, err := s.Info(ctx, d); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Info(%q): %v, want invalid argument", d, err)
		}
		if _, err := s.Writer(ctx, "r", ocispec.Descriptor{Digest: d}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Writer(%q): %v, want invalid argument", d, err)
		}
	}
}

func TestWalkAndDelete(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	want := map[digest.Digest]bool{}
	for _, b := range []string{"a", "b", "c"} {
		d, err := WriteBytes(ctx, s, "", []byte(b))
		if err != nil {
			t.Fatal(err)
		}
		want[d.Digest] = true
	}
	got := map[digest.Digest]bool{}
	if err := s.Walk(ctx, func(i Info) error { got[i.Digest] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("walk found %v", got)
	}
	d := digest.FromString("a")
	if err := s.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, d); !errdefs.IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestReadBlobLimit(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	desc, _ := WriteBytes(ctx, s, "", bytes.Repeat([]byte("m"), 100))
	if _, err := ReadBlob(ctx, s, desc, 10); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("oversized read: %v", err)
	}
}
