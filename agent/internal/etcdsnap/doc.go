// Package etcdsnap takes the node's datastore snapshots: from the local
// etcd member (k3s's paths and naming), checked against etcd's sha256
// trailer, kept locally the k3s way and streamed compressed and encrypted
// to the store in the same pass; the local catalog of snapshots not yet
// uploaded, retention, and the restore preview's comparison of a snapshot's keys
// (read by internal/kvsnap) with the live member's. A node engine, private to
// the agent; the store's side of snapshots is internal/store/dbsnap.
package etcdsnap
