// Package kvsnap reads the keys of a datastore snapshot file read-only:
// etcd's bbolt "key" bucket, or kine's table in a k3s server's SQLite
// datastore, yielding the newest value of every live key in key order
// without holding the values in memory. Shared by the agent's
// restore preview and the plugin's `objects` verbs; what the values mean
// (Kubernetes objects) is internal/registry's.
package kvsnap
