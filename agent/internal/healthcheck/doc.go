// Package healthcheck runs the user's health checks (the agent config's
// drill.checks) against a live platform: an SQL query against a WAL
// source's database, its one value compared as psql -At prints it, and an
// HTTP GET compared by status. kubectl dr recover runs them on the agents
// once everything is restored. A node engine, private to the agent.
package healthcheck
