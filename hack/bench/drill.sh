#!/usr/bin/env bash
# A drill's measured RTO against the same restores run by hand one after
# another, on the same data, on a bench lab of its own (one server: etcd,
# the node's restic paths, the lab's PostgreSQL 15 shipping WAL):
#   A  by hand, in sequence: kubectl dr etcd snapshot download + etcdutl
#      snapshot restore; restic restore of the node's snapshot; kubectl dr
#      pg restore --latest --verify (the base backup restored and replayed
#      in a scratch PostgreSQL)
#   B  kubectl dr drill --latest --pg pg-main: the same layers rehearsed in
#      parallel on the node; its RTO (the critical path) and its wall time
# Each run prints both and the ratio RTO / A (goal: 0.6 or less).
# Usage: hack/bench/drill.sh [etcd MiB] [files MiB] [pgbench scale] [runs]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
etcd_mib=${1:-128}
files_mib=${2:-256}
scale=${3:-20}
runs=${4:-3}
dir="$root/_output/bench-drill-lab"
command -v jq >/dev/null || { echo "drill.sh reads the report with jq: apt-get install jq" >&2; exit 1; }

hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node "" >/dev/null 2>&1 || hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node ""
eval "$(hack/lab env --direct --dir "$dir")"
go build -o "$dir/bin/benchtool" ./agent/internal/benchtool
tmp=$(mktemp -d "$dir/run.XXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT

# The same state for both: etcd filled, a tree of files, pgbench tables,
# a base backup, then one backup set (etcd snapshot + restic snapshot) and
# more writes archived after it.
db=$(etcdctl endpoint status -w json | sed -n 's/.*"dbSize":\([0-9]*\).*/\1/p')
if [ "${db:-0}" -lt $(( etcd_mib * 1024 * 1024 * 9 / 10 )) ]; then
  echo "filling etcd with ${etcd_mib} MiB (once)"
  "$dir/bin/benchtool" fill -mib "$etcd_mib"
fi
db=$(etcdctl endpoint status -w json | sed -n 's/.*"dbSize":\([0-9]*\).*/\1/p')
data="$dir/nodes/server-1/var/lib/rancher/k3s/storage"
if [ ! -f "$data/.bench-drill-$files_mib" ]; then
  echo "writing ${files_mib} MiB of files (once)"
  rm -rf "$data" && mkdir -p "$data"
  "$dir/bin/benchtool" tree -files 5000 -mib "$files_mib" "$data"
  touch "$data/.bench-drill-$files_mib"
fi
if [ "$(psql -XAtc "SELECT count(*) FROM pg_tables WHERE tablename = 'pgbench_accounts'")" = 0 ] ||
   [ "$(psql -XAtc 'SELECT count(*) FROM pgbench_accounts')" -ne $(( scale * 100000 )) ]; then
  echo "pgbench -i -s $scale (once)"
  pgbench -i -s "$scale" -q >/dev/null 2>&1
fi
kubectl-dr pg basebackup pg-main >/dev/null 2>&1
set_id="bench-drill-$(date +%s)"
kubectl-dr backup create "$set_id" >/dev/null 2>&1
pgbench -T 5 -c 2 -n >/dev/null 2>&1
last=$(psql -XAtc 'SELECT pg_walfile_name(pg_switch_wal())')
newest() { kubectl-dr wal status pg-main -o json | jq -r '.items[0].newest // ""'; }
until n=$(newest); [[ "$n" > "$last" || "$n" == "$last" ]]; do sleep 0.5; done
set_json=$(kubectl-dr backup describe "$set_id" -o json)
snap=$(jq -r .etcd.snapshot <<<"$set_json")
files_id=$(jq -r '.files[] | select(.node == "server-1") | .snapshotID' <<<"$set_json")
restic=$(sed -n 's/^ *binary: *//p' "$dir/nodes/server-1/etc/dr-agent/config.yaml")
cid=$(sed -n 's/.*"clusterID": *"\([^"]*\)".*/\1/p' "$dir/lab.json")
export RESTIC_PASSWORD_FILE="$dir/pki/restic.password" RESTIC_CACHE_DIR="$tmp/restic-cache"
repo="s3:$DR_S3_ENDPOINT/dr-lab/lab/$cid/restic"
echo "data: etcd $(( db / 1048576 )) MiB (snapshot $snap), files $files_mib MiB (restic $files_id), pgbench scale $scale"

drop_caches() {
  if [ "$(id -u)" = 0 ]; then
    echo 3 > /proc/sys/vm/drop_caches
  elif ! echo 3 | sudo -n tee /proc/sys/vm/drop_caches >/dev/null 2>&1; then
    echo "warning: cannot drop the page cache (not root, no sudo): runs start from different caches" >&2
  fi
}
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
printf '%-4s %10s %10s %10s %10s | %10s %10s | %6s | %s\n' run etcd-ms files-ms pg-ms A-sum-ms drill-RTO drill-wall RTO/A 'load (1/5/15 min, at the run'"'"'s end)'
for i in $(seq "$runs"); do
  sync; drop_caches
  t0=$(now)
  kubectl-dr etcd snapshot download "$snap" --to "$tmp/a.db" >/dev/null 2>&1
  etcdutl snapshot restore "$tmp/a.db" --data-dir "$tmp/a-etcd" --name bench \
    --initial-cluster bench=http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 >/dev/null 2>&1
  t1=$(now)
  "$restic" -r "$repo" restore "$files_id" --target "$tmp/a-files" >/dev/null
  t2=$(now)
  kubectl-dr pg restore pg-main --latest --target-dir "$tmp/a-pg/main" --node server-1 --verify >/dev/null 2>&1
  t3=$(now)
  rm -rf "$tmp/a.db" "$tmp/a-etcd" "$tmp/a-files" "$tmp/a-pg"
  ea=$(ms "$t0" "$t1") fa=$(ms "$t1" "$t2") pa=$(ms "$t2" "$t3") sum=$(ms "$t0" "$t3")

  sync; drop_caches
  out=$(kubectl-dr drill --latest --pg pg-main -o json 2>/dev/null) || { echo "drill failed:"; jq -r '.reasons[]?' <<<"$out"; exit 1; }
  rto=$(jq -r '.rto.seconds * 1000 | floor' <<<"$out")
  wall=$(jq -r '.wallSeconds * 1000 | floor' <<<"$out")
  printf '%-4s %10d %10d %10d %10d | %10d %10d | %6s | %s\n' "$i" "$ea" "$fa" "$pa" "$sum" "$rto" "$wall" \
    "$(awk -v r="$rto" -v s="$sum" 'BEGIN { printf "%.2f", r / s }')" "$(cut -d' ' -f1-3 /proc/loadavg)"
  jq -r '"     critical path: " + .rto.part + "; parts: " + ([.parts[] | .layer + "/" + .name + " " + (.restoreSeconds * 10 | round / 10 | tostring) + "s"] | join(", "))' <<<"$out"
done
