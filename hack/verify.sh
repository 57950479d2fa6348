#!/usr/bin/env bash
# Fails when formatting, vet, go.mod/go.sum or generated code need a change.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

unformatted=$(gofmt -l $(find . -name '*.go' -not -path './_output/*'))
if [ -n "$unformatted" ]; then
  echo "not gofmt'ed (run gofmt -w):" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
for mod in . hack/tools/*/; do
  (cd "$mod" && cp go.mod /tmp/verify.go.mod && cp go.sum /tmp/verify.go.sum && go mod tidy &&
    if ! diff -q go.mod /tmp/verify.go.mod >/dev/null || ! diff -q go.sum /tmp/verify.go.sum >/dev/null; then
      cp /tmp/verify.go.mod go.mod; cp /tmp/verify.go.sum go.sum
      echo "$mod: go.mod/go.sum not tidy: run go mod tidy there" >&2
      exit 1
    fi)
done
hack/verify-proto.sh

# The plugin never links a node engine: everything under agent/ is the
# agent's (docs/architecture.md). The compiler keeps agent/internal out;
# this keeps out agent/server and agent/cli too.
engines=$(go list -deps ./cmd/kubectl-dr | grep -E '^github.com/kubectl-dr/kubectl-dr/agent(/|$)' || true)
if [ -n "$engines" ]; then
  echo "kubectl-dr links agent packages (move what both binaries need under internal/):" >&2
  echo "$engines" >&2
  exit 1
fi

# manifests/ names a fixed release's image, this commit's own when tagged.
hack/release/manifest-tag.sh

# The workflows (actionlint, which also runs shellcheck on run: steps when
# it is installed) and the release definition (goreleaser check), with the
# versions hack/tools pins; built once into the lab's binary cache.
"$(hack/release/tool.sh actionlint)"
"$(hack/release/tool.sh goreleaser)" check
