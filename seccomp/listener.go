package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// listenerTimeout bounds connecting to the agent and sending the state: the
// message is small, so only an agent that never accepts can take longer, and
// the container must not hang on it.
const listenerTimeout = 10 * time.Second

// SendListener hands the seccomp listener fd to the agent listening on the
// unix stream socket at listenerPath, as runtime-spec config-linux.md
// ("The Container Process State") says: one connection, the state as JSON,
// fd in SCM_RIGHTS with the first bytes, then close. st supplies pid, state
// and metadata (linux.seccomp.listenerMetadata); SendListener fills fds with
// ["seccompFd"] and ociVersion when empty, without modifying *st. The caller
// keeps ownership of fd and should close it afterwards: the agent has its own
// copy.
func SendListener(listenerPath string, st *specs.ContainerProcessState, fd int) error {
	const fld = "linux.seccomp.listenerPath"
	if listenerPath == "" {
		return fmt.Errorf("%s: empty", fld)
	}
	if err := checkSend(st, fd); err != nil {
		return fmt.Errorf("%s: %s: %w", fld, listenerPath, err)
	}
	d := net.Dialer{Timeout: listenerTimeout}
	c, err := d.Dial("unix", listenerPath)
	if err != nil {
		return fmt.Errorf("%s: connect to seccomp agent: %w", fld, err)
	}
	defer c.Close()
	conn, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("%s: %s: not a unix socket connection", fld, listenerPath)
	}
	if err := SendListenerConn(conn, st, fd); err != nil {
		return fmt.Errorf("%s: %s: %w", fld, listenerPath, err)
	}
	return nil
}

// SendListenerConn is SendListener on a connection the caller opened, for a
// container init that must connect to the agent's socket while the host's
// filesystem is still visible (before pivot_root) and send only after
// loading the filter. It sends the same message and closes conn.
func SendListenerConn(conn *net.UnixConn, st *specs.ContainerProcessState, fd int) error {
	if conn == nil {
		return errors.New("no connection to the seccomp agent")
	}
	defer conn.Close()
	if err := checkSend(st, fd); err != nil {
		return err
	}
	msg := *st
	msg.Fds = []string{specs.SeccompFdName}
	if msg.Version == "" {
		msg.Version = specs.Version
	}
	if msg.State.Version == "" {
		msg.State.Version = specs.Version
	}
	b, err := json.Marshal(&msg)
	if err != nil {
		return fmt.Errorf("encode container process state: %w", err)
	}
	if err := conn.SetDeadline(time.Now().Add(listenerTimeout)); err != nil {
		return err
	}
	n, _, err := conn.WriteMsgUnix(b, unix.UnixRights(fd), nil)
	if err != nil {
		return fmt.Errorf("send state and listener fd: %w", err)
	}
	// A stream socket may take part of the message; the spec allows more
	// sendmsg calls as long as the fd went with the first.
	for n < len(b) {
		m, err := conn.Write(b[n:])
		if err != nil {
			return fmt.Errorf("send state: %w", err)
		}
		n += m
	}
	if err := conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close connection: %w", err)
	}
	return nil
}

func checkSend(st *specs.ContainerProcessState, fd int) error {
	if st == nil {
		return errors.New("no container process state to send")
	}
	if fd < 0 {
		return fmt.Errorf("invalid listener fd %d", fd)
	}
	return nil
}
