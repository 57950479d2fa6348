// Package restoreplan restores etcd members and k3s servers from
// snapshots: one Prepare for every node's part of a restore (the agent's
// RPC and dr-agent etcd restore both call it; it checks a part against
// the digest of its confirmed preview), plans kept in state files
// that survive the agent's restart, the runner of their steps (with the
// barrier every member of a restore across several servers waits at once
// stopped, the roll-back of a part that ends before it, and the hold
// before k3s starts until the coordinator says the other layers are back:
// starthold.go), the new data directory built beside the member's and
// swapped in with the old one moved aside (never deleted); on a k3s
// server on SQLite, state.db and its WAL files swapped for the verified
// copy, put back if it does not serve; onto a new host (kubectl dr
// recover) the files kept with the snapshot are put back first (only the
// files k3s keeps, never through a symbolic link; the staged token is
// removed once the plan is over) and a
// server without a member joins. A node engine, private to the agent.
package restoreplan
