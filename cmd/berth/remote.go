package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/registry"
	"github.com/berthproject/berth/trust"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// remoteFlags are what every command that talks to a registry takes, as
// podman's do.
type remoteFlags struct {
	tlsVerify bool
	certDir   string
	authFile  string
}

func (f *remoteFlags) add(fl *pflag.FlagSet) {
	fl.BoolVar(&f.tlsVerify, "tls-verify", true, "require HTTPS and a verified certificate (false: HTTP, or any certificate, for this registry)")
	fl.StringVar(&f.certDir, "cert-dir", "", "a directory of <registry>/ca.crt files, searched first")
	fl.StringVar(&f.authFile, "authfile", "", "credentials file (default: ~/.docker/config.json, then Podman's auth.json)")
}

// client makes a registry client for the registries the command names.
func (f *remoteFlags) client(a *app, refs ...string) (*registry.Client, error) {
	o := registry.Options{AuthFile: f.authFile, UserAgent: "berth/" + version}
	if f.certDir != "" {
		o.CertDirs = append([]string{f.certDir}, registry.DefaultCertDirs()...)
	}
	if !f.tlsVerify {
		for _, r := range refs {
			if host := registryHost(r); host != "" {
				o.Insecure = append(o.Insecure, host)
			}
		}
	}
	return registry.New(o)
}

// registryHost is the registry part of an image name or server address.
func registryHost(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	if n, err := image.ParseReference(s); err == nil {
		full := n.String()
		return full[:strings.IndexByte(full, '/')]
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	return s
}

func pullCmd(a *app) *cobra.Command {
	var rf remoteFlags
	var platform string
	var all, quiet bool
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  exactArgs(1, "the image"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := platformFlag(platform)
			if err != nil {
				return usageError(cmd, err)
			}
			cl, err := rf.client(a, args[0])
			if err != nil {
				return err
			}
			s, err := a.images()
			if err != nil {
				return err
			}
			check, err := a.pullCheck(cl)
			if err != nil {
				return err
			}
			rep, wait := a.reporter(quiet, false)
			o := registry.PullOptions{Platform: p, AllTags: all, Progress: rep, Check: check}
			pulled, err := cl.Pull(cmd.Context(), s, args[0], o)
			wait()
			for _, pl := range pulled {
				fmt.Fprintln(a.stdout, pl.Ref)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&platform, "platform", "", "pull this platform (os/arch[/variant]) of a multi-platform image (default: this host's)")
	fl.BoolVarP(&all, "all-tags", "a", false, "pull every tagged image of the repository")
	fl.BoolVarP(&quiet, "quiet", "q", false, "print only the image's name")
	rf.add(fl)
	return cmd
}

func pushCmd(a *app) *cobra.Command {
	var rf remoteFlags
	var quiet bool
	var format, signBy string
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG] [DESTINATION]",
		Short: "Upload an image to a registry",
		Args:  rangeArgs(1, 2, "the image, and where to push it if not to its name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			comp, err := registry.ParseCompression(format)
			if err != nil {
				return usageError(cmd, err)
			}
			dest := ""
			if len(args) == 2 {
				dest = args[1]
			}
			target := args[0]
			if dest != "" {
				target = dest
			}
			cl, err := rf.client(a, target)
			if err != nil {
				return err
			}
			s, err := a.images()
			if err != nil {
				return err
			}
			var key *trust.PrivateKey
			if signBy != "" {
				if key, err = a.privateKey(signBy, false); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			rep, wait := a.reporter(quiet, true)
			pushed, err := cl.Push(ctx, s, args[0], dest, registry.PushOptions{Progress: rep, Compression: comp})
			wait()
			if err != nil {
				return err
			}
			img, err := s.Get(ctx, args[0])
			if err != nil {
				return err
			}
			desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: pushed.Digest, Size: pushed.Size}
			if img.Manifest.Digest == pushed.Digest {
				desc = img.Manifest
			}
			if key != nil {
				sig, err := trust.Sign(key, pushed.Ref, pushed.Digest)
				if err != nil {
					return err
				}
				ts, err := a.trustStore()
				if err != nil {
					return err
				}
				if err := ts.Add(pushed.Digest, trust.Attached{Signatures: []trust.Signature{sig}}); err != nil {
					return err
				}
			}
			n, err := a.pushAttached(ctx, cl, pushed.Ref, desc)
			if err != nil {
				return fmt.Errorf("push %s: signatures: %w", pushed.Ref, err)
			}
			if n > 0 && !quiet {
				fmt.Fprintf(a.stdout, "Pushed %d signature(s) and custody record(s) with it\n", n)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&signBy, "sign-by", "", "sign the pushed image with this private key (NAME.key; password from BERTH_PASSWORD or a prompt)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "print nothing but errors")
	fl.StringVar(&format, "compression-format", "", "layer compression: gzip or zstd (default: as stored; others are recompressed for the push)")
	rf.add(fl)
	return cmd
}

func loginCmd(a *app) *cobra.Command {
	var rf remoteFlags
	var user, password string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Log in to a registry (credentials go to ~/.docker/config.json or its credential helper)",
		Args:  rangeArgs(0, 1, "the registry"),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := "docker.io"
			if len(args) == 1 {
				server = args[0]
			}
			if passwordStdin {
				if password != "" {
					return usageError(cmd, errors.New("--password and --password-stdin go not together"))
				}
				if user == "" {
					return usageError(cmd, errors.New("--password-stdin needs --username"))
				}
				b, err := io.ReadAll(io.LimitReader(a.stdin, 64<<10))
				if err != nil {
					return err
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			if user == "" || password == "" {
				if isTerminal(a.stdin) {
					return usageError(cmd, errors.New("interactive login is not there yet: give --username and --password-stdin"))
				}
				if user == "" {
					return usageError(cmd, errors.New("give --username (-u), and the password with --password-stdin"))
				}
				line, _ := bufio.NewReader(a.stdin).ReadString('\n')
				password = strings.TrimRight(line, "\r\n")
			}
			if password == "" {
				return usageError(cmd, errors.New("no password given"))
			}
			cl, err := rf.client(a, server)
			if err != nil {
				return err
			}
			if err := cl.Login(cmd.Context(), server, user, password); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "Login Succeeded")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&user, "username", "u", "", "user name")
	fl.StringVarP(&password, "password", "p", "", "password (prefer --password-stdin: this one shows in ps and shell history)")
	fl.BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	rf.add(fl)
	return cmd
}

func logoutCmd(a *app) *cobra.Command {
	var rf remoteFlags
	cmd := &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Remove the credentials stored for a registry",
		Args:  rangeArgs(0, 1, "the registry"),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := "docker.io"
			if len(args) == 1 {
				server = args[0]
			}
			cl, err := rf.client(a, server)
			if err != nil {
				return err
			}
			if err := cl.Logout(server); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Removing login credentials for %s\n", server)
			return nil
		},
	}
	cmd.Flags().StringVar(&rf.authFile, "authfile", "", "credentials file (default: ~/.docker/config.json)")
	rf.tlsVerify = true
	return cmd
}

func manifestCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "manifest", Short: "Look at manifests in registries", Args: noArgs}
	var rf remoteFlags
	inspect := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Print an image's manifest or manifest list as the registry serves it",
		Args:  exactArgs(1, "the image"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := rf.client(a, args[0])
			if err != nil {
				return err
			}
			b, err := cl.ManifestInspect(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, string(b))
			return nil
		},
	}
	rf.add(inspect.Flags())
	cmd.AddCommand(inspect)
	return cmd
}

func imageCopyCmd(a *app) *cobra.Command {
	var rf remoteFlags
	var platform string
	var srcTLS, dstTLS, quiet bool
	cmd := &cobra.Command{
		Use:   "copy [OPTIONS] SOURCE DESTINATION",
		Short: "Copy an image between registries, layouts, archives and the store, as skopeo copy does",
		Long: `Copy an image. SOURCE and DESTINATION are TRANSPORT:NAME:
  docker://REF                 a registry
  oci:DIR[:REF]                an OCI layout directory (REF: its ref.name)
  oci-archive:FILE[:REF]       an OCI layout as a tar
  docker-archive:FILE[:REF]    docker save's format (REF: name:tag)
  berth:NAME                   berth's image store
Between a registry, a layout and an OCI archive the manifest is copied as
it is: the image keeps its digest.`,
		Args: exactArgs(2, "the source and the destination"),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := registry.ParseLocation(args[0])
			if err != nil {
				return usageError(cmd, err)
			}
			dst, err := registry.ParseLocation(args[1])
			if err != nil {
				return usageError(cmd, err)
			}
			p, err := platformFlag(platform)
			if err != nil {
				return usageError(cmd, err)
			}
			var insecure []string
			if !srcTLS && src.Transport == registry.Docker {
				insecure = append(insecure, src.Ref)
			}
			if !dstTLS && dst.Transport == registry.Docker {
				insecure = append(insecure, dst.Ref)
			}
			rf.tlsVerify = len(insecure) == 0
			cl, err := rf.client(a, insecure...)
			if err != nil {
				return err
			}
			s, err := a.images()
			if err != nil {
				return err
			}
			rep, wait := a.reporter(quiet, dst.Transport == registry.Docker)
			err = cl.Copy(cmd.Context(), s, src, dst, registry.CopyOptions{Platform: p, Progress: rep})
			wait()
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&platform, "platform", "", "copy this platform (os/arch[/variant]) of a multi-platform source")
	fl.BoolVar(&srcTLS, "src-tls-verify", true, "require HTTPS and a verified certificate from a source registry")
	fl.BoolVar(&dstTLS, "dest-tls-verify", true, "require HTTPS and a verified certificate from a destination registry")
	fl.BoolVarP(&quiet, "quiet", "q", false, "print nothing but errors")
	fl.StringVar(&rf.certDir, "cert-dir", "", "a directory of <registry>/ca.crt files, searched first")
	fl.StringVar(&rf.authFile, "authfile", "", "credentials file (default: ~/.docker/config.json, then Podman's auth.json)")
	return cmd
}
