// Package snapshot implements `kubectl dr etcd snapshot
// save|ls|describe|rm|prune|download`: through the agents, or from the
// store directly when none answers. It never imports agent/.
package snapshot
