// Package agentconfig reads the agent's configuration file: who the node
// is, where k3s keeps its data, how the agent is reached and secured, its
// store, schedules and retention. The plugin renders it at install; the
// agent loads it. It imports only internal/ packages.
package agentconfig
