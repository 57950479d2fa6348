// Package agentclient finds the dr-agent on each node and dials it: through
// the API server (agent pods + port-forward, the normal path) or directly at
// addresses given with --agent (for a dead API server and the lab). It
// speaks the agent's wire contract (api/dr/agent/v1) only; it never imports
// anything under agent/. Every request with a snapshot_identity field gets
// the snapshot key here (Options.SnapshotKey), as agents hold only its
// public recipient.
package agentclient
