// Command lab starts and stops the lab of real parts; hack/lab runs it.
//
//	hack/lab up [--etcd-members 1|3] [--nodes N] [--kube-node NODE] [--etcd-restore etcd|k3s|none]
//	hack/lab env [--direct]  # shell exports: eval "$(hack/lab env)"
//	hack/lab down     # stops what up started, keeps the data
//	hack/lab clean    # removes the lab dir (after down)
//	hack/lab port     # prints a free loopback port (for scripts)
//	hack/lab image [FILE]  # the agent image as a tarball ($IMAGE_TAG)
//	hack/lab stop NAME | start etcd-NODE  # a restore's host actions
//
// up configures the etcd members' agents to restore etcd the kubeadm way
// (--etcd-restore etcd, the default: etcdutl, no stand-in), so that
// `kubectl dr etcd restore --latest --yes` works on the lab it starts;
// --etcd-restore k3s uses k3s's cluster reset played by the k3s stand-in.
// The tests choose their own (lab.Options.EtcdRestore).
//
// env gives what a user has after `kubectl dr install`: the kubeconfig,
// and $KUBECTL_DR_AGENTS for the lab's nodes that are agent processes;
// the plugin reads its certificate, the store and the snapshot key from
// the cluster. --direct adds those settings themselves (for tools that
// talk to the store or the agents directly, and the benchmarks).
package main
