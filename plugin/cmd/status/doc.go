// Package status implements `kubectl dr status`: one row per node with its
// agent, roles and etcd health. It asks the agents through
// plugin/agentclient and never imports agent/.
package status
