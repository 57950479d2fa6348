// Package drill rehearses one layer's part of a full recovery on this
// node, for kubectl dr drill: the same read paths a real restore takes
// (the store's snapshot fetch and verify, restoreplan's data dir build,
// restic restore, pgbackup's restore and scratch replay, bucketobj's
// checked reads), into a scratch directory <stateDir>/drill/<id>/<layer>-<name>
// and loopback ports, never the live data. Each part reports its steps
// (timed; Restore marks those a real recovery also does, for the RTO), the
// newest point it restored (for the RPO), facts, counts and problems that
// name the object at fault.
//
// What each layer's rehearsal does:
//   - etcd: fetch the snapshot from the store into scratch (decrypted with
//     the snapshot key the request brought; the stored object's sha256 and the
//     snapshot's checked against the metadata, a mismatch names the store
//     key), build a member data dir from it as the etcd flavour's restore
//     does, serve it with an embedded etcd on 127.0.0.1, check its health
//     and that its revision is the snapshot's, and count the keys per
//     resource type it serves against those read from the file
//     (internal/kvsnap). A SQLite snapshot (kine) is copied, opened
//     read-only, integrity-checked and counted; it is not served.
//   - files: restic restore of the node's (or the named) snapshot into
//     scratch with --verify (restic reads every file back against the
//     snapshot), then restic check --read-data-subset (default 5%).
//   - postgres: WAL continuity from the base backup's first segment to the
//     newest archived one (the first missing segment is named), then the
//     base backup restored into scratch, replayed in a scratch PostgreSQL
//     (pgbackup.VerifyWith) and the user's SQL checks run in it.
//   - bucket: the version index as of a time, a sample of its objects read
//     back through bucketobj.ReadEach (decrypted, checksummed, each pack
//     once) into a scratch bucket beside the source's, or a directory,
//     and the totals of the index at that time.
//
// RunPlan rehearses a whole plan on this node for a scheduled drill, which
// reaches no other agent (RepoFiles: every node's newest file snapshot in
// the restic repository).
//
// Nodes hold no private snapshot key: a scheduled drill (Engine.Unattended)
// checks what it can without one (the stored objects against their
// checksums) and reports the parts that must decrypt as not run.
//
// Scratch is removed before the result is returned unless the caller keeps
// it; Sweep, run when the agent starts, removes what a part cut short by
// the agent's death left, stopping its scratch PostgreSQL first.
package drill
