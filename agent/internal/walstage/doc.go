// Package walstage stages the WAL a restore replays into a directory
// beside the restored data directory: the agent, which holds the store's
// credentials and the snapshot key only for the request, fetches every
// file the restore may ask for, in parallel and in replay order, each
// checked against its checksum before it is renamed into place; and
// restore_command only reads that directory (FetchFromDir, which waits for
// a file the stage is still fetching). Nothing in the stage is a secret but
// the WAL itself. A node engine, private to the agent.
package walstage
