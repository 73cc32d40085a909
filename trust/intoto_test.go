package trust

import (
	"context"
	"encoding/json"
	"testing"

	ita "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"
)

// TestRecordIsInTotoStatement reads a custody record with in-toto's own
// libraries: a DSSE envelope that verifies with the team's key, holding
// an in-toto v1 Statement that in-toto's attestation package accepts.
func TestRecordIsInTotoStatement(t *testing.T) {
	p := custodyPolicy(t, "r.example/app", "platform", "middleware", "app")
	ev := Collected{}
	_, _, app := chain(t, p, ev)
	rec := ev[app.Manifest.Digest].Records[0]
	var env dsse.Envelope
	if err := json.Unmarshal(rec, &env); err != nil {
		t.Fatal(err)
	}
	pub, _ := ParsePublicKey([]byte(key(t, "app").pem))
	v, err := dsse.NewEnvelopeVerifier(verifier{pub})
	if err != nil {
		t.Fatal(err)
	}
	accepted, body, err := v.VerifyAndDecode(context.Background(), &env)
	if err != nil || len(accepted) != 1 {
		t.Fatalf("DSSE verification: %v", err)
	}
	if env.PayloadType != "application/vnd.in-toto+json" {
		t.Fatalf("payload type %s", env.PayloadType)
	}
	var st ita.Statement
	if err := protojson.Unmarshal(body, &st); err != nil {
		t.Fatalf("in-toto does not read the statement: %v", err)
	}
	if err := st.Validate(); err != nil {
		t.Fatalf("in-toto rejects the statement: %v", err)
	}
	if st.GetPredicateType() != PredicateType || st.GetSubject()[0].GetDigest()["sha256"] != app.Manifest.Digest.Encoded() {
		t.Fatalf("statement %v", &st)
	}
	if st.GetPredicate().GetFields()["team"].GetStringValue() != "app" {
		t.Fatalf("predicate %v", st.GetPredicate())
	}
	// Another key's verifier refuses it.
	other, _ := ParsePublicKey([]byte(key(t, "platform").pem))
	v2, _ := dsse.NewEnvelopeVerifier(verifier{other})
	if _, err := v2.Verify(context.Background(), &env); err == nil {
		t.Fatal("verified with another team's key")
	}
}
