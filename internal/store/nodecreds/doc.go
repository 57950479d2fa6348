// Package nodecreds makes the store credentials the nodes hold: put and
// get on the store's bucket and prefix, no delete (but for restic's own
// lock files). Policy is the IAM policy document (AWS S3 and MinIO read
// the same JSON); MinIO creates a service account bound to it through its
// admin API, given the admin credentials once by install. The plugin
// imports it; the agent never does.
package nodecreds
