// Package basebackup is the store's record of PostgreSQL base backups,
// pg/<source>/basebackups/<id>.json: its format, where it lives and
// listing. Choosing one for a recovery target is internal/pgtarget's;
// taking and restoring them the agent's (agent/internal/pgbackup).
package basebackup
