// Package archive applies layer tars onto directories, safely, and knows
// the compressions layers come in.
//
// A layer is hostile until proven otherwise. Every entry's path is cleaned
// against the root ("../../etc/passwd" and "/etc/passwd" both mean
// <root>/etc/passwd) and its parent directory is resolved through file
// descriptors with symlinks confined to the root (openat2 RESOLVE_IN_ROOT,
// through filepath-securejoin's pathrs-lite): a symlink in the layer that
// points at /etc points at <root>/etc. The entry itself is then created
// relative to that directory descriptor, never following a symlink in its
// final component, and its metadata is set through the new file's own
// descriptor. So no entry can write, link, chmod or remove anything outside
// the root, however the layer arranges its symlinks.
//
// Two targets are supported, matching the two snapshotters:
//
//   - WhiteoutOverlay: the directory is an empty overlayfs upper directory.
//     Deletions become overlay whiteouts (0:0 character devices) and opaque
//     directories the trusted.overlay.opaque xattr; the layers below are
//     consulted (read-only, through Lower) only for the attributes of
//     directories the layer implies without listing and for hard link
//     targets that live below.
//   - WhiteoutDelete: the directory is a full copy of the layers below, and
//     whiteouts remove what they name.
//
// What is kept exactly: regular files, directories, symlinks, hard links,
// fifos, device nodes (when privileged), modes including setuid, setgid and
// sticky, ownership, modification and access times, and xattrs including
// security.capability. Overlay's own xattrs are refused from layers: a layer
// must not be able to plant redirects or metacopy markers.
package archive
