// Package pg implements `kubectl dr pg basebackup|ls|prune|restore`: base
// backups of a WAL source's database, their listing and retention, and
// point-in-time restores from them. The agent on the source's node does
// the work; this package never imports agent/ (whose pg code is
// Linux-only).
package pg
