// Package bucketobj is the store's copy of applications' buckets
// (buckets/<source>/): content-addressed blobs (sha256 of the object's
// bytes, age-encrypted to the snapshot recipient, each stored once however
// many keys and times hold it), the version index that says which key held
// which blob when (index segments, appended in order, written only after
// every blob they name verified), the bucket as it was at a time, and the
// plan that turns a bucket back into that. The agent's passes that fill it
// are agent/internal/buckets.
package bucketobj
