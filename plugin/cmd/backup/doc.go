// Package backup implements `kubectl dr backup create|ls|describe|rm|verify`:
// cluster-wide backup sets of one etcd snapshot and a restic snapshot per
// node, recorded in the store as sets/<id>.json. It reaches the agents
// through plugin/agentclient and never imports agent/.
package backup
