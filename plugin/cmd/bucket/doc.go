// Package bucket implements `kubectl dr bucket ls|versions|restore|backup`:
// applications' buckets as the store keeps them (internal/store/bucketobj).
// Listing and restoring read the store directly, so they work while the
// cluster is down; backup asks the etcd leader's agent for a pass now.
package bucket
