#!/usr/bin/env bash
# Times `kubectl dr status` (all nodes, agents + their etcd members) against
# what a user runs without it, `etcdctl endpoint status --cluster` plus
# `etcdctl endpoint health --cluster`, on the lab. Prints mean wall times and
# the ratio. Usage: hack/bench/status.sh [RUNS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
runs=${1:-20}
hack/lab up >/dev/null 2>&1 || hack/lab up
eval "$(hack/lab env --direct)"

mean_ms() {
  local start end
  start=$(date +%s%N)
  for _ in $(seq "$runs"); do "$@" >/dev/null 2>&1; done
  end=$(date +%s%N)
  echo $(( (end - start) / runs / 1000000 ))
}
etcdctl_both() { etcdctl endpoint status --cluster && etcdctl endpoint health --cluster; }

dr=$(mean_ms kubectl-dr status -o json)
ec=$(mean_ms etcdctl_both)
printf 'status of %s nodes, mean of %s runs\n' "$(echo "$KUBECTL_DR_AGENTS" | tr ',' '\n' | wc -l)" "$runs"
printf '  kubectl dr status -o json                 %6d ms\n' "$dr"
printf '  etcdctl endpoint status+health --cluster  %6d ms\n' "$ec"
awk -v a="$dr" -v b="$ec" 'BEGIN { if (b > 0) printf "  ratio kubectl-dr / etcdctl                %6.2fx\n", a / b }'
