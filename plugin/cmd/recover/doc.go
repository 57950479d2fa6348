// Package recover is `kubectl dr recover`: the runbooks' full-system
// recovery onto new hosts as one command. It picks one moment for every
// layer (internal/recoveryplan), prints the plan and each server's
// preflight, then restores the datastore onto the new servers (the etcd
// restore's plan machinery, new-host parts; k3s on etcd or one server on
// SQLite), the nodes' files, the databases to the time and the buckets,
// in parallel, k3s started only once the files and databases are back;
// waits for the API
// server, runs the user's health checks, lists (and with --prune-nodes
// deletes) the old hosts' Node objects, and prints the timeline and RTO.
package recover
