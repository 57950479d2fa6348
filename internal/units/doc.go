// Package units formats sizes for people, the same way in the agent's
// messages and the plugin's tables.
package units
