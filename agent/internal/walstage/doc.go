// Package walstage stages the WAL a restore replays into a directory
// beside the restored data directory: the agent, which holds the store's
// credentials and the snapshot key only for the request, fetches every
// file the restore may ask for, in parallel and in replay order, each
// checked against its checksum before it is renamed into place, with a
// plan of what it will hold and markers of staging running or failed; and
// restore_command only reads that directory (a shell command of
// agent/internal/pgbackup). Nothing in the stage is a secret but the WAL
// itself. A node engine, private to the agent.
package walstage
