#!/usr/bin/env bash
# Point-in-time replay of >= 1 GiB of WAL, side by side in one run on a lab
# of its own, both from the same base backup (pg_basebackup) into a scratch
# PostgreSQL 15, replayed to the archive's end, timed from the start to
# promotion:
#   A  ours: the WAL the agent's shipper stored (encrypted) in MinIO, staged
#      beside the data directory while PostgreSQL replays it from there
#      (what pg restore --verify and the drill do)
#   B  pgBackRest archive-get (archive-async, process-max 4) from its
#      repository in the same MinIO (a prefix of its own)
# Both reach MinIO through the same HTTPS proxy (pgBackRest speaks nothing
# else). Usage: hack/bench/pg-replay.sh [segments]   (default 72: 1.1 GiB)
# The database writing the WAL runs without fsync: only its WAL matters,
# and pgbench then writes it at the CPU's pace.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
n=${1:-72}
dir="$root/_output/bench-lab"

command -v pgbackrest >/dev/null || { echo "installing pgbackrest"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >/dev/null; }
hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node "" >/dev/null 2>&1 || hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node ""
eval "$(hack/lab env --direct --dir "$dir")"
go build -o "$dir/bin/benchtool" ./agent/internal/benchtool
pgbin=/usr/lib/postgresql/15/bin
asdb() { runuser -u postgres -- "$@"; }

work="$dir/pgreplay"
pg="$work/pg" corpus="$work/corpus" base="$work/base"
rm -rf "$work"
mkdir -p "$work" "$corpus" && chown postgres "$work" "$corpus" && chmod 755 "$work"
port=$(hack/lab port --dir "$dir")
asdb "$pgbin/initdb" -D "$pg" -U postgres --auth=trust >/dev/null
asdb "$pgbin/pg_ctl" -D "$pg" -l "$work/pg.log" -w start -o "-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work -c archive_mode=on -c archive_command='cp %p $corpus/%f' -c max_wal_size=4GB -c synchronous_commit=off -c fsync=off" >/dev/null
proxy=
trap 'asdb "$pgbin/pg_ctl" -D "$pg" -m fast -w stop >/dev/null 2>&1 || true; [ -z "$proxy" ] || kill $proxy 2>/dev/null || true' EXIT
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
segs() { find "$corpus" -name '[0-9A-F]*' | grep -c -v '\.' || true; }
"$pgbin/pgbench" -i -s 20 -q >/dev/null 2>&1
# The base backup takes no WAL of its own: replay gets all of it from the
# archive.
asdb "$pgbin/pg_basebackup" -h "$work" -p "$port" -D "$base" -X none -c fast 2>/dev/null
first=$(sed -n 's/^START WAL LOCATION: .* (file \([0-9A-F]*\))$/\1/p' "$base/backup_label")
want=$(( $(segs) + n ))
echo "writing $n segments of WAL with pgbench (-i -s 10, then -T 5 -c 4, in turn) after the base backup (from $first)"
# pgbench's initialisation (COPY, VACUUM, indexes) writes WAL far faster
# than its transactions on a busy machine; both are replayed.
while [ "$(segs)" -lt "$want" ]; do
  "$pgbin/pgbench" -i -s 10 -q >/dev/null 2>&1
  "$pgbin/pgbench" -T 5 -c 4 -j 2 -n >/dev/null 2>&1
done
last=$(psql -X -A -t -c 'SELECT pg_walfile_name(pg_switch_wal())')
until [ -f "$corpus/$last" ]; do sleep 0.2; done
rows=$(psql -X -A -t -c 'SELECT count(*) FROM pgbench_history')
bytes=$(find "$corpus" -name '[0-9A-F]*' ! -name '*.*' | awk -v f="$first" '{ n = split($0, p, "/"); if (p[n] >= f) c++ } END { print c * 16 }')
echo "archive: segments $first to $last, $bytes MiB of WAL to replay; pgbench_history has $rows rows"

proxy_port=$(hack/lab port --dir "$dir")
"$dir/bin/benchtool" tlsproxy "127.0.0.1:$proxy_port" "$DR_S3_ENDPOINT" "$work/proxy-ca.pem" & proxy=$!
sleep 0.5
mkdir -p "$work/pgbackrest" "$work/pgbackrest-spool" && chown postgres "$work/pgbackrest" "$work/pgbackrest-spool"
cat >"$work/pgbackrest.conf" <<CONF
[global]
repo1-type=s3
repo1-path=/lab/bench-pgreplay-pgbackrest
repo1-s3-bucket=dr-lab
repo1-s3-endpoint=127.0.0.1
repo1-storage-port=$proxy_port
repo1-s3-uri-style=path
repo1-s3-region=us-east-1
repo1-s3-key=$AWS_ACCESS_KEY_ID
repo1-s3-key-secret=$AWS_SECRET_ACCESS_KEY
repo1-storage-verify-tls=n
compress-type=zst
archive-async=y
process-max=4
spool-path=$work/pgbackrest-spool
log-path=$work/pgbackrest
lock-path=$work/pgbackrest
log-level-console=warn

[bench]
pg1-path=$pg
pg1-port=$port
pg1-socket-path=$work
CONF
chown postgres "$work/pgbackrest.conf"
"$dir/bin/benchtool" rmprefix "bench/wal/replay/"
"$dir/bin/benchtool" rmprefix "bench-pgreplay-pgbackrest/"
asdb pgbackrest --config="$work/pgbackrest.conf" --stanza=bench stanza-create >/dev/null
echo "archiving into both stores (not timed)"
for f in $(cd "$corpus" && ls | grep -v '\.' | sort); do
  asdb pgbackrest --config="$work/pgbackrest.conf" --stanza=bench --no-archive-async archive-push "$corpus/$f"
done
mkdir -p "$work/spool" && cp -l "$corpus"/[0-9A-F]* "$work/spool/"
DR_S3_ENDPOINT="https://127.0.0.1:$proxy_port" DR_S3_CA="$work/proxy-ca.pem" \
  "$dir/bin/benchtool" walship -spool "$work/spool" -source replay -key "$dir/pki/snapshot.key"
asdb "$pgbin/pg_ctl" -D "$pg" -m fast -w stop >/dev/null

# A and B in turn, three times each, each on a fresh copy of the base
# backup: the machine's load moves, and each side meets it alike.
rounds=${ROUNDS:-3}
: >"$work/a.txt"; : >"$work/b.txt"
for r in $(seq "$rounds"); do
  for side in a b; do
    rm -rf "$work/$side" "$work/.$side.wal-stage" "$work/pgbackrest-spool"/*
    mkdir -p "$work/$side" && chown postgres "$work/$side" && chmod 755 "$work/$side"
    cp -a "$base" "$work/$side/data"
    sync
    if [ $side = a ]; then
      echo "round $r A: ours (staged while PostgreSQL replays from the stage)"
      DR_S3_ENDPOINT="https://127.0.0.1:$proxy_port" DR_S3_CA="$work/proxy-ca.pem" \
        "$dir/bin/benchtool" pgreplay -source replay -key "$dir/pki/snapshot.key" "$work/a/data" | tee -a "$work/a.txt"
    else
      echo "round $r B: pgBackRest archive-get (async, process-max 4)"
      "$dir/bin/benchtool" pgreplay -restore-command "pgbackrest --config=$work/pgbackrest.conf --stanza=bench --pg1-path=$work/b/data archive-get %f \"%p\"" "$work/b/data" | tee -a "$work/b.txt"
    fi
  done
done

# What replay alone costs: the same, the stage complete before PostgreSQL
# starts (the time counts from its start).
rm -rf "$work/a" "$work/.a.wal-stage" && mkdir -p "$work/a" && chown postgres "$work/a" && chmod 755 "$work/a" && cp -a "$base" "$work/a/data" && sync
echo "A', staged before PostgreSQL starts (replay alone)"
DR_S3_ENDPOINT="https://127.0.0.1:$proxy_port" DR_S3_CA="$work/proxy-ca.pem" PRESTAGE=1 \
  "$dir/bin/benchtool" pgreplay -source replay -key "$dir/pki/snapshot.key" "$work/a/data"

med() { sed -n 's/.*promotion in \([0-9.]*\)s.*/\1/p' "$1" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
all() { sed -n 's/.*promotion in \([0-9.]*\)s.*/\1/p' "$1" | paste -sd ' '; }
echo "ours (s): $(all "$work/a.txt"); pgBackRest (s): $(all "$work/b.txt")"
awk -v a="$(med "$work/a.txt")" -v b="$(med "$work/b.txt")" -v mib="$bytes" 'BEGIN {
  printf "PITR replay of %d MiB of WAL, median of the rounds: ours %.1f s, pgBackRest %.1f s: %.2fx (goal <= 0.7x)\n", mib, a, b, a / b }'
echo "the bench lab stays in $dir: hack/lab down --dir $dir"
