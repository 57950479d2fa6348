// Package lab runs the real parts kubectl dr is tested against on one
// machine, on loopback and free ports: etcd members laid out like k3s
// servers, kube-apiserver on top, MinIO (the store), SeaweedFS (an
// application's object storage), PostgreSQL, and one dr-agent
// process per node. Binaries are built from pinned modules and cached by
// version outside the repository. hack/lab drives it from the shell; the
// end-to-end tests bring one lab up per test binary.
package lab
