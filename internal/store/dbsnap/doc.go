// Package dbsnap is the store's side of datastore snapshots: the metadata
// record (etcd/<node>/<name>.json, written only after the data verified),
// the data and bootstrap objects' keys, the catalog, and fetching a
// snapshot back (download, decrypt, decompress) checked against both
// checksums; a bootstrap bundle decrypts only into the files k3s keeps. Shared by both binaries; taking snapshots is the agent's
// (agent/internal/etcdsnap).
package dbsnap
