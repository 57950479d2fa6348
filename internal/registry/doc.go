// Package registry decodes what kube-apiserver keeps under /registry/ in
// etcd: which object a key names (group, resource, namespace, name, with
// the irregular built-in prefixes), values in Kubernetes' protobuf storage
// encoding or JSON (custom resources, CRDs), and values wrapped by
// encryption at rest, undone with the cluster's EncryptionConfiguration.
// Shared by both binaries; reading the snapshot is internal/kvsnap's.
package registry
