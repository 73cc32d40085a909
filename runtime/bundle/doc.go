// Package bundle owns an OCI bundle's config.json as berth-runtime sees it:
// reading it strictly, refusing everything the runtime spec says a runtime
// must refuse before it creates anything, the default spec that
// `berth-runtime spec` writes, and the runtime-spec features document that
// `berth-runtime features` prints.
//
//	<bundle>/
//	├── config.json   runtime-spec config; root.path is relative to <bundle>
//	└── rootfs/       the container's root filesystem (the conventional name)
//
// It does not create, mount or join anything, and it never writes into a
// bundle: the runtime core does that with the spec Load returns. Checks that
// need the container's own view (whether a namespace path really is a
// namespace of that type, whether a capability can be granted, whether a
// mount option is accepted by a filesystem) are left to the code that acts
// on them, because only there is the answer known.
//
// Every error names the offending field in runtime-spec JSON terms
// ("process.args", "linux.namespaces[3].type") and is one line, so the CLI
// can print it as is.
package bundle
