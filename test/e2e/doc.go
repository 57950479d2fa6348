// Package e2e drives the built kubectl-dr and dr-agent binaries against the
// lab: real etcd, kube-apiserver, MinIO, PostgreSQL and restic. TestMain
// brings one lab up for the whole package and takes it down at the end.
package e2e
