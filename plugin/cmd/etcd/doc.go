// Package etcd groups `kubectl dr etcd ...`: snapshots and restore, each a
// package of its own. Like every plugin package it never imports agent/.
package etcd
