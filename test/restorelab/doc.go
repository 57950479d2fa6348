// Package restorelab tests etcd restores end to end on a lab of their own:
// they stop every etcd member, which the shared e2e lab cannot afford.
package restorelab
