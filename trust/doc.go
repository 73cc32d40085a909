// Package trust is berth's answer to "who put every layer of this image
// there": image signatures compatible with sigstore's simple signing (what
// cosign, podman and skopeo sign and check), per-team custody records that
// attribute each layer to the team that added it, and the policy that
// says which keys and which teams an image needs before it is stored or
// run.
//
// It owns keys (generated and kept encrypted in the format cosign and
// containers/image read), signature and record formats, their storage
// beside the image store, and verification. It does not fetch or push
// (package registry moves signatures with images) and does not decide
// when to verify (the engine does, at pull, load and run).
//
// Layout on disk (docs/custody.md has the formats):
//
//	<root>/trust/
//	  attached/<alg>/<hex>.json   the signatures and custody records
//	                              attached to one manifest digest,
//	                              replaced atomically
//	  lock                        held while an attached file changes
//
// The API is hard to misuse: Verify and SignCustody need the policy and
// the evidence as arguments (there is no default that accepts), and return
// a Result naming each team, key, record and layer, or a *VerifyError
// naming the first failing layer or team.
package trust
