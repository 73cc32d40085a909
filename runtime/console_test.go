package runtime_test

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/testutil"
)

// TestConsoleSocket: with process.terminal the pty master reaches the
// --console-socket listener (as podman's conmon receives it), and the
// container's stdio is the pty.
func TestConsoleSocket(t *testing.T) {
	h := newHarness(t)
	s := spec("sh", "-c", "tty; echo hello-from-pty")
	s.Process.Terminal = true
	b := testutil.Bundle(t, s)
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan *os.File, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		buf, oob := make([]byte, 256), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			got <- nil
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) != 1 {
			got <- nil
			return
		}
		fds, _ := unix.ParseUnixRights(&msgs[0])
		got <- os.NewFile(uintptr(fds[0]), "master")
	}()
	id := uniqueID(t)
	if _, _, code := h.run("create", "--bundle", b, id); code == 0 {
		t.Fatal("terminal without --console-socket accepted")
	}
	h.must("create", "--bundle", b, "--console-socket", sock, id)
	var master *os.File
	select {
	case master = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no pty master received")
	}
	if master == nil {
		t.Fatal("console socket received no fd")
	}
	defer master.Close()
	h.must("start", id)
	var out bytes.Buffer
	buf := make([]byte, 512)
	master.SetReadDeadline(time.Now().Add(5 * time.Second))
	for !strings.Contains(out.String(), "hello-from-pty") {
		n, err := master.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(out.String(), "/dev/pts/") || !strings.Contains(out.String(), "hello-from-pty") {
		t.Fatalf("pty output %q: want the tty name and the echo", out.String())
	}
	waitStatus(t, h, id, "stopped")
	h.must("delete", id)
}

// TestPreserveFDs: --preserve-fds passes extra descriptors through, and
// nothing else of the runtime's.
func TestPreserveFDs(t *testing.T) {
	h := newHarness(t)
	b := testutil.Bundle(t, spec("sh", "-c", "cat <&3"))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("through fd 3\n")
	w.Close()
	defer r.Close()
	cmd := newCmd(h, "run", "--preserve-fds", "1", "--bundle", b, uniqueID(t))
	cmd.ExtraFiles = []*os.File{r}
	out, err := cmd.Output()
	if err != nil || string(out) != "through fd 3\n" {
		t.Fatalf("run --preserve-fds 1: %q, %v", out, err)
	}
}
