// Package buckets backs up applications' S3 buckets into the store
// (internal/store/bucketobj): a pass lists the bucket in key order, page by
// page, copies what is new or changed (in parallel, streamed, checksummed),
// records deletions and overwrites as versions, and writes each page's
// index segment once its blobs verified, so a pass cut short resumes after
// the last segment. Retention drops history older than the window but
// never what a time inside it needs. The agent runs it on the etcd leader.
package buckets
