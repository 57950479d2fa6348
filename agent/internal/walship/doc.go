// Package walship ships PostgreSQL WAL from a spool directory on the node
// to the store. PostgreSQL's archive_command copies each finished file
// into the spool under a temporary name and renames it; the shipper
// uploads each file compressed with its checksum (internal/store/walobj),
// verifies, and only then removes it from the spool. A node engine,
// private to the agent.
package walship
