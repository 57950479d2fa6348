// Package etcdsnap owns the node's etcd: k3s's paths and naming, the local
// member's client and health, and (as later issues land) snapshot save,
// verify and restore.
package etcdsnap
