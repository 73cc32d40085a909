package build

import (
	"archive/tar"
	"io"
	"time"
)

// clampWriter rewrites a layer tar written through it so that no entry is
// newer than epoch and no access or change time is kept: with
// SOURCE_DATE_EPOCH, the same files give the same layer whenever they
// were made.
type clampWriter struct {
	pw    *io.PipeWriter
	done  chan error
	epoch time.Time
}

func newClampWriter(w io.Writer, epoch time.Time) *clampWriter {
	pr, pw := io.Pipe()
	c := &clampWriter{pw: pw, done: make(chan error, 1), epoch: epoch}
	go func() {
		err := clampTar(pr, w, epoch)
		pr.CloseWithError(err)
		c.done <- err
	}()
	return c
}

func (c *clampWriter) Write(p []byte) (int, error) { return c.pw.Write(p) }

// Close ends the input and waits for the rewritten tar to be written.
func (c *clampWriter) Close() error {
	c.pw.Close()
	return <-c.done
}

func clampTar(r io.Reader, w io.Writer, epoch time.Time) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if h.ModTime.After(epoch) {
			h.ModTime = epoch
		}
		h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		delete(h.PAXRecords, "atime")
		delete(h.PAXRecords, "ctime")
		delete(h.PAXRecords, "mtime")
		if h.Format == tar.FormatGNU {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	return tw.Close()
}
