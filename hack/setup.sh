#!/usr/bin/env bash
# hack/setup.sh: what the lab, `make demo` and `make test` need from the
# machine besides Go, checked in a second before anything is built.
#   hack/setup.sh          install what is missing when root (apt-get), or
#                          print the one command that would, and fail
#   hack/setup.sh --check  only check; exit 1 naming what is missing
#   hack/setup.sh --with-browser  also headless Chromium, which the drill's
#                          end-to-end test renders its report with (make test)
# `make demo`, `make test` and .ci/run call it first.
set -euo pipefail

check_only=false
browser=false
for arg in "$@"; do
  case "$arg" in
    --check) check_only=true ;;
    --with-browser) browser=true ;;
    *) echo "usage: hack/setup.sh [--check] [--with-browser]" >&2; exit 2 ;;
  esac
done

# Each line: the Debian package, then what proves it is installed.
need=()
want() { # package test...
  local pkg=$1; shift
  "$@" >/dev/null 2>&1 || need+=("$pkg")
}
have() { command -v "$1"; }
want git have git
# The generated-code check (make verify): protoc and the well-known types.
want protobuf-compiler have protoc
want libprotobuf-dev test -f /usr/include/google/protobuf/timestamp.proto
# PostgreSQL 15 for the WAL and base backup tests and the demo's database.
want postgresql-15 test -x /usr/lib/postgresql/15/bin/postgres
# The lab's Kubernetes node: kubelet runs pods through containerd and runc,
# on a CNI bridge; busybox is the pods' userland.
want containerd have containerd
want containerd have containerd-shim-runc-v2
want containerd have ctr
want runc have runc
want containernetworking-plugins test -x /usr/lib/cni/bridge
want iptables have iptables
want iproute2 have ip
want busybox-static test -x /bin/busybox
# The drill's report is opened in headless Chromium (test/e2e/drill_test.go);
# only make test asks for it (~80 MB download, 12 s to install measured).
if $browser; then
  want chromium have chromium
fi

# One package may prove several commands.
mapfile -t need < <(printf '%s\n' "${need[@]}" | awk 'NF && !seen[$0]++')

root=$(cd "$(dirname "$0")/.." && pwd)
gover=$(awk '/^go / {print $2}' "$root/go.mod")
if ! command -v go >/dev/null 2>&1; then
  echo "setup: no go on PATH: install Go $gover or newer (https://go.dev/dl) and run this again" >&2
  exit 1
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
cmd="apt-get install -y --no-install-recommends ${need[*]}"
if $check_only; then
  echo "setup: missing Debian packages: ${need[*]}" >&2
  echo "setup: install them with: sudo $cmd" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ] && ! sudo -n true 2>/dev/null; then
  echo "setup: the lab needs Debian packages that are not installed: ${need[*]}" >&2
  echo "setup: run as root (or with sudo): $cmd" >&2
  exit 1
fi
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo -n"
echo "setup: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -qq
$sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}"
