#!/usr/bin/env bash
# Application bucket backup, side by side in one run on a lab of its own:
# ~1 GiB in ~10,000 objects (four of them 64 MiB) in SeaweedFS, copied into
# the lab's MinIO
#   A  a plain parallel copy with minio-go (list, GetObject streamed into
#      PutObject, 8 at once: the work mc mirror does)
#   B  the agent's bucket pass (agent/internal/buckets, 8 at once): sha256,
#      md5 and age encryption on the way, CRC64NVME verified by the store,
#      index segments written after their blobs
# then C: B again after 1% of the objects changed (the incremental pass).
# Each run copies into a fresh bucket (A) and a fresh source (B).
# Usage: hack/bench/bucket-copy.sh [MiB] [objects] [runs]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mib=${1:-1024}
objects=${2:-10000}
runs=${3:-3}
dir="$root/_output/bench-lab"

hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node "" >/dev/null 2>&1 || hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node ""
eval "$(hack/lab env --dir "$dir")"
go build -o "$dir/bin/benchtool" ./agent/internal/benchtool
bucket="bench-$mib-$objects"
if [ ! -f "$dir/.$bucket" ]; then
  echo "writing $objects objects, $mib MiB into $bucket (once)"
  "$dir/bin/benchtool" bucketfill -bucket "$bucket" -objects "$objects" -mib "$mib"
  touch "$dir/.$bucket"
fi
tmp=$(mktemp -d "$dir/run.XXXX")
trap 'rm -rf "$tmp"' EXIT

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
rss_a=0 rss_b=0
timed() { # rss-var cmd...
  local var=$1; shift
  /usr/bin/time -f %M -o "$tmp/rss" "$@" 2>>"$tmp/log"
  local kib; kib=$(tail -n 1 "$tmp/rss")
  if [ "$kib" -gt "${!var}" ]; then printf -v "$var" %s "$kib"; fi
}
a=0 b=0 c=0
for i in $(seq "$runs"); do
  id="$(date +%s)-$i"
  sync
  t0=$(now); timed rss_a "$dir/bin/benchtool" bucketmirror -bucket "$bucket" -to "mirror-$id"; t1=$(now)
  sync
  timed rss_b "$dir/bin/benchtool" bucketpass -bucket "$bucket" -source "bench-$id" -key "$DR_SNAPSHOT_KEY"; t2=$(now)
  "$dir/bin/benchtool" buckettouch -bucket "$bucket" -percent 1
  sync
  t3=$(now); timed rss_b "$dir/bin/benchtool" bucketpass -bucket "$bucket" -source "bench-$id" -key "$DR_SNAPSHOT_KEY"; t4=$(now)
  "$dir/bin/benchtool" bucketdrop -to "mirror-$id" -source "bench-$id"
  printf 'run %d: A mirror %d ms   B pass %d ms   C incremental %d ms\n' "$i" "$(ms "$t0" "$t1")" "$(ms "$t1" "$t2")" "$(ms "$t3" "$t4")"
  a=$(( a + $(ms "$t0" "$t1") )) b=$(( b + $(ms "$t1" "$t2") )) c=$(( c + $(ms "$t3" "$t4") ))
done
printf 'bucket copy, %s objects, %s MiB, mean of %s runs\n' "$objects" "$mib" "$runs"
printf '  full         A plain minio-go copy %7d ms   B bucket pass %7d ms\n' $(( a / runs )) $(( b / runs ))
printf '  incremental  C bucket pass, 1%% changed %7d ms\n' $(( c / runs ))
awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN { printf "  B/A %.3fx (goal <= 1.1x)   C/B %.3f (goal <= 0.10)\n", b / a, c / b }'
printf '  peak RSS: A %d MiB, B %d MiB\n' $(( rss_a / 1024 )) $(( rss_b / 1024 ))
grep -h '^pass ' "$tmp/log" | tail -n 2 | sed 's/^/  /'
echo "the bench lab stays in $dir: hack/lab down --dir $dir"
