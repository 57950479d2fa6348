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
a=0 b=0 c=0
for i in $(seq "$runs"); do
  t0=$(now); etcdctl snapshot save "$tmp/a.db" >/dev/null 2>&1; t1=$(now)
  a=$(( a + $(ms "$t0" "$t1") )); rm -f "$tmp/a.db"

  t0=$(now); name=$(kubectl-dr etcd snapshot save --name bench -o json 2>/dev/null | sed -n 's/^    "name": "\(.*\)",/\1/p'); t1=$(now)
  b=$(( b + $(ms "$t0" "$t1") ))
  kubectl-dr etcd snapshot rm "$name" >/dev/null

  t0=$(now); etcdctl snapshot save "$tmp/c.db" >/dev/null 2>&1; "$dir/bin/benchtool" upload "$tmp/c.db" "bench/plain-$i.db"; t1=$(now)
  c=$(( c + $(ms "$t0" "$t1") )); rm -f "$tmp/c.db"
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$agent_pid/status")

printf 'etcd snapshot, db %s MiB, mean of %s runs\n' $(( db / 1024 / 1024 )) "$runs"
printf '  A etcdctl snapshot save (local disk)          %7d ms\n' $(( a / runs ))
printf '  B kubectl dr etcd snapshot save (to MinIO)    %7d ms\n' $(( b / runs ))
printf '  C etcdctl save, then plain upload             %7d ms\n' $(( c / runs ))
awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN {
  printf "  B/A %.2fx (goal <= 1.15x)   B/C %.2fx\n", b / a, b / c }'
printf '  dr-agent peak RSS %d MiB\n' $(( hwm / 1024 ))
echo "the bench lab stays in $dir: hack/lab down --dir $dir"
