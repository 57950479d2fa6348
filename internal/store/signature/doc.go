// Package signature owns the store's signatures: KEY.sig beside an object
// says who wrote its bytes (a node's agent, by its enrolled certificate, or
// kubectl dr, by its client certificate), and a reader checks it against
// the CA install made before it trusts the object. A node vouches only for
// its own node's objects; the certificate every agent shares before it is
// enrolled vouches for nothing. docs/store-format.md describes the format.
package signature
