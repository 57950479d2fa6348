// Command k3s-standin is a STAND-IN for the k3s binary, for the lab only:
// k3s cannot be built here, and the agents' k3s restore runs
// `k3s server --cluster-reset --cluster-reset-restore-path=FILE`. This
// program does what k3s does for that one command line and nothing else:
//
//   - `k3s --version` prints its version (v1.35.4+k3s1, the lab's
//     Kubernetes), which a restore's preflight compares;
//   - it refuses to start without the server token (server/token or
//     --token), as k3s cannot decrypt its bootstrap data without it, and
//     with a token that did not make the snapshot's bootstrap key
//     (/bootstrap/<hash>), with k3s's "bootstrap data already found and
//     encrypted with different token";
//   - it renames server/db/etcd to etcd-old-<unix time> (failing when
//     there is none, as k3s does);
//   - it restores the snapshot into server/db/etcd as a one-member cluster
//     with the etcdutl library (k3s uses the same code);
//   - it prints k3s's closing message and exits.
//
// The member's name and peer URL come from the k3s config file
// ($K3S_CONFIG_FILE, else /etc/rancher/k3s/config.yaml under the node's
// root, the directory that holds --data-dir's var/lib/rancher/k3s, as a
// lab node keeps its /etc beside it): node-name as in
// k3s, and standin-peer-url, which real k3s derives from the node's IP and
// port 2380 (the lab's members use other ports). Starting the server, and a
// server joining an existing cluster, are the lab's start command's job.
package main
