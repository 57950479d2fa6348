#!/usr/bin/env bash
# etcd snapshot to the store, side by side in one run on a lab of its own
# (one etcd member, ~1 GiB of data):
#   A  etcdctl snapshot save to local disk alone (what k3s etcd-snapshot does)
#   B  kubectl dr etcd snapshot save: local copy + zstd + age + upload to MinIO
#   C  etcdctl snapshot save, then a plain upload of the file (one PutObject)
# Usage: hack/bench/etcd-snapshot.sh [MiB] [runs]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mib=${1:-1024}
runs=${2:-3}
dir="$root/_output/bench-lab"

. hack/bench/etcd-lab.sh
agent_pid=$(cat "$dir/run/agent-server-1.pid")

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
# The same start for every run: the page cache emptied (so no writer pays
# for reclaiming what earlier runs left) and etcd's database read back in.
etcd_db="$dir/nodes/server-1/var/lib/rancher/k3s/server/db/etcd/member/snap/db"
settle() {
  sync; drop_caches
  cat "$etcd_db" >/dev/null 2>&1 || true
}
a=0 b=0 c=0 ratios=""
for i in $(seq "$runs"); do
  settle
  ta0=$(now); etcdctl snapshot save "$tmp/a.db" >/dev/null 2>&1; ta1=$(now)
  a=$(( a + $(ms "$ta0" "$ta1") )); rm -f "$tmp/a.db"

  settle
  t0=$(now); name=$(kubectl-dr etcd snapshot save --name bench -o json 2>/dev/null | sed -n 's/^    "name": "\(.*\)",/\1/p'); t1=$(now)
  b=$(( b + $(ms "$t0" "$t1") ))
  ratios="$ratios $(awk -v a="$(ms "$ta0" "$ta1")" -v b="$(ms "$t0" "$t1")" 'BEGIN { printf "%.3f", b / a }')"
  kubectl-dr etcd snapshot rm "$name" >/dev/null

  settle
  t0=$(now); etcdctl snapshot save "$tmp/c.db" >/dev/null 2>&1; "$dir/bin/benchtool" upload "$tmp/c.db" "bench/plain-$i.db"; t1=$(now)
  c=$(( c + $(ms "$t0" "$t1") )); rm -f "$tmp/c.db"
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$agent_pid/status")
"$dir/bin/benchtool" rmprefix "bench/plain-"

printf 'etcd snapshot, db %s MiB, mean of %s runs\n' $(( db / 1024 / 1024 )) "$runs"
printf '  A etcdctl snapshot save (local disk)          %7d ms\n' $(( a / runs ))
printf '  B kubectl dr etcd snapshot save (to MinIO)    %7d ms\n' $(( b / runs ))
printf '  C etcdctl save, then plain upload             %7d ms\n' $(( c / runs ))
awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN {
  printf "  B/A %.2fx (goal <= 1.15x)   B/C %.2fx\n", b / a, b / c }'
# Each run's A and B go one after the other; the median of their ratios
# is what a noisy machine (other tenants, the disk) changes least.
printf '  B/A per run:%s; median %s\n' "$ratios" "$(printf '%s\n' $ratios | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')x"
printf '  dr-agent peak RSS %d MiB\n' $(( hwm / 1024 ))
echo "the bench lab stays in $dir: hack/lab down --dir $dir"
