// Package image is berth's local image store: names and the images they
// point to, their manifests, configs and layers (in package content), the
// unpacked layers (in package snapshot), and the ways images come in and
// go out without a registry: docker-archive and OCI archives and layouts,
// and rootfs tarballs.
//
// The store never needs a reset. Every change is ordered so that a crash
// or a kill -9 at any point leaves the old state or the new one:
//
//  1. blobs are ingested and committed, each verified against its digest;
//  2. layers are unpacked into snapshots, each verified against the
//     config's diff_id before it is committed;
//  3. only then is the image record written (one atomic rename of
//     images.json), which is what makes the image exist.
//
// What a killed writer leaves (ingests, blobs and snapshots no image
// refers to) is invisible and is collected by garbage collection. Writers
// hold the store's gc lock shared for as long as they work, and garbage
// collection holds it exclusively, so it never removes what a live process
// is writing; readers take no lock at all.
//
// Layout on disk:
//
//	<root>/
//	  content/                 blobs (package content)
//	  snapshot/<driver>/       unpacked layers (package snapshot)
//	  image/
//	    images.json            every image record, replaced atomically
//	    lock                   held while images.json is read-modified-written
//	  gc.lock                  shared by writers, exclusive for collection
//	  driver                   the snapshot driver this store was made with
package image
