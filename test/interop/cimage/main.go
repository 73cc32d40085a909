// Command cimage is the peer of berth's signatures in the interop tests:
// upstream containers/image (what podman and skopeo run), built with
// sigstore, which Debian's podman and skopeo are not. It copies an image
// under a policy.json and registries.d, and signs with containers/image's
// own sigstore signer.
//
//	cimage copy POLICY REGISTRIES_D SRC DEST
//	cimage sign KEY PASSWORD SRC DEST     (copy SRC to DEST, signing DEST)
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/containers/image/v5/copy"
	"github.com/containers/image/v5/signature"
	"github.com/containers/image/v5/signature/signer"
	"github.com/containers/image/v5/signature/sigstore"
	"github.com/containers/image/v5/transports/alltransports"
	"github.com/containers/image/v5/types"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cimage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 5 {
		return fmt.Errorf("usage: cimage copy POLICY REGISTRIES_D SRC DEST | cimage sign KEY PASSWORD SRC DEST")
	}
	ctx := context.Background()
	src, err := alltransports.ParseImageName(args[3])
	if err != nil {
		return err
	}
	dst, err := alltransports.ParseImageName(args[4])
	if err != nil {
		return err
	}
	sys := &types.SystemContext{DockerInsecureSkipTLSVerify: types.OptionalBoolTrue}
	opts := &copy.Options{SourceCtx: sys, DestinationCtx: sys}
	var pc *signature.PolicyContext
	switch args[0] {
	case "copy":
		opts.RemoveSignatures = true // the destination (an OCI layout) keeps none; the policy checks the source
		sys.RegistriesDirPath = args[2]
		p, err := signature.NewPolicyFromFile(args[1])
		if err != nil {
			return err
		}
		if pc, err = signature.NewPolicyContext(p); err != nil {
			return err
		}
	case "sign":
		// Sigstore signatures go to the registry as attachments.
		d, err := os.MkdirTemp("", "cimage-registries.d")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		if err := os.WriteFile(d+"/default.yaml", []byte("default-docker:\n  use-sigstore-attachments: true\n"), 0o644); err != nil {
			return err
		}
		sys.RegistriesDirPath = d
		p := &signature.Policy{Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()}}
		if pc, err = signature.NewPolicyContext(p); err != nil {
			return err
		}
		key, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		s, err := sigstore.NewSigner(sigstore.WithPrivateKeyFile(args[1], []byte(args[2])))
		if err != nil {
			return fmt.Errorf("signer (key of %d bytes): %w", len(key), err)
		}
		defer s.Close()
		opts.Signers = []*signer.Signer{s}
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
	defer pc.Destroy()
	_, err = copy.Image(ctx, pc, dst, src, opts)
	return err
}
