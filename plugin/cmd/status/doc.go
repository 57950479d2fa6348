// Package status implements `kubectl dr status`: one row per node with its
// agent, roles and etcd health, then one row per node and layer (etcd
// once, on the leader; files; each WAL source) with the newest restorable
// point against the layer's RPO target. A missed target exits 1. It asks
// the agents through plugin/agentclient and never imports agent/.
package status
