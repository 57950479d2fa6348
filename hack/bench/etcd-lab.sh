# Sourced by the etcd benchmarks: brings up the bench lab (one etcd member,
# no kube node) in $dir, exports its environment, builds benchtool and fills
# etcd with $mib MiB once. Sets db (the database size in bytes) and tmp (a
# scratch dir removed on exit).
hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node "" >/dev/null 2>&1 || hack/lab up --dir "$dir" --etcd-members 1 --nodes 1 --kube-node ""
eval "$(hack/lab env --direct --dir "$dir")"
go build -o "$dir/bin/benchtool" ./agent/internal/benchtool

db=$(etcdctl endpoint status -w json | sed -n 's/.*"dbSize":\([0-9]*\).*/\1/p')
if [ "${db:-0}" -lt $(( mib * 1024 * 1024 * 9 / 10 )) ]; then
  echo "filling etcd with ${mib} MiB (once)"
  "$dir/bin/benchtool" fill -mib "$mib"
fi
db=$(etcdctl endpoint status -w json | sed -n 's/.*"dbSize":\([0-9]*\).*/\1/p')
tmp=$(mktemp -d "$dir/run.XXXX")
trap 'rm -rf "$tmp"' EXIT

# drop_caches empties the page cache; the runs compare nothing otherwise.
# As root it writes the knob itself (sudo may not be installed), else it
# asks sudo, and it says so when it cannot.
drop_caches() {
  if [ "$(id -u)" = 0 ]; then
    echo 3 > /proc/sys/vm/drop_caches
  elif ! echo 3 | sudo -n tee /proc/sys/vm/drop_caches >/dev/null 2>&1; then
    echo "warning: cannot drop the page cache (not root, no sudo): runs start from different caches" >&2
  fi
}
