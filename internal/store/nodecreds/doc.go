// Package nodecreds is the store policy of the nodes' credentials: put and
// get on the store's bucket and prefix, no delete (but for restic's own
// lock files). AWS S3 and MinIO read the same IAM JSON; docs/security.md
// shows it and how to bind it to a user. It imports nothing of the module.
package nodecreds
