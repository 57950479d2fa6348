// Command dist builds the release archives that .goreleaser.yaml defines
// without goreleaser: the same platforms, build flags, ldflags, archive
// names and members (read from that file, which is the one list), plus
// checksums.txt, and writes krew/dr.yaml from krew/dr.yaml.tmpl with each
// kubectl-dr archive's URL and sha256. A key in the file's builds or
// archives it does not implement is an error, not ignored.
//
// With -checksums it builds nothing and writes the krew manifest from a
// checksums file, such as the one `goreleaser release` publishes (the
// release workflow does this), so the manifest has one source either way.
//
// -platforms linux/amd64,windows/amd64 keeps only those platforms (the
// tests' default; KDR_DIST_ALL=1 makes them build every one).
//
//	go run ./hack/dist -version v0.1.0 [-commit SHA] [-platforms OS/ARCH,...] [-out _output/dist] [-base-url URL] [-manifest krew/dr.yaml]
//	go run ./hack/dist -version v0.1.0 -checksums _output/goreleaser/checksums.txt -manifest _output/goreleaser/dr.yaml
package main
