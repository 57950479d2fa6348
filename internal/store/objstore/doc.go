// Package objstore is the only place that speaks to the backup store: an
// S3-compatible bucket through minio-go (MinIO, AWS S3, Alibaba OSS, ...) or
// a local directory for file:// stores. Objects become visible whole or not
// at all: S3 uploads complete atomically, files are written through
// internal/durable. It imports nothing else of this module.
package objstore
