// Package retention decides which of a series of backups a GFS policy
// keeps: etcd snapshots and PostgreSQL base backups (file backups leave it
// to restic forget). Pure functions; it imports only internal/agentconfig.
package retention
