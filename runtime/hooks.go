package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runHooks runs hooks in order with the container's state on stdin, as the
// runtime spec says; the first failure stops the rest and is returned.
func runHooks(kind string, hooks []specs.Hook, st *specs.State) error {
	if len(hooks) == 0 {
		return nil
	}
	in, err := json.Marshal(st)
	if err != nil {
		return err
	}
	for i, h := range hooks {
		if err := runHook(h, in); err != nil {
			return fmt.Errorf("hooks.%s[%d] %s: %w", kind, i, h.Path, err)
		}
	}
	return nil
}

func runHook(h specs.Hook, stdin []byte) error {
	ctx := context.Background()
	if h.Timeout != nil && *h.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Path)
	if len(h.Args) > 0 {
		cmd.Args = h.Args
	} else {
		cmd.Args = []string{h.Path}
	}
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Kill the hook, not just its first process, when it times out.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %ds", *h.Timeout)
	}
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 400 {
			msg = msg[:400] + "…"
		}
		if msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

func specState(st *containerState, status Status, pid int) *specs.State {
	s := &specs.State{
		Version: specs.Version,
		ID:      st.ID,
		Status:  specs.ContainerState(status),
		Pid:     pid,
		Bundle:  st.Bundle,
	}
	if st.Config != nil {
		s.Annotations = st.Config.Annotations
	}
	return s
}
