package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/internal/atomicfile"
	"github.com/berthproject/berth/registry"
	"github.com/berthproject/berth/trust"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// trustStore opens the store of signatures and custody records.
func (a *app) trustStore() (*trust.Store, error) {
	return trust.OpenStore(filepath.Join(a.root, "trust"))
}

// checker loads the trust policy (policy.json and the custody policy) and
// the trust store, once.
func (a *app) checker() (*trust.Checker, error) {
	if a.trustChecker != nil {
		return a.trustChecker, nil
	}
	sp, err := trust.LoadSignaturePolicy(a.signaturePolicy)
	if err != nil {
		return nil, err
	}
	cp, err := trust.LoadCustodyPolicy(a.custodyPolicyPath())
	if err != nil {
		return nil, err
	}
	p, err := trust.NewPolicy(sp, cp)
	if err != nil {
		return nil, err
	}
	ts, err := a.trustStore()
	if err != nil {
		return nil, err
	}
	c, err := trust.NewChecker(p, ts)
	if err != nil {
		return nil, err
	}
	a.trustChecker = c
	return c, nil
}

func (a *app) custodyPolicyPath() string {
	if a.custodyPolicy != "" {
		return a.custodyPolicy
	}
	return trust.DefaultCustodyPolicyPath()
}

// attachKinds are the artifacts a registry keeps beside an image.
var attachKinds = []registry.AttachKind{
	{Tag: trust.SignatureTag, ArtifactType: trust.ArtifactTypeSignature},
	{Tag: trust.AttestationTag, ArtifactType: trust.ArtifactTypeCustody},
}

// remoteEvidence fetches what a registry has attached to a manifest.
func remoteEvidence(cl *registry.Client) trust.Remote {
	return func(ctx context.Context, repository string, subject digest.Digest) ([]image.Artifact, error) {
		return cl.Attached(ctx, repository, subject, attachKinds)
	}
}

// pullCheck enforces the trust policy on a pull.
func (a *app) pullCheck(cl *registry.Client) (func(context.Context, string, image.Candidate) error, error) {
	ch, err := a.checker()
	if err != nil {
		return nil, err
	}
	remote := remoteEvidence(cl)
	return func(ctx context.Context, repository string, c image.Candidate) error {
		return ch.PullCheck(repository, remote)(ctx, c)
	}, nil
}

// pushAttached pushes what is attached to the pushed manifest (and to the
// images its custody chain names) beside it, merged with what the
// registry has already.
func (a *app) pushAttached(ctx context.Context, cl *registry.Client, ref string, subject ocispec.Descriptor) (int, error) {
	ts, err := a.trustStore()
	if err != nil {
		return 0, err
	}
	chain, err := ts.Chain(subject.Digest)
	if err != nil {
		return 0, err
	}
	repo := ref
	if n, err := image.ParseReference(ref); err == nil {
		repo = n.Name()
	}
	var arts []image.Artifact
	for d, att := range chain {
		if arts0, err := cl.Attached(ctx, repo, d, attachKinds); err == nil {
			if col, err := trust.Collect(arts0); err == nil {
				col.Add(d, att)
				att = col[d]
			}
		}
		subj := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d}
		if d == subject.Digest {
			subj = subject
		}
		as, err := trust.Artifacts(subj, att, true)
		if err != nil {
			return 0, err
		}
		arts = append(arts, as...)
	}
	if len(arts) == 0 {
		return 0, nil
	}
	return len(chain[subject.Digest].Signatures) + len(chain[subject.Digest].Records), cl.PushArtifacts(ctx, repo, arts)
}

// readPassword is a key's password: $BERTH_PASSWORD, stdin with
// --password-stdin, or a prompt on the terminal (twice when confirm).
func (a *app) readPassword(fromStdin, confirm bool) ([]byte, error) {
	if fromStdin {
		b, err := io.ReadAll(io.LimitReader(a.stdin, 64<<10))
		if err != nil {
			return nil, err
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), nil
	}
	if p, ok := os.LookupEnv("BERTH_PASSWORD"); ok {
		return []byte(p), nil
	}
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, fmt.Errorf("no password: set BERTH_PASSWORD, use --password-stdin, or run on a terminal: %w", errdefs.ErrInvalidArgument)
	}
	fmt.Fprint(a.stderr, "Enter password for private key: ")
	p, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return nil, err
	}
	if confirm {
		fmt.Fprint(a.stderr, "Enter password for private key again: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return nil, err
		}
		if string(p) != string(p2) {
			return nil, fmt.Errorf("the passwords differ: %w", errdefs.ErrInvalidArgument)
		}
	}
	return p, nil
}

func (a *app) privateKey(path string, fromStdin bool) (*trust.PrivateKey, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	pw, err := a.readPassword(fromStdin, false)
	if err != nil {
		return nil, err
	}
	defer clear(pw)
	return trust.LoadPrivateKey(path, pw)
}

func keyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Manage signing keys", Args: noArgs}
	var stdin, force bool
	gen := &cobra.Command{
		Use:   "generate [OPTIONS] NAME",
		Short: "Make a key pair: NAME.key (ECDSA P-256, encrypted as cosign's) and NAME.pub",
		Args:  exactArgs(1, "the key's name (a path without .key)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			priv, pub := args[0]+".key", args[0]+".pub"
			if !force {
				for _, p := range []string{priv, pub} {
					if _, err := os.Stat(p); err == nil {
						return fmt.Errorf("%s exists: remove it or use --force: %w", p, errdefs.ErrAlreadyExists)
					}
				}
			}
			pw, err := a.readPassword(stdin, true)
			if err != nil {
				return err
			}
			defer clear(pw)
			kp, pp, err := trust.GenerateKey(pw)
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(priv, kp, 0o600); err != nil {
				return err
			}
			if err := atomicfile.WriteFile(pub, pp, 0o644); err != nil {
				return err
			}
			k, _ := trust.ParsePublicKey(pp)
			fmt.Fprintf(a.stdout, "Private key written to %s\nPublic key written to %s\nKey ID: %s\n", priv, pub, k.ID())
			return nil
		},
	}
	gen.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from stdin")
	gen.Flags().BoolVar(&force, "force", false, "replace key files that exist")
	cmd.AddCommand(gen)
	return cmd
}

func signCmd(a *app) *cobra.Command {
	var key string
	var stdin bool
	cmd := &cobra.Command{
		Use:   "sign --key KEY IMAGE",
		Short: "Sign a stored image (a sigstore simple signing, pushed with the image)",
		Args:  exactArgs(1, "the image"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return usageError(cmd, errors.New("--key is required"))
			}
			ctx := cmd.Context()
			s, err := a.images()
			if err != nil {
				return err
			}
			subj, _, err := trust.SubjectOf(ctx, s, args[0])
			if err != nil {
				return err
			}
			if subj.Name == "" {
				return fmt.Errorf("sign %s: the image has no name to sign for: tag it first: %w", args[0], errdefs.ErrInvalidArgument)
			}
			k, err := a.privateKey(key, stdin)
			if err != nil {
				return err
			}
			sig, err := trust.Sign(k, subj.Name, subj.Manifest.Digest)
			if err != nil {
				return err
			}
			ts, err := a.trustStore()
			if err != nil {
				return err
			}
			if err := ts.Add(subj.Manifest.Digest, trust.Attached{Signatures: []trust.Signature{sig}}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Signed %s (%s) with key %s\n", image.FamiliarString(subj.Name), subj.Manifest.Digest, k.Public().Short())
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the private key (NAME.key)")
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the key's password from stdin")
	return cmd
}

func verifyCmd(a *app) *cobra.Command {
	var keys []string
	var custody bool
	var output string
	cmd := &cobra.Command{
		Use:   "verify [--key PUB] [--custody] IMAGE",
		Short: "Verify a stored image's signatures (--key) or its whole chain of custody (--custody)",
		Args:  exactArgs(1, "the image"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(keys) == 0 && !custody {
				return usageError(cmd, errors.New("give --key PUB, --custody, or both"))
			}
			if output != "" && output != "json" && output != "table" {
				return usageError(cmd, fmt.Errorf("--output %q: table or json", output))
			}
			ctx := cmd.Context()
			s, err := a.images()
			if err != nil {
				return err
			}
			ts, err := a.trustStore()
			if err != nil {
				return err
			}
			subj, _, err := trust.SubjectOf(ctx, s, args[0])
			if err != nil {
				return err
			}
			var sp *trust.SignaturePolicy
			var cp *trust.CustodyPolicy
			if len(keys) > 0 {
				reqs := make([]map[string]any, 0, 1)
				abs := make([]string, len(keys))
				for i, k := range keys {
					abs[i], _ = filepath.Abs(k)
				}
				reqs = append(reqs, map[string]any{"type": "sigstoreSigned", "keyPaths": abs})
				b, _ := json.Marshal(map[string]any{"default": reqs})
				if sp, err = trust.ParseSignaturePolicy(b, ""); err != nil {
					return err
				}
			}
			if custody {
				ch, err := a.checker()
				if err != nil {
					return err
				}
				cp = ch.Policy().Custody
				if sp == nil {
					sp = ch.Policy().Signatures
				}
				if r, _ := cp.For(subj.Name); r == nil {
					return fmt.Errorf("verify %s: no custody policy covers it (%s): set one with berth trust set: %w", image.FamiliarString(subj.Name), cp.Path(), errdefs.ErrInvalidArgument)
				}
			} else {
				cp = &trust.CustodyPolicy{Version: trust.CustodyPolicyVersion, Scopes: map[string]*trust.CustodyRule{}}
			}
			p, err := trust.NewPolicy(sp, cp)
			if err != nil {
				return err
			}
			res, err := trust.Verify(ctx, p, subj, ts)
			if err != nil {
				return fmt.Errorf("verify %s: %w", args[0], err)
			}
			if output == "json" {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			printResult(a.stdout, res, custody)
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&keys, "key", nil, "a public key the signature must be by (repeatable: any of them)")
	cmd.Flags().BoolVar(&custody, "custody", false, "walk the custody chain under the trust policy")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func printResult(w io.Writer, res *trust.Result, custody bool) {
	fmt.Fprintf(w, "Image:   %s\nDigest:  %s\n", image.FamiliarString(res.Image), res.Digest)
	for _, s := range res.Signatures {
		fmt.Fprintf(w, "Signed:  key %s, for %s (signature %s)\n", s.KeyID[:16], image.FamiliarString(s.Reference), s.Digest.Encoded()[:12])
	}
	if !custody {
		fmt.Fprintln(w, "Verified OK")
		return
	}
	fmt.Fprintf(w, "Custody: %s, scope %s\n", chainString(res), res.CustodyScope)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tDIGEST\tSIZE\tCREATED BY\tTEAM\tKEY ID\tVERIFIED")
	for _, l := range res.Layers {
		team, kid, ok := l.Team, l.KeyID, "no"
		if team == "" {
			team = "-"
		}
		if len(kid) > 16 {
			kid = kid[:16]
		} else if kid == "" {
			kid = "-"
		}
		if l.Verified {
			ok = "yes"
		}
		cb := strings.TrimPrefix(l.CreatedBy, "/bin/sh -c ")
		if len(cb) > 40 {
			cb = cb[:37] + "..."
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Index, l.Digest.Encoded()[:12], humanSize(l.Size), cb, team, kid, ok)
	}
	tw.Flush()
}

func chainString(res *trust.Result) string {
	var names []string
	for _, t := range res.Teams {
		names = append(names, t.Team)
	}
	return strings.Join(names, " → ")
}

func custodyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "custody", Short: "Custody records: a team vouching for the layers it added", Args: noArgs}
	var co custodyOpts
	sign := &cobra.Command{
		Use:   "sign --key KEY --team NAME [--base BASE] IMAGE",
		Short: "Verify BASE, check it is the bottom of IMAGE, and sign the team's custody record for the layers on top",
		Args:  exactArgs(1, "the image"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if co.key == "" || co.team == "" {
				return usageError(cmd, errors.New("--key and --team are required"))
			}
			return a.custodySign(cmd.Context(), co, args[0])
		},
	}
	co.add(sign, "")
	cmd.AddCommand(sign)
	return cmd
}

// custodyOpts are custody sign's flags, which commit takes too.
type custodyOpts struct {
	key, team, base string
	stdin           bool
}

func (co *custodyOpts) add(cmd *cobra.Command, prefix string) {
	fl := cmd.Flags()
	fl.StringVar(&co.key, prefix+"key", "", "the team's private key: sign a custody record for the layers it added")
	fl.StringVar(&co.team, prefix+"team", "", "the team's name, as the custody policy names it")
	base := "the image the team built on (none: the team vouches for every layer)"
	if prefix != "" {
		base = "the image the team built on (default: the container's image)"
	}
	fl.StringVar(&co.base, prefix+"base", "", base)
	if prefix == "" {
		fl.BoolVar(&co.stdin, "password-stdin", false, "read the key's password from stdin")
	}
}

func (a *app) custodySign(ctx context.Context, co custodyOpts, ref string) error {
	s, err := a.images()
	if err != nil {
		return err
	}
	ch, err := a.checker()
	if err != nil {
		return err
	}
	subj, _, err := trust.SubjectOf(ctx, s, ref)
	if err != nil {
		return err
	}
	req := trust.CustodyRequest{Team: co.team, Image: subj, BaseEvidence: ch.Store()}
	if co.base != "" {
		b, _, err := trust.SubjectOf(ctx, s, co.base)
		if err != nil {
			return fmt.Errorf("custody sign: base: %w", err)
		}
		req.Base = &b
	}
	k, err := a.privateKey(co.key, co.stdin)
	if err != nil {
		return err
	}
	req.Key = k
	rec, base, err := trust.SignCustody(ctx, ch.Policy(), req)
	if err != nil {
		return err
	}
	if err := ch.Store().Add(subj.Manifest.Digest, trust.Attached{Records: [][]byte{rec}}); err != nil {
		return err
	}
	from := 0
	if req.Base != nil {
		from = len(req.Base.Parsed.Layers)
	}
	fmt.Fprintf(a.stdout, "Team %s vouched for layers %d-%d of %s with key %s (record %s)\n", co.team, from, len(subj.Parsed.Layers)-1,
		image.FamiliarString(subj.Name), k.Public().Short(), digest.FromBytes(rec).Encoded()[:12])
	if base != nil {
		fmt.Fprintf(a.stdout, "Base %s verified: %d signature(s), chain %s\n", image.FamiliarString(base.Image), len(base.Signatures), orNone(chainString(base)))
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func trustCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "trust", Short: "Show or set the custody policy: which teams, in order, must vouch for an image's layers", Args: noArgs}
	var output string
	show := &cobra.Command{
		Use:   "show [SCOPE]",
		Short: "Show the custody policy (and which policy.json scope applies)",
		Args:  rangeArgs(0, 1, "a scope or an image name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cp, err := trust.LoadCustodyPolicy(a.custodyPolicyPath())
			if err != nil {
				return err
			}
			scopes := cp.ScopeNames()
			if len(args) == 1 {
				_, sc := cp.For(args[0])
				if sc == "" {
					if _, ok := cp.Scopes[args[0]]; ok {
						sc = args[0]
					} else {
						return fmt.Errorf("no custody scope covers %s (%s): %w", args[0], cp.Path(), errdefs.ErrNotFound)
					}
				}
				scopes = []string{sc}
			}
			if output == "json" {
				sub := map[string]*trust.CustodyRule{}
				for _, s := range scopes {
					sub[s] = cp.Scopes[s]
				}
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"path": cp.Path(), "version": cp.Version, "scopes": sub})
			}
			fmt.Fprintf(a.stdout, "Custody policy: %s\n", cp.Path())
			if len(scopes) == 0 {
				fmt.Fprintln(a.stdout, "No scope: no custody is required anywhere.")
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SCOPE\tTEAMS (bottom first)\tKEYS\tALL LAYERS")
			for _, s := range scopes {
				r := cp.Scopes[s]
				var ks []string
				for _, t := range r.Teams {
					var ids []string
					for _, k := range t.PublicKeys() {
						ids = append(ids, k.Short())
					}
					ks = append(ks, t.Name+"="+strings.Join(ids, ","))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", s, strings.Join(r.TeamNames(), " → "), strings.Join(ks, " "), r.RequireAll())
			}
			return tw.Flush()
		},
	}
	show.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	var teams []string
	var allLayers, remove bool
	set := &cobra.Command{
		Use:   "set SCOPE --team NAME=PUBKEY [--team NAME=PUBKEY...] [--require-all-layers=false] | SCOPE --remove",
		Short: "Require teams, in order from the bottom layer up, for a registry, repository or repository prefix",
		Args:  exactArgs(1, "the scope (registry, repository or repository prefix)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cp, err := trust.LoadCustodyPolicy(a.custodyPolicyPath())
			if err != nil {
				return err
			}
			if remove {
				if len(teams) > 0 {
					return usageError(cmd, errors.New("--remove takes no --team"))
				}
				return cp.Set(args[0], nil)
			}
			if len(teams) == 0 {
				return usageError(cmd, errors.New("give the teams with --team NAME=PUBKEY, bottom first"))
			}
			rule := &trust.CustodyRule{}
			for _, t := range teams {
				name, files, ok := strings.Cut(t, "=")
				if !ok || name == "" || files == "" {
					return usageError(cmd, fmt.Errorf("--team %q: NAME=PUBKEY[,PUBKEY...]", t))
				}
				tk := trust.TeamKeys{Name: name}
				for _, f := range strings.Split(files, ",") {
					k, err := trust.LoadPublicKey(f)
					if err != nil {
						return err
					}
					tk.Keys = append(tk.Keys, string(k.PEM()))
				}
				rule.Teams = append(rule.Teams, tk)
			}
			if cmd.Flags().Changed("require-all-layers") {
				v := allLayers
				rule.RequireAllLayers = &v
			}
			if err := cp.Set(args[0], rule); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: %s\n", args[0], strings.Join(rule.TeamNames(), " → "))
			return nil
		},
	}
	set.Flags().StringArrayVar(&teams, "team", nil, "a team and its public key(s): NAME=PUBKEY[,PUBKEY] (repeat, bottom first)")
	set.Flags().BoolVar(&allLayers, "require-all-layers", true, "every layer must belong to a team (false: layers below the first team may not)")
	set.Flags().BoolVar(&remove, "remove", false, "remove the scope")
	cmd.AddCommand(show, set)
	return cmd
}
