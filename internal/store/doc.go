// Package store is the backup store's format, shared by kubectl-dr and
// dr-agent; docs/store-format.md describes it for readers without this
// tool. Its subpackages each own one part of it:
//
//	objstore    the only code that speaks S3 or a local directory
//	dbsnap      datastore snapshots: records, catalog, fetch and verify
//	backupset   cluster-wide backup sets (sets/<id>.json)
//	basebackup  PostgreSQL base backup records
//	walobj      the WAL object format and the archive's names
//	bucketobj   application buckets: blobs, version index, restore plans
//	drillreport DR drill reports (drills/<id>.json and .html), RTO/RPO/verdict
//
// This package holds what they share: the format version every record
// carries. Nothing here imports the agent or the plugin.
package store
