// Package agentconfig reads the agent's configuration file: who the node
// is, where k3s keeps its data, how the agent is reached and secured, its
// store, schedules and retention. The plugin renders it at install; the
// agent loads it. It names the host keys (what the agent runs or writes as
// root) whose digest install hands the agent, and refuses paths under
// /proc, /sys and /dev. It imports only internal/ packages.
package agentconfig
