#!/usr/bin/env bash
# File backup, side by side in one run on a lab of its own: the same tree
# (~1 GiB in 20k files, shaped like local-path volumes) into the lab's MinIO
#   A  bare restic backup (what a user scripts by hand)
#   B  kubectl dr backup create --etcd=false (the agent runs the same restic
#      with --json, the plugin follows its progress and writes the set)
# each twice: full (into an empty repository) and incremental after 1% of
# the files changed. Each run makes fresh repositories and caches.
# Usage: hack/bench/restic-files.sh [MiB] [files] [runs]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mib=${1:-1024}
files=${2:-20000}
runs=${3:-2}
dir="$root/_output/bench-lab"

hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node "" >/dev/null 2>&1 || hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node ""
eval "$(hack/lab env --direct --dir "$dir")"
go build -o "$dir/bin/benchtool" ./agent/internal/benchtool

data="$dir/nodes/server-1/var/lib/rancher/k3s/storage"
if [ ! -f "$data/.bench-$mib-$files" ]; then
  echo "writing ${files} files, ${mib} MiB (once)"
  rm -rf "$data" && mkdir -p "$data"
  "$dir/bin/benchtool" tree -files "$files" -mib "$mib" "$data"
  touch "$data/.bench-$mib-$files"
fi
cid=$(sed -n 's/.*"clusterID": *"\([^"]*\)".*/\1/p' "$dir/lab.json")
restic=$(sed -n 's/^ *binary: *//p' "$dir/nodes/server-1/etc/dr-agent/config.yaml")
export RESTIC_PASSWORD_FILE="$dir/pki/restic.password"
bucket_url="s3:$DR_S3_ENDPOINT/dr-lab/lab"
agent_cache="$dir/nodes/server-1/var/lib/dr-agent/restic-cache"
tmp=$(mktemp -d "$dir/run.XXXX")
trap 'rm -rf "$tmp"' EXIT
agent_pid=$(cat "$dir/run/agent-server-1.pid")

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
bare() { RESTIC_CACHE_DIR="$tmp/cache-bare" /usr/bin/time -f %M -o "$tmp/rss" \
  "$restic" -r "$bucket_url/bench-bare" backup --host server-1 "$data" >/dev/null; }
# dr runs the whole command; the set's started/finished times (taken around
# the agents' work, after the plugin connected) give the agent's part.
dr() {
  kubectl-dr backup create "$1" --etcd=false --buckets=false -o json 2>/dev/null >"$tmp/set.json"
  local s f
  s=$(sed -n 's/^ *"started": "\(.*\)",/\1/p' "$tmp/set.json")
  f=$(sed -n 's/^ *"finished": "\(.*\)",/\1/p' "$tmp/set.json")
  echo $(( ($(date -d "$f" +%s%N) - $(date -d "$s" +%s%N)) / 1000000 )) >"$tmp/agent-ms"
}
fresh() {
  "$dir/bin/benchtool" rmprefix "bench-bare/"
  "$dir/bin/benchtool" rmprefix "$cid/restic/"
  "$dir/bin/benchtool" rmprefix "$cid/sets/"
  rm -rf "$tmp/cache-bare" "$agent_cache"
  "$restic" -r "$bucket_url/bench-bare" init >/dev/null
  "$restic" -r "$bucket_url/$cid/restic" init >/dev/null
}
timed() { local t0 t1; t0=$(now); "$@"; t1=$(now); ms "$t0" "$t1"; }

fa=0 fb=0 ia=0 ib=0 fg=0 ig=0 rss=0
for i in $(seq "$runs"); do
  fresh
  # Alternate who goes first, so neither always gets the warmer cache.
  if (( i % 2 )); then
    fa=$(( fa + $(timed bare) )); fb=$(( fb + $(timed dr "bench-full-$i") ))
  else
    fb=$(( fb + $(timed dr "bench-full-$i") )); fa=$(( fa + $(timed bare) ))
  fi
  fg=$(( fg + $(cat "$tmp/agent-ms") ))
  rss=$(cat "$tmp/rss")
  "$dir/bin/benchtool" touch -percent 1 "$data"
  if (( i % 2 )); then
    ib=$(( ib + $(timed dr "bench-incr-$i") )); ia=$(( ia + $(timed bare) ))
  else
    ia=$(( ia + $(timed bare) )); ib=$(( ib + $(timed dr "bench-incr-$i") ))
  fi
  ig=$(( ig + $(cat "$tmp/agent-ms") ))
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$agent_pid/status")

printf 'file backup, %s files, %s MiB, mean of %s runs\n' "$files" "$mib" "$runs"
printf '  full         A bare restic %7d ms   B kubectl dr %7d ms (agent part %7d ms)\n' $(( fa / runs )) $(( fb / runs )) $(( fg / runs ))
printf '  incremental  A bare restic %7d ms   B kubectl dr %7d ms (agent part %7d ms)\n' $(( ia / runs )) $(( ib / runs )) $(( ig / runs ))
awk -v fa="$fa" -v fb="$fb" -v ia="$ia" -v ib="$ib" -v fg="$fg" -v ig="$ig" 'BEGIN {
  printf "  B/A full %.3fx (agent part %.3fx)   incremental %.3fx (agent part %.3fx)   goal <= 1.03x\n", fb / fa, fg / fa, ib / ia, ig / ia }'
printf '  bare restic peak RSS %d MiB; dr-agent peak RSS %d MiB (restic under it is the same binary)\n' $(( rss / 1024 )) $(( hwm / 1024 ))
echo "the bench lab stays in $dir: hack/lab down --dir $dir"
