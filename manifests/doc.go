// Package manifests embeds this directory's manifests, so `kubectl dr
// install` applies the very files `kubectl apply -k manifests/` applies.
package manifests
