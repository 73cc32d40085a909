package trust

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/berthproject/berth/errdefs"
	"github.com/berthproject/berth/image"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testKey makes a key pair (cheaply: the scrypt cost is in GenerateKey,
// measured once in TestKeys).
type testKey struct {
	priv *PrivateKey
	pem  string
}

var keyCache = map[string]testKey{}

func key(t testing.TB, name string) testKey {
	t.Helper()
	if k, ok := keyCache[name]; ok {
		return k
	}
	privPEM, pubPEM, err := GenerateKey([]byte("pw-" + name))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParsePrivateKey(privPEM, []byte("pw-"+name))
	if err != nil {
		t.Fatal(err)
	}
	k := testKey{priv: priv, pem: string(pubPEM)}
	keyCache[name] = k
	return k
}

func TestKeys(t *testing.T) {
	privPEM, pubPEM, err := GenerateKey([]byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(privPEM), "ENCRYPTED SIGSTORE PRIVATE KEY") || strings.Contains(string(privPEM), "BEGIN PRIVATE KEY") {
		t.Fatalf("private key not in cosign's encrypted format:\n%s", privPEM)
	}
	k, err := ParsePrivateKey(privPEM, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID() != pub.ID() || len(pub.ID()) != 64 {
		t.Fatalf("key IDs %s and %s", k.ID(), pub.ID())
	}
	for _, tc := range []struct {
		name string
		b    []byte
		pw   string
		want string
	}{
		{"wrong password", privPEM, "battery staple", "wrong password"},
		{"not PEM", []byte("garbage"), "correct horse", "not PEM"},
		{"truncated", privPEM[:120], "correct horse", "not PEM"},
		{"a public key", pubPEM, "correct horse", `a PEM "PUBLIC KEY" block`},
		{"corrupt body", []byte(strings.Replace(string(privPEM), "\n", "\nAAAA", 2)), "correct horse", "private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePrivateKey(tc.b, []byte(tc.pw))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), tc.pw) {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
	if _, _, err := GenerateKey(nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("no password: %v", err)
	}
}

func TestSignatures(t *testing.T) {
	k, other := key(t, "a"), key(t, "b")
	pub, _ := ParsePublicKey([]byte(k.pem))
	opub, _ := ParsePublicKey([]byte(other.pem))
	m := digest.FromString("manifest")
	s, err := Sign(k.priv, "registry.example/app:1", m)
	if err != nil {
		t.Fatal(err)
	}
	c, err := VerifySignature(pub, s)
	if err != nil || c.DockerReference != "registry.example/app:1" || c.ManifestDigest != m {
		t.Fatalf("claim %+v, %v", c, err)
	}
	if _, err := VerifySignature(opub, s); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("another key: %v", err)
	}
	bad := s
	bad.Payload = []byte(strings.Replace(string(s.Payload), "app:1", "app:2", 1))
	if _, err := VerifySignature(pub, bad); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("altered payload: %v", err)
	}
	huge := Signature{Payload: make([]byte, 10<<20), Signature: s.Signature}
	if _, err := VerifySignature(pub, huge); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("a 10 MB payload: %v", err)
	}
	// The payload is the one containers/image and cosign read.
	var p map[string]map[string]any
	json.Unmarshal(s.Payload, &p)
	if p["critical"]["type"] != "cosign container image signature" {
		t.Fatalf("payload %s", s.Payload)
	}
}

func TestIdentityMatches(t *testing.T) {
	for _, tc := range []struct {
		si           *SignedIdentity
		image, signd string
		want         bool
	}{
		{nil, "r.example/a:1", "r.example/a:1", true},
		{nil, "r.example/a:1", "r.example/a:2", false},
		{nil, "r.example/a:1", "r.example/a", false},
		{nil, "r.example/a@sha256:" + strings.Repeat("a", 64), "r.example/a:7", true},
		{nil, "r.example/a:1", "r.example/b:1", false},
		{&SignedIdentity{Type: "matchExact"}, "r.example/a:1", "r.example/a:1", true},
		{&SignedIdentity{Type: "matchExact"}, "r.example/a@sha256:" + strings.Repeat("a", 64), "r.example/a:1", false},
		{&SignedIdentity{Type: "matchRepository"}, "r.example/a:1", "r.example/a:9", true},
		{&SignedIdentity{Type: "matchRepository"}, "r.example/a:1", "r.example/b:1", false},
		{&SignedIdentity{Type: "exactReference", DockerReference: "r.example/x:1"}, "r.example/a:1", "r.example/x:1", true},
		{&SignedIdentity{Type: "exactRepository", DockerRepository: "r.example/x"}, "r.example/a:1", "r.example/x:3", true},
		{&SignedIdentity{Type: "remapIdentity", Prefix: "mirror.example/lib", SignedPrefix: "r.example/lib"}, "mirror.example/lib/a:1", "r.example/lib/a:1", true},
		{&SignedIdentity{Type: "remapIdentity", Prefix: "mirror.example/lib", SignedPrefix: "r.example/lib"}, "mirror.example/libx/a:1", "r.example/libx/a:1", false},
	} {
		if got := identityMatches(tc.si, tc.image, tc.signd); got != tc.want {
			t.Errorf("%+v: image %s signed %s: %v, want %v", tc.si, tc.image, tc.signd, got, tc.want)
		}
	}
}

func TestPolicyScopes(t *testing.T) {
	p, err := ParseSignaturePolicy([]byte(`{"default":[{"type":"reject"}],"transports":{"docker":{
		"r.example/team/app:1":[{"type":"insecureAcceptAnything"}],
		"r.example/team":[{"type":"insecureAcceptAnything"}],
		"*.example":[{"type":"insecureAcceptAnything"}]}}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"r.example/team/app:1": "r.example/team/app:1",
		"r.example/team/app:2": "r.example/team",
		"r.example/team/x/y:1": "r.example/team",
		"q.example/z:1":        "*.example",
		"docker.io/library/b":  "default",
	} {
		if _, got := p.For(name); got != want {
			t.Errorf("%s: scope %s, want %s", name, got, want)
		}
	}
}

func TestPolicyBadInput(t *testing.T) {
	for name, tc := range map[string]struct{ json, want string }{
		"not JSON":          {`{"default": [`, "not a valid policy.json"},
		"no default":        {`{"transports":{}}`, `no "default"`},
		"unknown type":      {`{"default":[{"type":"trustMe"}]}`, `unknown requirement type "trustMe"`},
		"unknown field":     {`{"default":[{"type":"reject","keyPathz":"x"}]}`, "not a valid policy.json"},
		"no key":            {`{"default":[{"type":"sigstoreSigned"}]}`, "names no key"},
		"missing key file":  {`{"default":[{"type":"sigstoreSigned","keyPath":"/nonexistent.pub"}]}`, "nonexistent.pub"},
		"bad keyData":       {`{"default":[{"type":"sigstoreSigned","keyData":"!!"}]}`, "not base64"},
		"empty scope":       {`{"default":[{"type":"reject"}],"transports":{"docker":{"r.example":[]}}}`, "empty list"},
		"bad identity":      {`{"default":[{"type":"sigstoreSigned","keyData":"` + base64.StdEncoding.EncodeToString([]byte(key(t, "a").pem)) + `","signedIdentity":{"type":"whatever"}}]}`, `unknown signedIdentity type`},
		"remap no prefixes": {`{"default":[{"type":"sigstoreSigned","keyData":"` + base64.StdEncoding.EncodeToString([]byte(key(t, "a").pem)) + `","signedIdentity":{"type":"remapIdentity"}}]}`, "needs prefix"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseSignaturePolicy([]byte(tc.json), t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	for name, tc := range map[string]struct{ json, want string }{
		"version":   {`{"version":2,"scopes":{}}`, "version 2"},
		"no team":   {`{"version":1,"scopes":{"r.example/a":{"teams":[]}}}`, "names no team"},
		"no keys":   {`{"version":1,"scopes":{"r.example/a":{"teams":[{"name":"x"}]}}}`, "has no key"},
		"bad key":   {`{"version":1,"scopes":{"r.example/a":{"teams":[{"name":"x","keys":["nope"]}]}}}`, "not PEM"},
		"twice":     {fmt.Sprintf(`{"version":1,"scopes":{"r.example/a":{"teams":[{"name":"x","keys":[%q]},{"name":"x","keys":[%q]}]}}}`, key(t, "a").pem, key(t, "a").pem), "named twice"},
		"tag scope": {`{"version":1,"scopes":{"r.example/a:1":{"teams":[]}}}`, "no tag"},
	} {
		t.Run("custody "+name, func(t *testing.T) {
			_, err := ParseCustodyPolicy([]byte(tc.json), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// fakeImage is a subject of n layers; the first `shared` layers are
// base's when base is given.
func fakeImage(name string, n int, base *Subject, salt string) Subject {
	s := Subject{Name: name}
	for i := 0; i < n; i++ {
		var l ocispec.Descriptor
		var diff digest.Digest
		if base != nil && i < len(base.Parsed.Layers) {
			l, diff = base.Parsed.Layers[i], base.Config.RootFS.DiffIDs[i]
		} else {
			l = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString(fmt.Sprintf("%s-%s-%d", name, salt, i)), Size: int64(100 + i)}
			diff = digest.FromString(fmt.Sprintf("diff-%s-%s-%d", name, salt, i))
		}
		s.Parsed.Layers = append(s.Parsed.Layers, l)
		s.Config.RootFS.DiffIDs = append(s.Config.RootFS.DiffIDs, diff)
		s.Config.History = append(s.Config.History, ocispec.History{CreatedBy: fmt.Sprintf("step %d", i)})
	}
	s.Config.RootFS.Type = "layers"
	cfg, _ := json.Marshal(s.Config)
	s.Parsed.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	mb, _ := json.Marshal(s.Parsed)
	s.Manifest = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	return s
}

func custodyPolicy(t testing.TB, scope string, teams ...string) *Policy {
	t.Helper()
	var tk []map[string]any
	for _, tm := range teams {
		tk = append(tk, map[string]any{"name": tm, "keys": []string{key(t, tm).pem}})
	}
	b, _ := json.Marshal(map[string]any{"version": 1, "scopes": map[string]any{scope: map[string]any{"teams": tk}}})
	cp, err := ParseCustodyPolicy(b, "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPolicy(AcceptAnything(), cp)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// chain builds platform (2 layers) → middleware (+1) → app (+2), each
// record signed by its team, in ev.
func chain(t *testing.T, p *Policy, ev Collected) (plat, mw, app Subject) {
	t.Helper()
	ctx := context.Background()
	plat = fakeImage("r.example/platform/base:1", 2, nil, "")
	mw = fakeImage("r.example/mw/rt:1", 3, &plat, "")
	app = fakeImage("r.example/app/web:1", 5, &mw, "")
	var base *Subject
	for _, s := range []struct {
		team string
		img  Subject
	}{{"platform", plat}, {"middleware", mw}, {"app", app}} {
		pp := custodyPolicy(t, "r.example", teamsBelow(s.team)...)
		if base == nil {
			pp = p
		}
		rec, _, err := SignCustody(ctx, pp, CustodyRequest{Key: key(t, s.team).priv, Team: s.team, Image: s.img, Base: base, BaseEvidence: ev})
		if err != nil {
			t.Fatalf("%s: %v", s.team, err)
		}
		ev.Add(s.img.Manifest.Digest, Attached{Records: [][]byte{rec}})
		img := s.img
		base = &img
	}
	return plat, mw, app
}

func teamsBelow(team string) []string {
	switch team {
	case "middleware":
		return []string{"platform"}
	case "app":
		return []string{"platform", "middleware"}
	}
	return []string{"platform"}
}

func TestCustodyChain(t *testing.T) {
	ctx := context.Background()
	p := custodyPolicy(t, "r.example/app", "platform", "middleware", "app")
	ev := Collected{}
	_, _, app := chain(t, p, ev)
	res, err := Verify(ctx, p, app, ev)
	if err != nil {
		t.Fatal(err)
	}
	if got := chainString(res); got != "platform→middleware→app" {
		t.Fatalf("chain %s", got)
	}
	wantTeam := []string{"platform", "platform", "middleware", "app", "app"}
	for i, l := range res.Layers {
		if !l.Verified || l.Team != wantTeam[i] || l.KeyID != key(t, wantTeam[i]).priv.ID() || l.CreatedBy != fmt.Sprintf("step %d", i) {
			t.Errorf("layer %d: %+v", i, l)
		}
	}
	mwTeam := res.Teams[1]
	if mwTeam.Previous == nil || mwTeam.Previous.Digest != res.Teams[0].Record || len(mwTeam.Verified) != 1 || mwTeam.Verified[0].Kind != "custody" {
		t.Fatalf("middleware's record does not name platform's: %+v", mwTeam)
	}
}

func chainString(r *Result) string {
	var s []string
	for _, t := range r.Teams {
		s = append(s, t.Team)
	}
	return strings.Join(s, "→")
}

func TestCustodyRefusals(t *testing.T) {
	ctx := context.Background()
	p := custodyPolicy(t, "r.example/app", "platform", "middleware", "app")
	ev := Collected{}
	plat, mw, app := chain(t, p, ev)
	verifyErr := func(t *testing.T, p *Policy, img Subject, ev Evidence, want string, layer int, team string) {
		t.Helper()
		_, err := Verify(ctx, p, img, ev)
		var ve *VerifyError
		if !errors.As(err, &ve) {
			t.Fatalf("got %v, want a VerifyError", err)
		}
		if !strings.Contains(ve.Error(), want) || ve.Layer != layer || ve.Team != team {
			t.Fatalf("got %q (layer %d, team %q), want %q (layer %d, team %q)", ve.Error(), ve.Layer, ve.Team, want, layer, team)
		}
		if !IsUntrusted(err) {
			t.Fatalf("%v is not ErrUntrusted", err)
		}
	}
	t.Run("no record", func(t *testing.T) {
		img := fakeImage("r.example/app/x:1", 4, &app, "")
		verifyErr(t, p, img, ev, "no custody record for this image", 3, "app")
	})
	t.Run("a team missing", func(t *testing.T) {
		short := mw
		short.Name = "r.example/app/short:1"
		verifyErr(t, p, short, ev, "no custody record in the chain platform → middleware", -1, "app")
	})
	t.Run("untrusted key", func(t *testing.T) {
		img := fakeImage("r.example/app/evil:1", 4, &mw, "evil")
		rec, _, err := SignCustody(ctx, custodyPolicy(t, "r.example", "platform", "middleware"), CustodyRequest{Key: key(t, "mallory").priv, Team: "app", Image: img, Base: &mw, BaseEvidence: ev})
		if err != nil {
			t.Fatal(err)
		}
		ev2 := Collected{}
		for d, a := range ev {
			ev2[d] = a
		}
		ev2.Add(img.Manifest.Digest, Attached{Records: [][]byte{rec}})
		verifyErr(t, p, img, ev2, "does not verify with any key the policy trusts for app", -1, "app")
	})
	t.Run("wrong order", func(t *testing.T) {
		verifyErr(t, custodyPolicy(t, "r.example/app", "platform", "app", "middleware"), app, ev, "teams in the wrong order: platform → middleware → app", -1, "")
	})
	t.Run("layer replaced", func(t *testing.T) {
		img := app
		img.Parsed.Layers = append([]ocispec.Descriptor(nil), app.Parsed.Layers...)
		img.Parsed.Layers[3].Digest = digest.FromString("other")
		mb, _ := json.Marshal(img.Parsed)
		img.Manifest.Digest = digest.FromBytes(mb)
		ev2 := Collected{}
		for d, a := range ev {
			ev2[d] = a
		}
		ev2.Add(img.Manifest.Digest, ev[app.Manifest.Digest])
		verifyErr(t, p, img, ev2, "the layer was replaced after signing", 3, "app")
	})
	t.Run("record copied", func(t *testing.T) {
		ev2 := Collected{}
		for d, a := range ev {
			ev2[d] = a
		}
		other := fakeImage("r.example/app/other:1", 2, nil, "o")
		ev2.Add(other.Manifest.Digest, ev[app.Manifest.Digest])
		verifyErr(t, p, other, ev2, "copied from another image", -1, "app")
	})
	t.Run("tampered payload", func(t *testing.T) {
		rec := ev[app.Manifest.Digest].Records[0]
		var env map[string]any
		json.Unmarshal(rec, &env)
		body, _ := base64.StdEncoding.DecodeString(env["payload"].(string))
		body = []byte(strings.Replace(string(body), `"team":"app"`, `"team":"app" `, 1))
		env["payload"] = base64.StdEncoding.EncodeToString(body)
		b, _ := json.Marshal(env)
		verifyErr(t, p, app, Collected{app.Manifest.Digest: {Records: [][]byte{b}}}, "payload was altered", -1, "app")
	})
	t.Run("unknown predicate version", func(t *testing.T) {
		st := Statement{Type: StatementType, PredicateType: PredicateType, Subject: []StatementSubject{{Name: "x", Digest: map[string]string{"sha256": app.Manifest.Digest.Encoded()}}},
			Predicate: Predicate{Version: 2, Team: "app", Layers: []LayerClaim{{Index: 4}}}}
		rec, err := signRecord(ctx, key(t, "app").priv, st)
		if err != nil {
			t.Fatal(err)
		}
		verifyErr(t, p, app, Collected{app.Manifest.Digest: {Records: [][]byte{rec}}}, "predicate version 2 is not one berth knows", -1, "")
	})
	t.Run("base not a prefix (a record signed around SignCustody)", func(t *testing.T) {
		// app's key signs a record naming middleware's image and record as
		// its base, for an image whose layer 2 is not middleware's.
		img := fakeImage("r.example/app/np:1", 5, &plat, "np")
		claims, _ := layerClaims(img, 3)
		mwRec := ev[mw.Manifest.Digest].Records[0]
		st := Statement{Type: StatementType, PredicateType: PredicateType,
			Subject: []StatementSubject{{Name: "r.example/app/np", Digest: map[string]string{"sha256": img.Manifest.Digest.Encoded()}}},
			Predicate: Predicate{Version: PredicateVersion, Team: "app", Layers: claims,
				Base:     &BaseClaim{Name: mw.Name, ManifestDigest: mw.Manifest.Digest, LayerCount: 3},
				Previous: &RecordRef{Digest: digest.FromBytes(mwRec), Team: "middleware"}}}
		rec, err := signRecord(ctx, key(t, "app").priv, st)
		if err != nil {
			t.Fatal(err)
		}
		ev2 := Collected{}
		for d, a := range ev {
			ev2[d] = a
		}
		ev2.Add(img.Manifest.Digest, Attached{Records: [][]byte{rec}})
		verifyErr(t, p, img, ev2, "where team middleware signed for", 2, "middleware")
	})
	t.Run("base not a prefix", func(t *testing.T) {
		img := fakeImage("r.example/app/y:1", 3, nil, "y")
		_, _, err := SignCustody(ctx, custodyPolicy(t, "r.example", "platform"), CustodyRequest{Key: key(t, "app").priv, Team: "app", Image: img, Base: &plat, BaseEvidence: ev})
		if err == nil || !strings.Contains(err.Error(), "is not a prefix of the image: layer 0") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("base fails its policy", func(t *testing.T) {
		img := fakeImage("r.example/app/z:1", 3, &plat, "z")
		_, _, err := SignCustody(ctx, custodyPolicy(t, "r.example", "nobody"), CustodyRequest{Key: key(t, "app").priv, Team: "app", Image: img, Base: &plat, BaseEvidence: ev})
		if !IsUntrusted(err) || !strings.Contains(err.Error(), "the base does not verify") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestArtifactsRoundTrip(t *testing.T) {
	k := key(t, "a")
	m := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 10}
	s1, _ := Sign(k.priv, "r.example/a:1", m.Digest)
	s2, _ := Sign(k.priv, "r.example/a:2", m.Digest)
	att := Attached{Signatures: []Signature{s1, s2}, Records: [][]byte{[]byte(`{"payloadType":"x"}`)}}
	for _, tagged := range []bool{true, false} {
		arts, err := Artifacts(m, att, tagged)
		if err != nil {
			t.Fatal(err)
		}
		want := 2
		if tagged {
			want = 4
		}
		if len(arts) != want {
			t.Fatalf("tagged %v: %d artifacts, want %d", tagged, len(arts), want)
		}
		col, err := Collect(arts)
		if err != nil {
			t.Fatal(err)
		}
		got := col[m.Digest]
		if len(got.Signatures) != 2 || len(got.Records) != 1 || len(col) != 1 {
			t.Fatalf("tagged %v: round trip gave %+v", tagged, col)
		}
	}
	if d, ok := TagSubject(SignatureTag(m.Digest)); !ok || d != m.Digest {
		t.Fatalf("TagSubject: %s %v", d, ok)
	}
	for _, bad := range []string{"latest", "sha256-zz.sig", "sha256-.att"} {
		if _, ok := TagSubject(bad); ok {
			t.Errorf("TagSubject(%q) accepted", bad)
		}
	}
}

func TestStore(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("x")
	sig, _ := Sign(key(t, "a").priv, "r.example/a:1", d)
	for i := 0; i < 2; i++ { // adding twice keeps one
		if err := s.Add(d, Attached{Signatures: []Signature{sig}, Records: [][]byte{[]byte("r")}}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := s.Attached("", d)
	if err != nil || len(a.Signatures) != 1 || len(a.Records) != 1 {
		t.Fatalf("%+v %v", a, err)
	}
	if a, err := s.Attached("", digest.FromString("none")); err != nil || !a.Empty() {
		t.Fatalf("nothing attached: %+v %v", a, err)
	}
	if _, err := s.Attached("", "sha256:../../etc"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("a bad digest: %v", err)
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseRecord(b)
	})
}

func FuzzParseSignaturePolicy(f *testing.F) {
	f.Add([]byte(`{"default":[{"type":"insecureAcceptAnything"}]}`))
	f.Add([]byte(`{"default":[{"type":"reject"}],"transports":{"docker":{"a":[{"type":"reject"}]}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseSignaturePolicy(b, t.TempDir())
		ParseCustodyPolicy(b, t.TempDir())
	})
}

// TestPullEvidenceFetchesOnce: what a pull fetches for verification is not
// fetched again when the rest of the chain is.
func TestPullEvidenceFetchesOnce(t *testing.T) {
	p := custodyPolicy(t, "r.example/app", "platform", "middleware", "app")
	ev := Collected{}
	_, _, app := chain(t, p, ev)
	calls := map[digest.Digest]int{}
	remote := func(_ context.Context, _ string, d digest.Digest) ([]image.Artifact, error) {
		calls[d]++
		return Artifacts(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d}, ev[d], false)
	}
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, _ := NewChecker(p, s)
	cand := image.Candidate{Names: []string{app.Name}, Manifest: app.Manifest, Parsed: app.Parsed, Config: app.Config}
	if err := c.PullCheck("r.example/app/web", remote)(context.Background(), cand); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 3 {
		t.Fatalf("fetched for %d manifests, want the 3 of the chain", len(calls))
	}
	for d, n := range calls {
		if n != 1 {
			t.Errorf("%s fetched %d times", d, n)
		}
	}
	// What was fetched is kept: the chain verifies from the store alone.
	if _, err := Verify(context.Background(), p, app, s); err != nil {
		t.Fatal(err)
	}
}
