// Command dist builds the kubectl-dr release archives for every platform
// krew serves (linux, darwin and windows on amd64 and arm64), each holding
// the plugin and LICENSE, and writes krew/dr.yaml from krew/dr.yaml.tmpl
// with each archive's URL and sha256.
//
//	go run ./hack/dist -version v0.1.0 [-out _output/dist] [-base-url URL] [-manifest krew/dr.yaml]
package main
