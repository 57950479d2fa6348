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

// IsServer reports whether the node is a k3s server.
func (l Layout) IsServer() bool { return isDir(l.ServerDir()) }

// IsEtcdMember reports whether the node runs an embedded etcd member.
func (l Layout) IsEtcdMember() bool { return isDir(l.EtcdDataDir()) }

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
