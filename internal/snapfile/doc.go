// Package snapfile reads a datastore snapshot file that something else
// made (etcdctl snapshot save, k3s's etcd-snapshot, a copied member/snap/db)
// and verifies it before anything is done with it: the kind by its first
// bytes, etcd's sha256 trailer, a k3s .zip's one entry (unzipped streaming,
// bounded), bbolt's consistency check where there is no trailer. What it
// hands back is always a file in etcdctl's format (database and trailer).
// Shared by both binaries (the plugin's snapshot import, the agent's
// restore --file).
package snapfile
