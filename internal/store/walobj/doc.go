// Package walobj is the store's WAL archive: the object format (a header
// with size and checksum, then the file as zstd frames), the archive's
// names (wal/<source>/<timeline>/<file>.zst), listing, and fetching a file
// back checked for restore_command. The shipper that fills it is the
// agent's (agent/internal/walship).
package walobj
