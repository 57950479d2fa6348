#!/usr/bin/env bash
# make demo: the lab, a backup (an etcd snapshot to MinIO, encrypted) and a
# restore of that snapshot into a scratch etcd; then a backup set with the
# nodes' local-path volumes (restic) and a previewed file restore, all
# through kubectl dr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

current=""
step() { current=$*; printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# A lab that was running before the demo stays running whatever happens; one
# the demo started is stopped again if the demo fails.
was_up=false
if (eval "$(hack/lab env 2>/dev/null)" && etcdctl endpoint health) >/dev/null 2>&1; then
  was_up=true
fi
scratch=""
cleanup() {
  rc=$?
  [ -z "$scratch" ] || { kill "$scratch" 2>/dev/null; wait "$scratch" 2>/dev/null || true; }
  if [ "$rc" -ne 0 ]; then
    echo >&2
    echo "demo: failed (exit $rc) at: $current" >&2
    if $was_up; then
      echo "demo: the lab was running before the demo and stays up; stop it with: make lab-down" >&2
    else
      hack/lab down >/dev/null 2>&1 || true
      echo "demo: stopped the lab it started (its data stays in _output/lab: make lab-clean removes it)" >&2
    fi
  fi
}
trap cleanup EXIT

step "starting the lab (first run builds etcd, kube-apiserver, MinIO and restic: minutes; then seconds)"
hack/lab up
eval "$(hack/lab env)"
work="$DR_LAB_DIR/demo"
rm -rf "$work" && mkdir -p "$work"

step "kubectl dr status: server-1 is a real Kubernetes node (kubelet + containerd) whose agent runs as the DaemonSet's pod, reached through the API server's port-forward; server-2 and server-3 are agent processes reached directly"
kubectl get nodes
kubectl -n dr-system get pods -o wide
kubectl-dr status -o wide

step "writing data: etcd keys and Kubernetes objects through the API server"
for i in 1 2 3; do etcdctl put "/demo/key-$i" "value $i written $(date -u +%FT%TZ)" >/dev/null; done
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n demo create configmap settings --from-literal=color=blue --dry-run=client -o yaml | kubectl apply -f - >/dev/null
etcdctl get /demo/ --prefix

step "kubectl dr etcd snapshot save: on the etcd leader, local copy + compressed, encrypted upload to MinIO"
kubectl-dr etcd snapshot save --name demo | tee "$work/save.txt"
name=$(awk 'NR == 2 {print $1}' "$work/save.txt")

step "kubectl dr etcd snapshot ls"
kubectl-dr etcd snapshot ls

step "disaster: the demo keys are deleted"
etcdctl del /demo/ --prefix >/dev/null
etcdctl get /demo/ --prefix --count-only -w fields | grep Count
kubectl delete namespace demo --wait=false >/dev/null

step "restore: download the snapshot (decrypt, decompress, verify), etcdutl restore into a scratch etcd"
kubectl-dr etcd snapshot download "$name" --to "$work/snapshot.db" --key-file "$DR_SNAPSHOT_KEY"
peer="http://127.0.0.1:$(hack/lab port)"
client="http://127.0.0.1:$(hack/lab port)"
etcdutl snapshot restore "$work/snapshot.db" --data-dir "$work/etcd" --name scratch \
  --initial-cluster "scratch=$peer" --initial-advertise-peer-urls "$peer" >/dev/null 2>&1
etcd --name scratch --data-dir "$work/etcd" --listen-client-urls "$client" --advertise-client-urls "$client" \
  --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "scratch=$peer" \
  --log-level error >"$work/etcd.log" 2>&1 &
scratch=$!
scratchctl() { env -u ETCDCTL_ENDPOINTS -u ETCDCTL_CACERT -u ETCDCTL_CERT -u ETCDCTL_KEY etcdctl --endpoints "$client" "$@"; }
for _ in $(seq 50); do
  scratchctl endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done

step "the keys and the ConfigMap came back in the restored etcd"
scratchctl get /demo/ --prefix
scratchctl get /registry/configmaps/demo/settings --keys-only

step "volumes: a local-path PVC directory on server-1 (backed up by the DaemonSet's pod) and plain files on server-2"
pvc="$DR_LAB_DIR/nodes/server-1/var/lib/rancher/k3s/storage/pvc-5e2f3a10-0c1d-4b2a-9f00-0de000000001_shop_data-0"
plain="$DR_LAB_DIR/nodes/server-2/var/lib/rancher/k3s/storage/uploads"
mkdir -p "$pvc" "$plain"
for i in 1 2 3; do echo "order $i" >"$pvc/order-$i.txt"; echo "upload $i" >"$plain/upload-$i.txt"; done
ls "$pvc" "$plain"

set_name="demo-$(date -u +%H%M%S)"
step "kubectl dr backup create $set_name: an etcd snapshot plus a restic snapshot per node, in parallel"
kubectl-dr backup create "$set_name"
kubectl-dr backup ls

step "disaster: an order is edited, another deleted, an upload deleted"
echo "tampered" >"$pvc/order-1.txt"
rm "$pvc/order-2.txt" "$plain/upload-3.txt"

step "kubectl dr restore $set_name --dry-run: exactly what would change"
kubectl-dr restore "$set_name" --dry-run

step "kubectl dr restore $set_name --yes: the edited file is moved aside first, never overwritten in place"
kubectl-dr restore "$set_name" --yes
cat "$pvc/order-1.txt" "$pvc/order-2.txt" "$plain/upload-3.txt"

cat <<MSG

The lab stays up. Use it from your shell:
  eval "\$(hack/lab env)"; kubectl-dr status; kubectl-dr etcd snapshot ls; kubectl-dr backup ls
Stop it with: make lab-down
MSG
