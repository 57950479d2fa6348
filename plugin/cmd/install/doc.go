// Package install implements `kubectl dr install` and `uninstall`: the
// agents' Secrets (mTLS, store, snapshot key, restic password), the
// embedded manifests applied server-side, a wait for every node's agent and
// a store check from each of them. It shares only internal/ with the agent,
// never agent/.
package install
