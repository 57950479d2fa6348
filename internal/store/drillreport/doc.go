// Package drillreport is the record of one DR drill: what each layer's
// rehearsal restored and found, the RTO (the recovery plan's critical
// path) and RPO (per layer) measured from it, the verdict against the
// targets, and the same as a self-contained HTML page. It lives in the
// store as drills/<id>.json and drills/<id>.html. Shared by the plugin and
// the agent's scheduled drills, so both judge a drill the same way; it
// imports only internal/store packages.
package drillreport
