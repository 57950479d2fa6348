#!/usr/bin/env bash
# etcd restore from the store, side by side in one run on the bench lab
# (one etcd member, ~1 GiB of data; shared with etcd-snapshot.sh):
#   A  what a user does today: download the snapshot k3s uploaded (the raw
#      .db, one GetObject), then etcdutl snapshot restore, in sequence
#   B  ours: what a restore plan runs on a node (stop/start aside): the
#      member's new data dir built from the store (download, age decrypt,
#      zstd, both sha256s streamed straight into the new database; then
#      membership, revision bump, WAL), verify-snapshot, restore-data-dir
#      (the swap)
# Usage: hack/bench/etcd-restore.sh [MiB] [runs]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mib=${1:-1024}
runs=${2:-3}
dir="$root/_output/bench-lab"

. hack/bench/etcd-lab.sh

# The same state both ways: one etcdctl snapshot uploaded plainly (as k3s's
# S3 upload leaves it), one kubectl dr snapshot (compressed, encrypted).
etcdctl snapshot save "$tmp/raw.db" >/dev/null 2>&1
raw_size=$(stat -c %s "$tmp/raw.db")
"$dir/bin/benchtool" upload "$tmp/raw.db" bench/restore-raw.db
rm -f "$tmp/raw.db"
name=$(kubectl-dr etcd snapshot save --name bench-restore -o json 2>/dev/null | sed -n 's/^    "name": "\(.*\)",/\1/p')
export DR_CLUSTER_ID
DR_CLUSTER_ID=$(kubectl-dr status -o json 2>/dev/null | sed -n 's/.*"clusterID": "\(.*\)".*/\1/p' | head -1)

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
# Peak resident memory (KiB) of each command, when GNU time is there.
rss_a=0 rss_b=0
peak() { # var cmd...
  local var=$1; shift
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f %M -o "$tmp/rss" "$@"
    local kib; kib=$(tail -n 1 "$tmp/rss")
    if [ "$kib" -gt "${!var}" ]; then printf -v "$var" %s "$kib"; fi
  else
    "$@"
  fi
}
a=0 b=0
for i in $(seq "$runs"); do
  sync; drop_caches
  t0=$(now)
  peak rss_a "$dir/bin/benchtool" download bench/restore-raw.db "$tmp/a.db"
  peak rss_a etcdutl snapshot restore "$tmp/a.db" --data-dir "$tmp/a-etcd" --name bench \
    --initial-cluster bench=http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --bump-revision 1000000000 --mark-compacted >/dev/null 2>&1
  t1=$(now)
  a=$(( a + $(ms "$t0" "$t1") )); rm -rf "$tmp/a.db" "$tmp/a-etcd"

  sync; drop_caches
  t0=$(now)
  peak rss_b "$dir/bin/benchtool" restore -snapshot "$name" -key "$DR_SNAPSHOT_KEY" -out "$tmp/b"
  t1=$(now)
  b=$(( b + $(ms "$t0" "$t1") )); rm -rf "$tmp/b"
done
kubectl-dr etcd snapshot rm "$name" >/dev/null
"$dir/bin/benchtool" rmprefix "bench/restore-raw.db"

printf 'etcd restore, snapshot %s MiB, mean of %s runs\n' $(( raw_size / 1024 / 1024 )) "$runs"
printf '  A download the raw snapshot, then etcdutl restore   %7d ms\n' $(( a / runs ))
printf '  B kubectl dr: fetch + verify + restore              %7d ms\n' $(( b / runs ))
awk -v a="$a" -v b="$b" 'BEGIN { printf "  B/A %.2fx (goal <= 0.8x)\n", b / a }'
if [ "$rss_a" -gt 0 ]; then
  printf '  peak RSS: A %d MiB (etcdutl maps the database), B %d MiB\n' $(( rss_a / 1024 )) $(( rss_b / 1024 ))
fi
echo "the bench lab stays in $dir: hack/lab down --dir $dir"
