// Package chaos runs kubectl dr's operations (backup sets, etcd snapshots,
// file restores, WAL shipping under pgbench with base backups, etcd
// restore plans) while a seeded random schedule SIGKILLs agents and the
// plugin, kills MinIO and cuts the network between the agents and the
// store, and checks after each fault that nothing was lost: what is listed
// as good verifies, the WAL archive has no gap, the nodes' files are old
// or restored bytes, and the next operation on the same node succeeds.
//
// The lab has one etcd member and two nodes, each agent a process started
// by the test so that it reaches MinIO through a fault proxy
// (test/lab/faultproxy) and can be SIGKILLed and started again as a
// DaemonSet would. Process agents run the same dr-agent binary and engines
// as the pod; what the pod adds (port-forward, image, nsenter) is not what
// a crash tests, and without a kubelet the lab starts in seconds. The
// plugin runs as the built kubectl-dr, reaching the agents directly
// ($KUBECTL_DR_AGENTS from the lab's environment), the store with the
// lab's credentials.
//
// hack/chaos runs the long version (CHAOS_FAULTS=200); `make test` runs
// the default of 16 faults. docs/lab.md#chaos-run has the knobs and how
// to replay a seed.
package chaos
