#!/usr/bin/env bash
# Regenerates api/**/*.pb.go with Debian's protoc and the protoc-gen-go /
# protoc-gen-go-grpc plugins pinned as tool lines in go.mod.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

command -v protoc >/dev/null || {
  echo "protoc not found: apt-get install -y protobuf-compiler" >&2
  exit 1
}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/" google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc

# Debian keeps the well-known types in libprotobuf-dev.
include=/usr/include
[ -f "$include/google/protobuf/timestamp.proto" ] || {
  echo "google/protobuf/timestamp.proto not found under $include: apt-get install -y libprotobuf-dev" >&2
  exit 1
}
for proto in $(find api -name '*.proto' | sort); do
  PATH="$bin:$PATH" protoc -I . -I "$include" \
    --go_out=. --go_opt=paths=source_relative \
    --go-grpc_out=. --go-grpc_opt=paths=source_relative \
    "$proto"
done
