// Package objects is `kubectl dr objects ls|get|restore`: browsing a
// restore point's Kubernetes objects and applying chosen ones back. The
// plugin reads the snapshot from the store itself (fetch, verify, decrypt,
// internal/kvsnap + internal/registry), so no agent takes part; restore
// applies through the API server (server-side apply, field manager
// kubectl-dr).
package objects
