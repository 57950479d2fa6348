// Package walship ships PostgreSQL WAL from a spool directory on the node
// to the store. PostgreSQL's archive_command copies each finished file
// into the spool under a temporary name and renames it; the shipper
// checks each segment is of the source's database (the first one claims
// the source), uploads it compressed with its checksum and encrypted to
// the snapshot recipient when the agent has one (internal/store/walobj)
// only where the archive has nothing under its name, verifies, and only
// then removes it from the spool. What the archive refuses stays in the
// spool and in status. A node engine, private to the agent.
package walship
