#!/usr/bin/env bash
# The image manifests/ names (for `kubectl apply -k manifests/` from a
# release's source) must be the release's own: a commit that carries a
# release tag names that tag's image, never a moving one. Run by make verify
# and the release workflow; on an untagged commit it checks only that the
# tag is a fixed version.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
image=$(sed -n 's/^ *image: *\(ghcr.io\/kubectl-dr\/dr-agent:[^ ]*\) *$/\1/p' "$root/manifests/daemonset.yaml")
tag=${image##*:}
if [ -z "$image" ] || ! [[ "$tag" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "manifests/daemonset.yaml: image ${image:-(none)}: want ghcr.io/kubectl-dr/dr-agent:vX.Y.Z (a release's own tag, never latest)" >&2
  exit 1
fi
if release=$(git -C "$root" describe --tags --exact-match 2>/dev/null) && [ "$release" != "$tag" ]; then
  echo "manifests/daemonset.yaml names dr-agent:$tag, but this commit is release $release: set the image to :$release before tagging (docs/releasing.md)" >&2
  exit 1
fi
