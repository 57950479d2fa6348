// Package install implements `kubectl dr install` and `uninstall`: the
// agents' Secrets (mTLS, store, snapshot key, restic password), the
// embedded manifests applied server-side, a wait for every node's agent and
// a store check from each of them. It owns the host keys (the commands and
// directories the agent uses as root; their digest goes into the
// DaemonSet), and uninstall keeps the key Secrets unless told twice. It
// shares only internal/ with the agent, never agent/.
package install
