package runtime

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ParseSignal accepts what runc and kill(1) accept: a number, a name with or
// without the SIG prefix, in any case, and RTMIN+n / RTMAX-n.
func ParseSignal(s string) (unix.Signal, error) {
	if s == "" {
		return unix.SIGTERM, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal number %d", n)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	const rtmin, rtmax = 34, 64
	if rest, ok := strings.CutPrefix(name, "SIGRTMIN"); ok {
		off := 0
		if rest != "" {
			v, err := strconv.Atoi(rest)
			if err != nil || v < 0 || rtmin+v > rtmax {
				return 0, fmt.Errorf("unknown signal %q", s)
			}
			off = v
		}
		return unix.Signal(rtmin + off), nil
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMAX"); ok {
		off := 0
		if rest != "" {
			v, err := strconv.Atoi(rest)
			if err != nil || v > 0 || rtmax+v < rtmin {
				return 0, fmt.Errorf("unknown signal %q", s)
			}
			off = v
		}
		return unix.Signal(rtmax + off), nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}
