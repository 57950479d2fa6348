// Package sqlitelab tests a k3s server on SQLite end to end: a real kine
// serving server/db/state.db to a kube-apiserver of its own (the lab's
// opt-in SQLite server, test/lab/kine.go), its agent, and the plugin with
// that server's kubeconfig. Snapshot, preview and restore stop that
// server's k3s, so it has a lab of its own.
package sqlitelab
