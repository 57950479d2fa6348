// Package minioadmin is this project's own client of MinIO's admin API
// (v3): the few calls install needs to make the nodes' put/get-only user
// (a canned policy, a user, the policy attached), SigV4-signed, with the
// admin API's encrypted request bodies (crypt.go). It speaks to nothing
// but MinIO; another store answers with ErrNotMinIO.
package minioadmin
