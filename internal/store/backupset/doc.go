// Package backupset is the record of one cluster-wide backup: which etcd
// snapshot, which restic snapshot on which node, and how each part ended.
// It lives in the store as sets/<id>.json and is written last, so a set
// that is listed is a set whose parts have finished (or failed, and say
// so). Shared by both binaries; it imports only internal/store packages.
package backupset
