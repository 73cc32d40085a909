// Command berth-registry is `berth registry`: a registry server on
// distribution v3 (package registry/server). berth runs it for its
// registry subcommand; it is a binary of its own so that distribution's
// dependencies (storage drivers, metrics, tracing) cost nothing to every
// other berth command's start.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/registry/server"
	"github.com/spf13/cobra"
)

// regApp holds the global flags berth passes on.
type regApp struct {
	root string
}

func main() {
	r := &regApp{}
	root := &cobra.Command{
		Use:           "berth registry",
		Short:         "Serve a registry (distribution v3, with the OCI 1.1 referrers API)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE:          func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	pf := root.PersistentFlags()
	pf.StringVar(&r.root, "root", os.Getenv("BERTH_ROOT"), "berth's state directory")
	// berth's other global flags come along (berth passes its command
	// line on as it is); they mean nothing to the registry.
	var ignored string
	for _, f := range []string{"runroot", "storage-driver", "log-level"} {
		pf.StringVar(&ignored, f, "", "")
		pf.MarkHidden(f)
	}
	root.AddCommand(registryServeCmd(r), registryGCCmd(r))
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())
	})
	if err := root.Execute(); err != nil {
		msg := err.Error()
		for _, k := range []error{errdefs.ErrInvalidArgument, errdefs.ErrNotFound} {
			msg = strings.TrimSuffix(msg, ": "+k.Error())
		}
		fmt.Fprintln(os.Stderr, "Error:", msg)
		os.Exit(125)
	}
}

// registryFlags are what serve and gc share: where the registry is.
type registryFlags struct {
	o server.Options
}

func (f *registryFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.o.StorageDir, "storage", "", "the filesystem storage's directory (default <root>/registry)")
	fl.StringVar(&f.o.ConfigFile, "config", "", "a distribution config.yml (S3 storage, token auth, ...); the flags override it")
}

func (f *registryFlags) options(r *regApp) server.Options {
	o := f.o
	if o.StorageDir == "" && o.ConfigFile == "" && r.root != "" {
		o.StorageDir = filepath.Join(r.root, "registry")
	}
	return o
}

func registryServeCmd(r *regApp) *cobra.Command {
	f := &registryFlags{}
	var noAccessLog bool
	cmd := &cobra.Command{
		Use:   "serve [OPTIONS]",
		Short: "Serve a registry until SIGTERM or SIGINT",
		Long: `Serve a registry: distribution v3's API and storage, with the OCI 1.1
referrers API. With no config file: filesystem storage under <root>/registry,
deletes enabled, on 127.0.0.1:5000 (--addr :5000 for every interface).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o := f.options(r)
			o.Log = os.Stderr
			if !noAccessLog {
				o.AccessLog = os.Stdout
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			s, err := server.New(ctx, o)
			if err != nil {
				return err
			}
			where := s.StorageDir()
			if where == "" {
				where = "the configured storage"
			}
			fmt.Fprintf(os.Stderr, "berth registry: serving %s on %s\n", where, s.URL())
			done := make(chan error, 1)
			go func() { done <- s.Serve() }()
			select {
			case err := <-done:
				return err
			case <-ctx.Done():
			}
			fmt.Fprintf(os.Stderr, "berth registry: stopping; letting requests in flight finish (at most %s)\n", o.DrainTimeout)
			if err := s.Shutdown(context.Background()); err != nil {
				return fmt.Errorf("registry shutdown: %w", err)
			}
			return <-done
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.o.Addr, "addr", "", "listen address (default 127.0.0.1:5000; :0 for a free port)")
	fl.StringVar(&f.o.TLSCert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	fl.StringVar(&f.o.TLSKey, "tls-key", "", "the certificate's key (PEM)")
	fl.StringVar(&f.o.Htpasswd, "htpasswd", "", "basic auth from this htpasswd file (bcrypt)")
	fl.StringVar(&f.o.Realm, "realm", "", "the basic auth realm")
	fl.BoolVar(&f.o.ReadOnly, "read-only", false, "refuse pushes and deletes")
	fl.BoolVar(&noAccessLog, "no-access-log", false, "do not log each request on stdout")
	fl.DurationVar(&f.o.DrainTimeout, "drain-timeout", 10*time.Second, "how long a stop lets requests in flight finish")
	return cmd
}

func registryGCCmd(r *regApp) *cobra.Command {
	f := &registryFlags{}
	var g server.GCOptions
	cmd := &cobra.Command{
		Use:   "gc [OPTIONS]",
		Short: "Delete the blobs no manifest refers to (stop the server, or make it read-only, first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			g.Log = os.Stdout
			return server.GC(cmd.Context(), f.options(r), g)
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&g.DryRun, "dry-run", false, "say what would be deleted, delete nothing")
	cmd.Flags().BoolVarP(&g.RemoveUntagged, "delete-untagged", "m", false, "also delete manifests no tag points to")
	return cmd
}
