// Package labtest is what the lab's test packages share: one lab per
// package, up before the tests and down after them with nothing left
// running, and the built binaries run with its environment.
package labtest
