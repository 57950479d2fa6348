// Package walobj is the store's WAL archive: the object format (a header
// with size and checksum of the file, then the file as zstd frames,
// encrypted with age to the snapshot recipient: drwal3; clear objects of
// the formats before still decode), the archive's
// names (wal/<source>/<timeline>/<file>.zst) and segment arithmetic for any
// segment size, timeline history files, the source's system record
// (wal/<source>/system.json: the database the archive belongs to, read
// from a segment's first page header), listing, and fetching a file back
// checked for restore_command. The shipper that fills it is the agent's
// (agent/internal/walship).
package walobj
