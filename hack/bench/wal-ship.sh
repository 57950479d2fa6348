#!/usr/bin/env bash
# WAL shipping latency, side by side in one run on a lab of its own: real
# WAL segments of a PostgreSQL 15 under pgbench, landed one at a time,
#   A  the agent's shipper (inotify, zstd, age encryption to the lab's
#      snapshot recipient, upload, verify) to MinIO
#   B  pgbackrest archive-push (Debian's pgBackRest) to the same MinIO
# segment by segment in turn, from the segment landing to durable in the
# store, p50/p99; then the end-to-end RPO of the lab's database under
# pgbench with archive_timeout=10s.
# Usage: hack/bench/wal-ship.sh [segments]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
n=${1:-500}
dir="$root/_output/bench-lab"

command -v pgbackrest >/dev/null || { echo "installing pgbackrest"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >/dev/null; }
hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node "" >/dev/null 2>&1 || hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node ""
eval "$(hack/lab env --direct --dir "$dir")"
go build -o "$dir/bin/benchtool" ./agent/internal/benchtool
pgbin=/usr/lib/postgresql/15/bin
asdb() { runuser -u postgres -- "$@"; }

# A corpus of real segments from a database of its own.
work="$dir/walbench"
pg="$work/pg" corpus="$work/corpus"
port=$(hack/lab port --dir "$dir")
mkdir -p "$work" "$corpus" && chown postgres "$work" "$corpus" && chmod 755 "$work"
if [ ! -f "$pg/PG_VERSION" ]; then asdb "$pgbin/initdb" -D "$pg" -U postgres --auth=trust >/dev/null; fi
asdb "$pgbin/pg_ctl" -D "$pg" -l "$work/pg.log" -w start -o "-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work -c archive_mode=on -c archive_command='cp %p $corpus/%f'" >/dev/null
trap 'asdb "$pgbin/pg_ctl" -D "$pg" -m fast -w stop >/dev/null 2>&1 || true; kill $proxy 2>/dev/null || true' EXIT
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
have() { find "$corpus" -name '[0-9A-F]*' | grep -c -v '\.' || true; }
if [ "$(have)" -lt "$n" ]; then
  echo "writing a corpus of $n WAL segments (pgbench, pg_switch_wal)"
  "$pgbin/pgbench" -i -s 10 -q >/dev/null 2>&1
  while [ "$(have)" -lt "$n" ]; do
    "$pgbin/pgbench" -t 150 -c 2 -n >/dev/null 2>&1
    psql -X -q -c 'SELECT pg_switch_wal()' >/dev/null
  done
fi

# Both go through one HTTPS proxy in front of MinIO: pgBackRest's S3
# client speaks nothing else, and the shipper takes the same road.
proxy_port=$(hack/lab port --dir "$dir")
"$dir/bin/benchtool" tlsproxy "127.0.0.1:$proxy_port" "$DR_S3_ENDPOINT" "$work/proxy-ca.pem" & proxy=$!
sleep 0.5
mkdir -p "$work/pgbackrest" && chown postgres "$work/pgbackrest"
cat >"$work/pgbackrest.conf" <<CONF
[global]
repo1-type=s3
repo1-path=/lab/bench-pgbackrest
repo1-s3-bucket=dr-lab
repo1-s3-endpoint=127.0.0.1
repo1-storage-port=$proxy_port
repo1-s3-uri-style=path
repo1-s3-region=us-east-1
repo1-s3-key=$AWS_ACCESS_KEY_ID
repo1-s3-key-secret=$AWS_SECRET_ACCESS_KEY
repo1-storage-verify-tls=n
compress-type=zst
log-path=$work/pgbackrest
lock-path=$work/pgbackrest
log-level-console=warn

[bench]
pg1-path=$pg
pg1-port=$port
pg1-socket-path=$work
CONF
chown postgres "$work/pgbackrest.conf"
# Fresh stores each run: pgBackRest skips segments it already holds.
rm -rf "$work/spool"
"$dir/bin/benchtool" rmprefix "bench/wal/"
"$dir/bin/benchtool" rmprefix "bench-pgbackrest/"
asdb pgbackrest --config="$work/pgbackrest.conf" --stanza=bench stanza-create >/dev/null

# A (the agent's shipper) and B (pgbackrest archive-push, run as postgres
# as archive_command is) take each segment in turn, alternating which goes
# first.
DR_S3_ENDPOINT="https://127.0.0.1:$proxy_port" DR_S3_CA="$work/proxy-ca.pem" \
  "$dir/bin/benchtool" walbench -corpus "$corpus" -spool "$work/spool" -n "$n" -key "$dir/pki/snapshot.key" \
  -as postgres pgbackrest --config="$work/pgbackrest.conf" --stanza=bench archive-push | tee "$work/walbench.txt"

p() { grep "$2" "$work/walbench.txt" | sed -n "s/.*$1=\([0-9.]*\)ms.*/\1/p"; }
awk -v a50="$(p p50 '^dr-agent')" -v a99="$(p p99 '^dr-agent')" -v b50="$(p p50 '^pgbackrest')" -v b99="$(p p99 '^pgbackrest')" 'BEGIN {
  printf "WAL segment, landing to durable in MinIO: A/B p50 %.2fx  p99 %.2fx  (goal: A p99 < 1000 ms and <= 0.5x pgBackRest)\n", a50 / b50, a99 / b99 }'

# End-to-end RPO of the lab's own database (WAL source pg-main, shipped by
# the lab's agent) with archive_timeout=10s under pgbench.
unset PGHOST PGPORT; eval "$(hack/lab env --direct --dir "$dir")"
psql -X -q -c "ALTER SYSTEM SET archive_timeout = '10s'" -c 'SELECT pg_reload_conf()' >/dev/null
"$pgbin/pgbench" -i -s 1 -q >/dev/null 2>&1
"$pgbin/pgbench" -T 75 -c 1 -R 20 -n >/dev/null 2>&1 & bench=$!
# The RPO is the age of the newest shipped segment: while the database
# was idle (before pgbench) it only says nothing was written. Sampling
# starts once archive_timeout has switched a segment under the load.
sleep 15
worst=0
for _ in $(seq 60); do
  sleep 1
  rpo=$(kubectl-dr wal status pg-main -o json 2>/dev/null | sed -n 's/.*"rpoSeconds": \([0-9.]*\).*/\1/p')
  worst=$(awk -v a="$worst" -v b="${rpo:-0}" 'BEGIN { print (b > a) ? b : a }')
done
wait $bench || true
psql -X -q -c "ALTER SYSTEM RESET archive_timeout" -c 'SELECT pg_reload_conf()' >/dev/null
printf 'end-to-end RPO under pgbench, archive_timeout=10s: worst %.1f s over 60 s (goal <= 15 s)\n' "$worst"
echo "the bench lab stays in $dir: hack/lab down --dir $dir"
