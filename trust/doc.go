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
// Layout on disk:
//
//	<root>/trust/
//	  signatures/<alg>/<hex>.json   the signatures of one manifest digest,
//	                                replaced atomically
//	  lock                          held while a signatures file changes
package trust
