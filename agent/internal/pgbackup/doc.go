// Package pgbackup takes PostgreSQL base backups and restores a database
// to a point in time: a restic snapshot of the data directory between
// pg_backup_start and pg_backup_stop (incremental and deduplicated like
// every file backup, and no replication connection into the pod needed),
// then the WAL the agent ships, staged beside the restored directory
// (agent/internal/walstage) and replayed by PostgreSQL from there, with no
// store credentials or key left on disk. A node engine, private to the
// agent; the records are internal/store/basebackup.
package pgbackup
