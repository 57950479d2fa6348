// Package restic runs the restic binary shipped with the agent, always with
// --json and the password from a file, and decodes what it prints. It knows
// nothing about nodes or backup sets (agent/internal/files decides what to
// back up) and imports nothing of this module.
package restic
