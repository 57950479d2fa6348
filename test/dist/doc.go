// Package dist tests the release: `make dist` (hack/dist) builds the
// platforms .goreleaser.yaml lists, its archives match the checksums.txt
// and krew manifest it writes (and the manifest hack/dist writes from
// checksums alone, as the release workflow does), krew (v0.4.4, built from
// the module proxy) installs kubectl-dr from them offline, and the archives
// have the same names, members and modes as a goreleaser snapshot release
// of the same definition.
package dist
