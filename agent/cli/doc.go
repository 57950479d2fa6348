// Package cli is dr-agent's command line: `serve` for the DaemonSet and the
// node-local commands for when no API server is left (etcd restore, wal
// fetch). It only adapts flags to the engines under agent/internal; the
// plugin never imports it.
package cli
