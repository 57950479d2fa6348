package etcdsnap

import (
	"os"
	"path/filepath"
)

// Layout names the k3s server paths under a data dir.
type Layout struct {
	DataDir string
}

// ServerDir is <data-dir>/server; it exists on k3s servers only.
func (l Layout) ServerDir() string { return filepath.Join(l.DataDir, "server") }

// EtcdDataDir holds the embedded etcd member's data.
func (l Layout) EtcdDataDir() string { return filepath.Join(l.DataDir, "server", "db", "etcd") }

// SnapshotsDir is where k3s's own etcd-snapshot keeps local snapshots.
func (l Layout) SnapshotsDir() string { return filepath.Join(l.DataDir, "server", "db", "snapshots") }

// StateDB is the SQLite database k3s serves through kine when it runs
// without etcd (a default single-server install). It runs in WAL mode:
// state.db-wal and state.db-shm belong with it.
func (l Layout) StateDB() string { return filepath.Join(l.DataDir, "server", "db", "state.db") }

// Datastore kinds, as Info and snapshot records name them.
const (
	DatastoreEtcd   = "etcd"
	DatastoreSQLite = "sqlite"
)

// Datastore says what this server keeps the cluster in: an embedded etcd
// member wins (a state.db left from before the server moved to etcd is
// not its datastore), then a state.db; "" on an agent node or a server with neither yet.
func (l Layout) Datastore() string {
	switch {
	case l.IsEtcdMember():
		return DatastoreEtcd
	case isFile(l.StateDB()):
		return DatastoreSQLite
	}
	return ""
}

// IsSQLite reports whether the node serves its datastore from state.db.
func (l Layout) IsSQLite() bool { return l.Datastore() == DatastoreSQLite }

// IsServer reports whether the node is a k3s server.
func (l Layout) IsServer() bool { return isDir(l.ServerDir()) }

// IsEtcdMember reports whether the node runs an embedded etcd member.
func (l Layout) IsEtcdMember() bool { return isDir(l.EtcdDataDir()) }

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
