// Package monitor is the per-container monitor process (berth's conmon)
// and the protocol the CLI speaks with it.
//
// The monitor starts the runtime, holds the container's stdio (pipes, or
// the pty master the runtime sends to its console socket), writes the log,
// waits for the container's init as its subreaper, records the exit code
// and runs the exit command (berth container cleanup) before it goes. It
// outlives the CLI that started it, so that a detached container, or one
// whose foreground CLI was killed, stays running and tracked.
//
// Clients (berth run, start -a, attach) connect to its attach socket and
// exchange frames: a type byte, a big-endian uint32 length, the payload.
//
// Files in the container's run directory:
//
//	monitor.json    the monitor's configuration (written by the CLI)
//	attach.sock     clients connect here
//	exit.json       the exit code and time, written atomically at exit
package monitor

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Frame types.
const (
	// client to monitor
	FrameStdin  byte = 'i' // data for the container's stdin
	FrameEOF    byte = 'e' // no more stdin
	FrameResize byte = 'r' // rows, cols (uint16 each)
	FrameSignal byte = 's' // a signal for the container's init (int32)
	FrameStart  byte = 'S' // start the created container (attach first, then start)
	// FrameTakeCleanup: at exit, hand the cleanup (berth container
	// cleanup's work) to this client instead of running the exit command.
	FrameTakeCleanup byte = 'c'
	FrameCleanedUp   byte = 'd' // the client did the cleanup it took
	// monitor to client
	FrameStdout  byte = 'o'
	FrameStderr  byte = 'E'
	FrameStarted byte = 'k' // the container runs (payload: pid)
	FrameFailed  byte = 'X' // start failed (payload: the error)
	// FrameExit: the container exited (int32 code). A fifth byte of 1 says
	// the cleanup is the receiving client's to do (it sent
	// FrameTakeCleanup); otherwise it was done.
	FrameExit byte = 'x'
)

// Config is what the CLI tells a monitor.
type Config struct {
	ID          string   `json:"id"`
	Runtime     string   `json:"runtime"`
	RuntimeRoot string   `json:"runtimeRoot"`
	Bundle      string   `json:"bundle"`
	RunDir      string   `json:"runDir"`
	LogPath     string   `json:"logPath,omitempty"`
	LogMaxSize  int64    `json:"logMaxSize,omitempty"`
	LogMaxFiles int      `json:"logMaxFiles,omitempty"`
	Terminal    bool     `json:"terminal,omitempty"`
	Stdin       bool     `json:"stdin,omitempty"`
	StdinOnce   bool     `json:"stdinOnce,omitempty"`
	WaitStart   bool     `json:"waitStart,omitempty"`
	ExitCommand []string `json:"exitCommand,omitempty"`
}

// Exit is what exit.json records.
type Exit struct {
	Code       int       `json:"exitCode"`
	FinishedAt time.Time `json:"finishedAt"`
	Signal     int       `json:"signal,omitempty"`
}

// Sync is one line the monitor writes on its sync pipe (fd 3) for the
// CLI that started it.
type Sync struct {
	Event string `json:"event"` // "created", "started", "error"
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// ReadExit reads a container's exit record.
func ReadExit(runDir string) (*Exit, error) {
	b, err := os.ReadFile(filepath.Join(runDir, "exit.json"))
	if err != nil {
		return nil, err
	}
	var e Exit
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

func writeFrame(w io.Writer, typ byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(append(hdr[:], payload...)); err != nil {
		return err
	}
	return nil
}

const maxFrame = 1 << 20

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("monitor frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
}

// socketPath names a socket in dir through an open handle on dir, so that
// the path stays short (unix socket paths are limited to 108 bytes)
// however deep dir is. The handle must stay open while the path is used.
func socketPath(dir, name string) (string, *os.File, error) {
	d, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, err
	}
	return "/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + name, d, nil
}

// Client is a connection to a container's monitor.
type Client struct {
	conn net.Conn
	dir  *os.File
	// cleanupYours: the exit frame handed the cleanup to this client.
	cleanupYours bool
}

// Dial connects to the monitor of the container whose run directory is
// runDir.
func Dial(runDir string) (*Client, error) {
	p, d, err := socketPath(runDir, "attach.sock")
	if err != nil {
		return nil, err
	}
	conn, err := net.Dial("unix", p)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("attach to the container's monitor: %w", err)
	}
	return &Client{conn: conn, dir: d}, nil
}

// Close disconnects (the container goes on).
func (c *Client) Close() error {
	c.dir.Close()
	return c.conn.Close()
}

// Start asks the monitor to start the created container and waits for
// the answer.
func (c *Client) Start() error {
	return writeFrame(c.conn, FrameStart, nil)
}

// TakeCleanup asks the monitor to leave the cleanup at exit to this
// client: after Receive returns with CleanupIsYours, the client cleans up
// and calls CleanedUp. Should the client go away first, the monitor runs
// its exit command as it would have.
func (c *Client) TakeCleanup() error {
	return writeFrame(c.conn, FrameTakeCleanup, nil)
}

// CleanupIsYours reports whether the exit Receive returned handed the
// cleanup to this client.
func (c *Client) CleanupIsYours() bool { return c.cleanupYours }

// CleanedUp tells the monitor the cleanup it handed over is done.
func (c *Client) CleanedUp() error {
	return writeFrame(c.conn, FrameCleanedUp, nil)
}

// Resize sets the container's terminal size.
func (c *Client) Resize(rows, cols uint16) error {
	var p [4]byte
	binary.BigEndian.PutUint16(p[:2], rows)
	binary.BigEndian.PutUint16(p[2:], cols)
	return writeFrame(c.conn, FrameResize, p[:])
}

// Signal sends sig to the container's init.
func (c *Client) Signal(sig unix.Signal) error {
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], uint32(sig))
	return writeFrame(c.conn, FrameSignal, p[:])
}

// SendStdin copies r into the container's stdin; at r's end it sends EOF.
func (c *Client) SendStdin(r io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := writeFrame(c.conn, FrameStdin, buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return writeFrame(c.conn, FrameEOF, nil)
		}
		if err != nil {
			return err
		}
	}
}

// ErrDetached is returned by Receive when the client stopped listening
// before the container exited.
var ErrDetached = errors.New("detached")

// StartError is a failed start as the monitor reports it.
type StartError struct{ Msg string }

func (e *StartError) Error() string { return e.Msg }

// Receive copies the container's output to stdout and stderr until it
// exits, and returns its exit code. started, if set, is called when the
// monitor reports the start.
func (c *Client) Receive(stdout, stderr io.Writer, started func(pid int)) (int, error) {
	for {
		typ, p, err := readFrame(c.conn)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, unix.ECONNRESET) {
				return -1, ErrDetached
			}
			return -1, err
		}
		switch typ {
		case FrameStdout:
			if stdout != nil {
				stdout.Write(p)
			}
		case FrameStderr:
			if stderr != nil {
				stderr.Write(p)
			}
		case FrameStarted:
			if started != nil {
				pid, _ := strconv.Atoi(string(p))
				started(pid)
			}
		case FrameFailed:
			return -1, &StartError{Msg: string(p)}
		case FrameExit:
			if len(p) != 4 && len(p) != 5 {
				return -1, errors.New("bad exit frame")
			}
			c.cleanupYours = len(p) == 5 && p[4] == 1
			return int(int32(binary.BigEndian.Uint32(p[:4]))), nil
		}
	}
}
