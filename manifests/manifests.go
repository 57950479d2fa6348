package manifests

import "embed"

// FS holds kustomization.yaml and the resources it lists.
//
//go:embed *.yaml
var FS embed.FS
