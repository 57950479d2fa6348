// Package wal implements `kubectl dr wal status`: each node's PostgreSQL
// WAL sources, what is archived and what waits in the spool. It asks the
// agents and never imports agent/.
package wal
