// Package recover is `kubectl dr recover`: the runbooks' full-system
// recovery onto new hosts as one command. It picks one moment for every
// layer (internal/recoveryplan), prints the plan and each server's
// preflight, then restores the datastore onto the new servers (the etcd
// restore's plan machinery, new-host parts), the nodes' files, the
// databases to the time and the buckets, in parallel; waits for the API
// server, runs the user's health checks, lists (and with --prune-nodes
// deletes) the old hosts' Node objects, and prints the timeline and RTO.
package recover
