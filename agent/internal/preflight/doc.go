// Package preflight checks, before anything stops, that a datastore
// snapshot can be restored on this node: the server token the restore
// will use matches the snapshot's k3s bootstrap key and decrypts it, the
// node's k3s is not older (by minor) than the k3s the snapshot's servers
// ran, an encryption config that decrypts the snapshot's Secrets is at
// hand when they are encrypted at rest, and the data dir has room for
// twice the snapshot. Each check is one row: ok, skipped (why it does not
// apply) or failed with what to do. A node engine, private to the agent;
// kubectl dr recover and etcd restore call it through RecoverService,
// dr-agent etcd restore directly.
package preflight
