// Package objects is `kubectl dr objects ls|get|diff|restore`: browsing a
// restore point's Kubernetes objects, comparing them with the live
// cluster and applying chosen ones back. The plugin reads the snapshot
// from the store itself (fetch, verify, decrypt, internal/kvsnap +
// internal/registry); restore applies through the API server (server-side
// apply, field manager kubectl-dr) and, with --with-data, restores the
// claims' files through the agents' file restore (plugin/cmd/restore).
package objects
