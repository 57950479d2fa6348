// Package etcdrestore implements `kubectl dr etcd restore`: the preview of a
// snapshot against the live cluster, then the plan every server carries
// out on its own past a barrier the plugin holds until every member has
// stopped (barrier.go: or it rolls every member back when one fails
// before; for kubectl dr recover also held before k3s starts until the
// other layers are back: starthold.go), and the timeline with the
// measured RTO. The plan is built here
// and handed to the agents over the wire; nothing under agent/ is
// imported.
package etcdrestore
