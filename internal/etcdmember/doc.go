// Package etcdmember reaches the local etcd member with the k3s client
// certificate and reports its status (health, leader, version, size); the
// agent and the lab share it. It imports only internal/mtls.
package etcdmember
