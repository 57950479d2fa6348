#!/usr/bin/env bash
# Restoring a namespace of N objects (ConfigMaps, Secrets, Deployments with
# no replicas, Services, a quarter each) side by side in one run, on a lab of
# its own (one etcd member, kube-apiserver, no kube node):
#   A  kubectl dr objects restore SNAPSHOT -n bench --namespace-mapping bench:NEW
#      (fetch + verify + decrypt the snapshot, decode, server-side apply)
#   B  kubectl apply --server-side -f of the same objects as YAML into NEW
# Each run restores into a fresh namespace (no deletion to wait for). Also
# times `objects ls -A` on the snapshot with its peak RSS.
# Usage: hack/bench/objects-restore.sh [objects] [runs]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
n=${1:-1000}
runs=${2:-3}
dir="$root/_output/bench-lab"
hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node "" >/dev/null 2>&1 || hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node ""
eval "$(hack/lab env --dir "$dir")"
tmp=$(mktemp -d "$dir/objects.XXXX")
trap 'rm -rf "$tmp"' EXIT

# The objects, as a user keeps them in YAML; namespace NS replaced per run.
q=$(( n / 4 ))
{
  printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: NS}\n'
  for i in $(seq "$q"); do
    printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d, namespace: NS, labels: {app: a%d}}\ndata: {key: "value %d", other: "%s"}\n' "$i" "$i" "$i" "$(printf 'x%.0s' $(seq 200))"
    printf -- '---\napiVersion: v1\nkind: Secret\nmetadata: {name: secret-%d, namespace: NS}\nstringData: {password: "pw-%d"}\n' "$i" "$i"
    printf -- '---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app-%d, namespace: NS}\nspec:\n  replicas: 0\n  selector: {matchLabels: {app: a%d}}\n  template:\n    metadata: {labels: {app: a%d}}\n    spec: {containers: [{name: app, image: "registry.invalid/app:%d", ports: [{containerPort: 8080}]}]}\n' "$i" "$i" "$i" "$i"
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: svc-%d, namespace: NS}\nspec: {selector: {app: a%d}, ports: [{port: 80, targetPort: 8080}]}\n' "$i" "$i"
  done
} > "$tmp/objects.tmpl"

if ! kubectl get namespace bench >/dev/null 2>&1; then
  sed 's/NS/bench/g' "$tmp/objects.tmpl" > "$tmp/bench.yaml"
  kubectl apply --server-side -f "$tmp/bench.yaml" >/dev/null
fi
snap=$(kubectl-dr etcd snapshot save --name objects-bench -o json 2>/dev/null | sed -n 's/^ *"name": "\(.*\)",$/\1/p' | head -1)
echo "snapshot $snap: namespace bench, $(( q * 4 )) objects"

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
stamp=$(date +%s)
sum_a=0 sum_b=0
for r in $(seq "$runs"); do
  a_ns="dr-$stamp-$r" b_ns="kc-$stamp-$r"
  t0=$(now)
  kubectl-dr objects restore "$snap" -n bench --namespace-mapping "bench:$a_ns" --yes >"$tmp/a.out" 2>"$tmp/a.err"
  t1=$(now)
  sed "s/NS/$b_ns/g" "$tmp/objects.tmpl" > "$tmp/$b_ns.yaml"
  t2=$(now)
  kubectl apply --server-side -f "$tmp/$b_ns.yaml" >/dev/null
  t3=$(now)
  a=$(ms "$t0" "$t1") b=$(ms "$t2" "$t3")
  sum_a=$(( sum_a + a )) sum_b=$(( sum_b + b ))
  awk -v r="$r" -v a="$a" -v b="$b" -v s="$(tail -1 "$tmp/a.err")" 'BEGIN { printf "run %d: objects restore %6d ms   kubectl apply --server-side %6d ms   ratio %.2fx   (%s)\n", r, a, b, a / b, s }'
done
awk -v a="$sum_a" -v b="$sum_b" -v n="$runs" 'BEGIN { printf "mean of %d: objects restore %d ms, kubectl apply --server-side %d ms, ratio %.2fx\n", n, a / n, b / n, a / b }'
/usr/bin/time -f '%e s, peak RSS %M KiB' kubectl-dr objects ls "$snap" >"$tmp/ls.out" 2>"$tmp/ls.err" || cat "$tmp/ls.err" >&2
echo "objects ls of $snap ($(wc -l <"$tmp/ls.out") rows): $(tail -1 "$tmp/ls.err")"
