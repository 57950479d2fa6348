// Package nodeid owns the node's identity: its private key, made on the
// node at first start and never sent anywhere, and the certificate
// install's CA issued for that key and the node's name (enrollment).
package nodeid
