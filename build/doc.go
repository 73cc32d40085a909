// Package build turns a Dockerfile and a build context into an image, as
// docker build and podman build do: every instruction is a step on the
// image before it, RUN steps run as containers through the engine
// (package container), COPY and ADD write into a container's root file
// system, and each step's result is an image in the store, so that the
// next build finds it.
//
// The cache is keyed by content, never by time: a step's key is its
// parent's key, the instruction as expanded, the build arguments a RUN
// sees, and the digest of every file a COPY or ADD reads (names, modes,
// contents; not mtimes). An unchanged rebuild therefore runs nothing and
// gives the same image ID, and a change re-runs from the first step it
// reaches. With SOURCE_DATE_EPOCH every time in the image (config,
// history, layer entries) is fixed or clamped to it, so that two builds of
// the same inputs are byte-identical.
//
// Parsing is BuildKit's (frontend/dockerfile/parser and instructions); the
// image config and history follow what Docker's BuildKit builder writes
// for the same Dockerfile.
//
// The package does not pull (a FROM image that is not stored is asked of
// Builder.Pull), check signatures (Builder.Check), or render progress
// (Options.Progress gets events): the caller wires those.
//
// Layout on disk:
//
//	<root>/build/
//	  cache.json     step key → image ID, replaced atomically under lock
//	  lock
//	  mounts/<id>/   RUN --mount=type=cache directories
package build
