#!/usr/bin/env bash
# objects ls on etcd snapshots of two sizes with the same number of keys
# (4096 ConfigMaps of 64 KiB, then of 256 KiB: about 265 MiB and 1 GiB),
# written by a real embedded etcd into a file:// store (no lab): time and
# peak RSS, to show memory does not grow with the snapshot's size.
# Usage: hack/bench/objects-ls.sh [n] [small-kib] [large-kib]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
n=${1:-4096}
small=${2:-64}
large=${3:-256}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/benchtool" ./agent/internal/benchtool
go build -o "$tmp/kubectl-dr" ./cmd/kubectl-dr
for kib in "$small" "$large"; do
  read -r snap size < <("$tmp/benchtool" objsnap -n "$n" -kib "$kib" "$tmp/store" 2>/dev/null)
  # No API server: the cluster is the one --cluster-id names.
  KUBECONFIG=/nonexistent /usr/bin/time -f '%e s, peak RSS %M KiB' \
    "$tmp/kubectl-dr" objects ls "$snap" -A --store "file://$tmp/store" --cluster-id bench >"$tmp/ls.out" 2>"$tmp/ls.err" || { cat "$tmp/ls.err" >&2; exit 1; }
  echo "objects ls of $snap ($(( size >> 20 )) MiB, $(( $(wc -l <"$tmp/ls.out") - 1 )) objects): $(tail -1 "$tmp/ls.err")"
  rm -rf "$tmp/store"
done
