// Package files is the node's file backup: which directories it backs up
// (the configured roots, by default k3s's local-path storage), which of
// them are PVCs, and backup, restore preview (with its digest), restore
// (refused when the node no longer gives the confirmed preview's digest)
// and retention through restic. A backup runs alone on a node; restores run
// side by side, except those into the node's own paths, which take turns. A
// node engine: private to the agent, it imports the store packages, never
// agent/server or the plugin.
package files
