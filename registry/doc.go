// Package registry is berth's registry client: names resolved as Docker
// resolves them, pull into the image store, push from it, login and
// logout, and remote manifest inspection, over the OCI distribution and
// Docker Registry HTTP API v2 protocol (go-containerregistry's names,
// auth and transport; berth's own blob and manifest fetches, so that every
// byte is hashed once, by the store's verified writer).
//
// It owns the conversation with registries, not what is stored: the image
// store (package image) checks every manifest and blob against its digest
// and keeps nothing that does not match.
//
// Files it reads, as Docker and Podman do:
//
//	~/.docker/config.json (or $DOCKER_CONFIG/config.json)   credentials, credential helpers
//	$XDG_RUNTIME_DIR/containers/auth.json                    Podman's credentials (read)
//	/etc/containers/registries.conf, ~/.config/containers/registries.conf
//	                                                         insecure registries, mirrors
//	/etc/containers/certs.d/<host>/ca.crt, /etc/docker/certs.d/<host>/ca.crt
//	                                                         a registry's CA
package registry
