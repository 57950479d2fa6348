// Package manifests embeds this directory's manifests, so `kubectl dr
// install` applies the very files `kubectl apply -k manifests/` applies.
package manifests

import "embed"

// FS holds kustomization.yaml and the resources it lists.
//
//go:embed *.yaml
var FS embed.FS
