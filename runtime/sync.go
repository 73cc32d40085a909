package runtime

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// The runtime and a container's init talk over a SOCK_SEQPACKET socket pair:
// one message a packet, so file descriptors (a console master, a seccomp
// listener) travel with the message they belong to.
const (
	msgHooks     = "hooks"      // init → runtime: mounts are ready, run createRuntime hooks
	msgHooksDone = "hooks-done" // runtime → init
	msgConsole   = "console"    // init → runtime: the pty master, as an fd
	msgReady     = "ready"      // init → runtime: about to wait for start (or exec)
	msgError     = "error"      // init → runtime: setting up failed
)

type message struct {
	Type  string `json:"type"`
	Error string `json:"error,omitempty"`
	Pid   int    `json:"pid,omitempty"`
}

type syncSocket struct{ f *os.File }

func newSyncPair() (parent, child *syncSocket, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return &syncSocket{os.NewFile(uintptr(fds[0]), "sync-parent")}, &syncSocket{os.NewFile(uintptr(fds[1]), "sync-child")}, nil
}

func (s *syncSocket) sendRaw(b []byte, fds ...int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	return unix.Sendmsg(int(s.f.Fd()), b, oob, nil, 0)
}

func (s *syncSocket) send(m message, fds ...int) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return s.sendRaw(b, fds...)
}

func (s *syncSocket) recvRaw() ([]byte, []int, error) {
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(int(s.f.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if n == 0 && oobn == 0 {
			return nil, nil, io.EOF
		}
		var fds []int
		if oobn > 0 {
			cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil {
				return nil, nil, err
			}
			for _, c := range cmsgs {
				if r, err := unix.ParseUnixRights(&c); err == nil {
					fds = append(fds, r...)
				}
			}
		}
		return buf[:n], fds, nil
	}
}

func (s *syncSocket) recv() (message, []int, error) {
	b, fds, err := s.recvRaw()
	if err != nil {
		return message{}, nil, err
	}
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return message{}, fds, fmt.Errorf("sync: bad message %q: %w", b, err)
	}
	return m, fds, nil
}

func (s *syncSocket) Close() error { return s.f.Close() }
