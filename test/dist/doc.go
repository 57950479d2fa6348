// Package dist tests the release: `make dist`'s archives match the krew
// manifest it writes, and krew (v0.4.4, built from the module proxy)
// installs kubectl-dr from them offline.
package dist
