// Package faultproxy is a TCP proxy on loopback that breaks the network
// between a client (an agent) and a server (the lab's MinIO) on command:
// it refuses connections while down, and cuts every connection once the
// client has sent a byte budget. The end-to-end and chaos tests put it
// between agents and the store.
package faultproxy
