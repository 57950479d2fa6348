// Package version implements `kubectl dr version`; it needs no cluster and
// sets up no client.
package version
