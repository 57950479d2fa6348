// Package etcdsnap takes the node's datastore snapshots: from the local
// etcd member (k3s's paths and naming), checked against etcd's sha256
// trailer, kept locally the k3s way and streamed compressed and encrypted
// to the store in the same pass; from k3s's SQLite state.db (kine) by
// SQLite's online backup (sqlite.go); the local catalog of snapshots not
// yet uploaded, retention, and the restore preview's comparison of a
// snapshot's keys (bolt, read by internal/kvsnap, or kine's table) with the
// live datastore's. A node engine, private to
// the agent; the store's side of snapshots is internal/store/dbsnap.
package etcdsnap
