package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/berthproject/berth/errdefs"
	"github.com/spf13/cobra"
)

// registryCmd runs berth-registry (serve, gc) with berth's --root: the
// server's dependencies stay out of every other berth command's start.
func registryCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:                "registry",
		Short:              "Serve a registry (distribution v3, with the OCI 1.1 referrers API): serve, gc",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			bin, err := besideSelf("berth-registry")
			if err != nil {
				return err
			}
			// The command line goes on as it is (berth's global flags with
			// it: flags are not parsed here); the default root, berth's,
			// goes as BERTH_ROOT, which a --root in args overrides.
			argv := append([]string{"berth registry"}, withoutTrustFlags(args)...)
			env := append(os.Environ(), "BERTH_ROOT="+a.root)
			if a.stdout == os.Stdout && a.stderr == os.Stderr && a.stdin == os.Stdin {
				// Become the server: its signals (SIGTERM for a graceful
				// stop) and exit code are then the process's own.
				return fmt.Errorf("berth-registry: %w", syscall.Exec(bin, argv, env))
			}
			c := exec.Command(bin, argv[1:]...)
			c.Env = env
			c.Stdin, c.Stdout, c.Stderr = a.stdin, a.stdout, a.stderr
			if err := c.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return &exitError{code: ee.ExitCode()}
				}
				return fmt.Errorf("berth-registry: %w", err)
			}
			return nil
		},
	}
}

// besideSelf finds a berth binary next to this one, or on PATH.
func besideSelf(name string) (string, error) {
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), name); isExecutableFile(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s is not next to berth or on PATH (make builds it into bin/): %w", name, errdefs.ErrNotFound)
}

func isExecutableFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// withoutTrustFlags drops berth's global trust-policy flags, which mean
// nothing to the registry server.
func withoutTrustFlags(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		switch {
		case a == "--signature-policy" || a == "--custody-policy":
			i++
			continue
		case strings.HasPrefix(a, "--signature-policy=") || strings.HasPrefix(a, "--custody-policy="):
			continue
		}
		out = append(out, a)
	}
	return out
}
