// Package oneserver tests etcd restores on a one-server cluster with its own
// lab (one etcd member under the lab's kube-apiserver, and a node that is
// not a server): through kubectl dr, and on the node alone with
// `dr-agent etcd restore` when every process is stopped.
package oneserver
