#!/usr/bin/env bash
# make demo: the product's story on the lab `hack/lab up` starts.
#   1. back up the platform: etcd (a namespace with objects, through the API
#      server), the nodes' local-path volumes (restic), and PostgreSQL under
#      load (a base backup while pgbench writes; its WAL ships through the
#      agent);
#   2. break it: a namespace deleted, rows deleted and overwritten, files
#      edited and deleted, right after a recorded time T;
#   3. preview every restore;
#   4. restore for real: the cluster's etcd, the files, the database to T;
#   5. show everything back.
# Every command the demo runs is printed first ($ ...), so it can be
# repeated from a shell after: eval "$(hack/lab env)".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
began=$(date +%s)

current=""
step() { current=$*; printf '\n\033[1m==> %s\033[0m\n' "$*"; }
# quote prints one argument as a shell reads it back.
quote() {
  case $1 in
    *[!A-Za-z0-9_./:=,@%+-]* | "") printf "'%s'" "${1//\'/\'\\\'\'}" ;;
    *) printf '%s' "$1" ;;
  esac
}
# run prints the command, then runs it.
run() {
  local a line='$'
  for a in "$@"; do line+=" $(quote "$a")"; done
  printf '\033[36m%s\033[0m\n' "$line"
  "$@"
}
# runsh prints a pipeline, then runs it.
runsh() {
  printf '\033[36m$ %s\033[0m\n' "$1"
  eval "$1"
}
note() { printf '   %s\n' "$*"; }

# A lab that was running before the demo stays running whatever happens; one
# the demo started is stopped again if the demo fails.
was_up=false
if (eval "$(hack/lab env 2>/dev/null)" && etcdctl endpoint health) >/dev/null 2>&1; then
  was_up=true
fi
load="" restored_pg=""
cleanup() {
  rc=$?
  [ -z "$load" ] || { kill "$load" 2>/dev/null; wait "$load" 2>/dev/null || true; }
  [ -z "$restored_pg" ] || runuser -u postgres -- "$pgbin/pg_ctl" -D "$restored_pg" -m fast stop >/dev/null 2>&1 || true
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

step "starting the lab (first run builds etcd, kube-apiserver, kubelet, MinIO and restic: minutes; then seconds)"
run hack/lab up
eval "$(hack/lab env)"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
export PATH="$PATH:$pgbin"

step "kubectl dr status: server-1 is a real Kubernetes node (kubelet + containerd) whose agent is the DaemonSet's pod, reached through the API server's port-forward; server-2 and server-3 are agent processes reached directly"
run kubectl get nodes
run kubectl dr status || note "exit $?: nothing is backed up yet, so the recovery point targets are missed; status exits 1 until the backups below run"

# ---------------------------------------------------------------- 1. back up
step "the platform's data: a namespace with objects, volumes, a database"
runsh 'kubectl create namespace shop --dry-run=client -o yaml | kubectl apply -f -'
runsh 'kubectl -n shop create configmap settings --from-literal=currency=EUR --from-literal=vat=21 --dry-run=client -o yaml | kubectl apply -f -'
runsh 'kubectl -n shop create secret generic payment --from-literal=api-key=sk-demo-4242 --dry-run=client -o yaml | kubectl apply -f -'
pvc="$DR_LAB_DIR/nodes/server-1/var/lib/rancher/k3s/storage/pvc-5e2f3a10-0c1d-4b2a-9f00-0de000000001_shop_data-0"
plain="$DR_LAB_DIR/nodes/server-2/var/lib/rancher/k3s/storage/uploads"
mkdir -p "$pvc" "$plain"
for i in 1 2 3; do echo "order $i: 2 x coffee" >"$pvc/order-$i.txt"; echo "invoice $i" >"$plain/invoice-$i.pdf"; done
note "volumes: $pvc (a local-path PVC on server-1) and $plain (server-2)"
run ls "$pvc" "$plain"
run pgbench -i -s 1 -q
run psql -qc "DROP TABLE IF EXISTS orders; CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric); INSERT INTO orders SELECT i, 'customer-' || i, i * 1.5 FROM generate_series(1, 1000) i"
run psql -c "SELECT count(*) AS orders, sum(amount) AS total FROM orders"

step "back up under load: pgbench writes while the base backup and the backup set run"
note "\$ pgbench -T 120 -c 2 -R 100 -n &   # 100 transactions a second, stopped once the backups are done"
pgbench -T 120 -c 2 -R 100 -n >"$DR_LAB_DIR/logs/demo-pgbench.log" 2>&1 &
load=$!
run kubectl dr wal status
run kubectl dr pg basebackup pg-main
set_name="demo-$(date -u +%H%M%S)"
run kubectl dr backup create "$set_name"
kill "$load"; wait "$load" 2>/dev/null || true; load=""
run kubectl dr backup ls
run kubectl dr status
run psql -c "SELECT count(*) AS pgbench_history_rows FROM pgbench_history"

# ---------------------------------------------------------------- 2. break it
step "the moment before the damage (T, PostgreSQL's clock), and what the database holds then"
at=$(psql -Atc "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
note "T=$at"
run psql -c "SELECT count(*) AS orders, sum(amount) AS total FROM orders"

step "disaster: the namespace is deleted, orders deleted and overwritten, a file edited, two deleted"
run kubectl delete namespace shop
run psql -c "DELETE FROM orders WHERE id > 600" -c "UPDATE orders SET amount = 0, customer = 'oops'"
echo "tampered" >"$pvc/order-1.txt"
run rm "$pvc/order-2.txt" "$plain/invoice-3.pdf"
run psql -c "SELECT count(*) AS orders, sum(amount) AS total FROM orders"
run kubectl get namespace shop || true
run cat "$pvc/order-1.txt"

step "the WAL past T is in the store (a segment switch, then kubectl dr wal status until it is shipped)"
seg=$(psql -Atc "SELECT pg_walfile_name(pg_switch_wal())")
note "waiting for segment $seg"
for _ in $(seq 120); do
  newest=$(kubectl dr wal status pg-main -o json | grep -o '"newest": *"[0-9A-F]*"' | grep -o '[0-9A-F]\{24\}' || true)
  [[ -n "$newest" && ! "$newest" < "$seg" ]] && break
  sleep 0.5
done
[[ -n "$newest" && ! "$newest" < "$seg" ]] || { echo "WAL segment $seg not shipped within 60s" >&2; exit 1; }
run kubectl dr wal status

# ---------------------------------------------------------------- 3. preview
step "preview: the etcd restore, what would disappear, reappear and change"
run kubectl dr etcd restore --latest --dry-run

step "preview: the file restore, each file and the digest the restore will hold to"
run kubectl dr restore "$set_name" --dry-run

step "preview: the database restore: the base backup, the WAL it replays and whether all of it is there"
target="$DR_LAB_DIR/nodes/server-2/var/lib/dr-demo/pg-restored"
run kubectl dr pg ls pg-main
run kubectl dr pg restore pg-main --to "$at" --dry-run

# ---------------------------------------------------------------- 4. restore
step "restore the cluster: every etcd member restored from the snapshot, the API server waited for"
t0=$(date +%s.%N)
run kubectl dr etcd restore --latest --yes
note "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "the command took %.1fs", b - a}')"
# The API server's caches relist after the revision jump: wait for the
# namespace's objects.
for _ in $(seq 90); do
  kubectl -n shop get configmap settings >/dev/null 2>&1 && break
  sleep 1
done

step "restore the files: the edited one moved aside first, never overwritten in place"
run kubectl dr restore "$set_name" --yes

step "restore the database to T, into a new directory on server-2, and verify it"
rm -rf "$target"
run kubectl dr pg restore pg-main --to "$at" --target-dir "$target" --node server-2 --verify

# ---------------------------------------------------------------- 5. all back
step "everything is back: the namespace and its objects"
run kubectl get namespace shop
run kubectl -n shop get configmaps,secrets
run kubectl -n shop get configmap settings -o jsonpath='{.data}{"\n"}'

step "the files"
run cat "$pvc/order-1.txt" "$pvc/order-2.txt" "$plain/invoice-3.pdf"

step "the rows: the restored copy started on a socket of its own"
sock="$DR_LAB_DIR/demo-pg-sock"
mkdir -p "$sock" && chown postgres "$sock"
port=$(hack/lab port)
run runuser -u postgres -- "$pgbin/pg_ctl" -D "$target" -w -l "$sock/postgres.log" -o "-p $port -k $sock -c listen_addresses=" start
restored_pg=$target
run psql -h "$sock" -p "$port" -c "SELECT count(*) AS orders, sum(amount) AS total, count(*) FILTER (WHERE customer = 'oops') AS damaged FROM orders"
run runuser -u postgres -- "$pgbin/pg_ctl" -D "$target" -m fast stop
restored_pg=""

cat <<MSG

Demo done in $(($(date +%s) - began))s. The lab stays up. Use it from your shell:
  eval "\$(hack/lab env)"; kubectl dr status; kubectl dr etcd snapshot ls; kubectl dr backup ls; kubectl dr pg ls
Stop it with: make lab-down
MSG
