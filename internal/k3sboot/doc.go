// Package k3sboot is k3s's bootstrap data as it sits in the datastore: the
// key /bootstrap/<hash> derived from the server token, and the value
// encrypted with it (PBKDF2-SHA1 key, AES-GCM, "<salt>:<base64>"). k3s
// refuses to start on a datastore whose bootstrap key another token made
// ("bootstrap data already found and encrypted with different token");
// the restore preflight checks a token against a snapshot with it before
// anything stops. Written from k3s's documented behaviour, shared by the
// agent and the lab (which stores bootstrap data as k3s does).
package k3sboot
