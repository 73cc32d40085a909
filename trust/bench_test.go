package trust

import (
	"context"
	"testing"
)

// chain20 is a 3-team, 20-layer image (platform 8, middleware 6, app 6)
// with its records in memory.
func chain20(b *testing.B) (*Policy, Subject, Collected) {
	ctx := context.Background()
	ev := Collected{}
	p := custodyPolicy(b, "r.example/app", "platform", "middleware", "app")
	plat := fakeImage("r.example/platform/base:1", 8, nil, "")
	mw := fakeImage("r.example/mw/rt:1", 14, &plat, "")
	app := fakeImage("r.example/app/web:1", 20, &mw, "")
	var base *Subject
	for _, s := range []struct {
		team string
		img  Subject
	}{{"platform", plat}, {"middleware", mw}, {"app", app}} {
		rec, _, err := SignCustody(ctx, custodyPolicy(b, "r.example", teamsBelow(s.team)...), CustodyRequest{Key: key(b, s.team).priv, Team: s.team, Image: s.img, Base: base, BaseEvidence: ev})
		if err != nil {
			b.Fatal(err)
		}
		ev.Add(s.img.Manifest.Digest, Attached{Records: [][]byte{rec}})
		img := s.img
		base = &img
	}
	return p, app, ev
}

// BenchmarkVerifyCustody: the cost of verifying a 3-team, 20-layer chain
// beyond fetching the records (the goal: at most 50 ms).
func BenchmarkVerifyCustody(b *testing.B) {
	p, app, ev := chain20(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Verify(ctx, p, app, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSign: a simple signing, once the key is open.
func BenchmarkSign(b *testing.B) {
	k := key(b, "a")
	app := fakeImage("r.example/app/web:1", 1, nil, "")
	for i := 0; i < b.N; i++ {
		if _, err := Sign(k.priv, "r.example/app/web:1", app.Manifest.Digest); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenKey: scrypt, which the key format fixes.
func BenchmarkOpenKey(b *testing.B) {
	priv, _, err := GenerateKey([]byte("pw"))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ParsePrivateKey(priv, []byte("pw")); err != nil {
			b.Fatal(err)
		}
	}
}
