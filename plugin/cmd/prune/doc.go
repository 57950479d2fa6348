// Package prune implements `kubectl dr prune`: the retention that deletes
// from the store, run from the plugin with the install's delete-capable
// credentials, for nodes that hold put/get-only ones. It asks the agents
// and never imports agent/.
package prune
