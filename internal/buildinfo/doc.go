// Package buildinfo holds the version stamped into kubectl-dr and dr-agent
// at link time (-X), with the module's build info as the fallback.
package buildinfo
