#!/usr/bin/env bash
# Prints the path of a release checker, building it first when the lab's
# binary cache (~/.cache/kubectl-dr/bin, or $DR_LAB_CACHE) lacks it:
#   hack/release/tool.sh actionlint|goreleaser
# Versions are pinned by the tools modules hack/tools/<name>/ (go.mod and
# go.sum); the cache directory is named after the version, so a bump
# rebuilds. Cold builds measured here: actionlint ~10 s, goreleaser ~2 min.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
name=${1:?usage: hack/release/tool.sh actionlint|goreleaser}
case "$name" in
  actionlint) module=github.com/rhysd/actionlint; pkg=github.com/rhysd/actionlint/cmd/actionlint ;;
  goreleaser) module=github.com/goreleaser/goreleaser/v2; pkg=github.com/goreleaser/goreleaser/v2 ;;
  *) echo "tool.sh: unknown tool $name (want actionlint or goreleaser)" >&2; exit 2 ;;
esac
version=$(go -C "$root/hack/tools/$name" list -m -f '{{.Version}}' "$module")
cache=${DR_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-dr/bin}
bin="$cache/$name-$version/$name"
if [ ! -x "$bin" ]; then
  echo "building $name $version into $(dirname "$bin") (once)" >&2
  mkdir -p "$(dirname "$bin")"
  go -C "$root/hack/tools/$name" build -o "$bin.part" "$pkg"
  mv "$bin.part" "$bin"
fi
echo "$bin"
