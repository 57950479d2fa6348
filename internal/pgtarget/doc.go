// Package pgtarget chooses how a PostgreSQL restore reaches its recovery
// target (a time, an LSN, a transaction, a restore point, the end of a base
// backup or the end of the archive, on a timeline): which base backup, and
// which WAL of which timelines, following the archive's history files. It
// also says what the archive holds per timeline (pg ls). Choose and
// Summarize are pure; LoadArchive reads the store for them. pg restore,
// the drill and the recovery plan all choose here.
package pgtarget
