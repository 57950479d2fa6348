// Package objstore is the only place that speaks to the backup store, an
// S3-compatible bucket through minio-go (MinIO, AWS S3, Alibaba OSS, ...) or
// a local directory for file:// stores, and to applications' buckets
// (Bucket: what bucket sources list and read, and restores write into).
// Objects become visible whole or not at all: S3 uploads complete
// atomically, files are written through internal/durable. A Put succeeds
// only when the store holds the bytes it read: the CRC64NVME of the whole
// object, computed while sending, equals the store's (its answer on
// upload, or a read-back where it gives none); an object that does not
// match is deleted. Create writes an object only where there is none (S3's
// If-None-Match, a hard link on disk), for what is written once. It
// imports nothing else of this module.
package objstore
