// Package drill is `kubectl dr drill`: rehearse the recovery plan on the
// agents' nodes (each part in scratch, in parallel), judge the measured
// RTO and RPO against the targets and keep the report in the store; `drill
// ls` and `drill show` read the reports back. The report's model and
// verdict are internal/store/drillreport's, shared with scheduled drills.
package drill
