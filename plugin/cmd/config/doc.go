// Package config implements `kubectl dr config get|set`: the agents'
// configuration in the dr-agent-config ConfigMap. Agents reload a changed
// file without restarting; set waits until every one runs it. It never
// imports agent/.
package config
