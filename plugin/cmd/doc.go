// Package cmd is the root of kubectl dr: global flags, command groups, one
// sub-package per verb, and Execute, which main runs. Plugin packages reach
// the agents through plugin/agentclient only; nothing here imports agent/.
package cmd
