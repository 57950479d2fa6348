// Package basebackup is the store's record of PostgreSQL base backups,
// pg/<source>/basebackups/<id>.json: its format, where it lives, listing
// and choosing one for a point in time. Taking and restoring them is the
// agent's (agent/internal/pgbackup).
package basebackup
