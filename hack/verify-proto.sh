#!/usr/bin/env bash
# Fails when the checked-in generated code differs from what
# hack/update-proto.sh produces.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -a "$root/api" "$tmp/api.before"
"$root/hack/update-proto.sh"
if ! diff -ru "$tmp/api.before" "$root/api"; then
  rm -rf "$root/api" && cp -a "$tmp/api.before" "$root/api"
  echo "generated code is out of date: run hack/update-proto.sh and commit the result" >&2
  exit 1
fi
echo "generated code is up to date"
