// Package durable is the one place that writes a file that must survive a
// crash: a unique temporary name opened with O_EXCL beside the final one,
// hashed while written, fsynced, renamed over the final name, the
// directory fsynced, the temporary removed on every error path. Nothing
// half-written is ever visible under the final name. It also creates
// directories durably (each new directory's parent fsynced), verifies a
// file by size and sha256 and moves files aside instead of deleting them.
//
// It imports nothing of this module; everything that writes a file the
// user relies on (snapshots, restored bootstrap files, WAL segments, the
// file store, plan state) goes through it.
package durable
