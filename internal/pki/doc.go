// Package pki creates the certificate authorities and key pairs that secure
// the agents' gRPC (mTLS) and, in the lab, etcd and the API server.
package pki
