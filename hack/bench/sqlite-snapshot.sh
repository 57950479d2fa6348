#!/usr/bin/env bash
# k3s SQLite datastore snapshot to the store under writes, side by side in
# one run on the bench lab (for its MinIO; one etcd member, no kube node):
#   A  what a user does today: sqlite3 state.db ".backup copy.db" (Debian's
#      sqlite3, the online backup API), then a plain upload (one PutObject)
#   B  ours: the agent's snapshot (online backup in one step, then one pass
#      that hashes, compresses, encrypts and uploads; the record last)
# Both on a quiet database, then under a kine-like writer (a 4 KiB row every
# 5 ms), which reports any write that took over a second.
# Usage: hack/bench/sqlite-snapshot.sh [MiB] [runs]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mib=${1:-500}
runs=${2:-3}
dir="$root/_output/bench-lab"
command -v sqlite3 >/dev/null || { echo "needs Debian's sqlite3 (apt-get install sqlite3)" >&2; exit 1; }

hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node "" >/dev/null 2>&1 || hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node ""
eval "$(hack/lab env --dir "$dir")"
go build -o "$dir/bin/benchtool" ./agent/internal/benchtool
data="$dir/sqlite-bench/k3s"
state="$data/server/db/state.db"
if [ ! -f "$state" ] || [ "$(stat -c %s "$state")" -lt $(( mib * 1024 * 1024 * 9 / 10 )) ]; then
  echo "filling state.db with ${mib} MiB (once)"
  rm -f "$state" "$state-wal" "$state-shm"
  "$dir/bin/benchtool" kinefill -mib "$mib" "$state"
fi
tmp=$(mktemp -d "$dir/run.XXXX")
writer=""
trap '[ -n "$writer" ] && kill $writer 2>/dev/null; rm -rf "$tmp"' EXIT
start_writer() { "$dir/bin/benchtool" kinewrite "$state" 2>>"$tmp/writer.log" & writer=$!; }
stop_writer() { kill "$writer" 2>/dev/null; wait "$writer" 2>/dev/null || true; writer=""; }

drop_caches() {
  if [ "$(id -u)" = 0 ]; then
    echo 3 > /proc/sys/vm/drop_caches
  elif ! echo 3 | sudo -n tee /proc/sys/vm/drop_caches >/dev/null 2>&1; then
    echo "warning: cannot drop the page cache (not root, no sudo): runs start from different caches" >&2
  fi
}
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
run_a() { # $1: run; $2: limit in s; prints ms, or "unfinished"
  drop_caches
  local t0 t1; t0=$(now)
  if ! timeout "$2" sqlite3 "$state" ".timeout 30000" ".backup $tmp/a.db"; then rm -f "$tmp"/a.db*; echo unfinished; return; fi
  "$dir/bin/benchtool" upload "$tmp/a.db" "bench/sqlite-plain-$1.db"; t1=$(now)
  rm -f "$tmp/a.db"; ms "$t0" "$t1"
}
run_b() {
  drop_caches
  local t0 t1; t0=$(now)
  "$dir/bin/benchtool" sqlitesnap -key "$DR_SNAPSHOT_KEY" "$data" 2>>"$tmp/ours.log"; t1=$(now)
  ms "$t0" "$t1"
}

# Quiet database: the two side by side.
a=0 b=0 ratios=""
for i in $(seq 1 "$runs"); do
  ra=$(run_a "$i" 600); rb=$(run_b)
  a=$(( a + ra )); b=$(( b + rb ))
  ratios="$ratios $(awk -v a="$ra" -v b="$rb" 'BEGIN { printf "%.2f", b / a }')"
  echo "quiet run $i: A ${ra} ms, B ${rb} ms"
done
# Under writes: sqlite3's .backup copies 100 pages a step and starts over
# whenever another connection writes; ours copies in one step.
start_writer
bw=0
for i in $(seq 1 "$runs"); do
  rb=$(run_b); bw=$(( bw + rb )); echo "under writes run $i: B ${rb} ms"
done
aw=$(run_a w 120); echo "under writes: A ${aw} (limit 120 s)"
stop_writer
"$dir/bin/benchtool" rmprefix "bench/sqlite-plain-"
"$dir/bin/benchtool" rmprefix "bench/etcd/bench/"

printf 'SQLite snapshot, state.db %s MiB, mean of %s runs\n' $(( $(stat -c %s "$state") / 1024 / 1024 )) "$runs"
printf '  A sqlite3 .backup, then plain upload          %7d ms   (quiet)\n' $(( a / runs ))
printf '  B ours (backup, zstd, age, upload, record)    %7d ms   (quiet)\n' $(( b / runs ))
awk -v a="$a" -v b="$b" 'BEGIN { printf "  B/A %.2fx (goal <= 1.0x)\n", b / a }'
printf '  B/A per run:%s\n' "$ratios"
printf '  under a write every 5 ms: B %d ms; A %s\n' $(( bw / runs )) "$aw"
tail -n 1 "$tmp/ours.log"
if [ -s "$tmp/writer.log" ]; then echo "  writes over 1 s:"; cat "$tmp/writer.log"; else echo "  no write took over 1 s"; fi
echo "the bench lab stays in $dir: hack/lab down --dir $dir"
