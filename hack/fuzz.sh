#!/usr/bin/env bash
# Fuzzes every Go fuzz target in the module for FUZZTIME each (go test runs
# one -fuzz target at a time): hack/fuzz.sh [FUZZTIME]. A crash fails it (go
# test writes the input to the package's testdata/fuzz/<target>/). Go 1.26's
# coordinator can also fail a clean run with a bare "context deadline
# exceeded" as -fuzztime runs out (go.dev/issue/75804): that is said, not
# counted.
set -euo pipefail
fuzztime=${1:-30s}
cd "$(dirname "$0")/.."

n=0
for pkg in $(grep -rl --include='*_test.go' --exclude-dir=.git --exclude-dir=_output '^func Fuzz' . | xargs -n1 dirname | sort -u); do
  for t in $(grep -h '^func Fuzz' "$pkg"/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
    n=$((n + 1))
    echo "fuzz $pkg $t"
    if out=$(go test -run '^$' -fuzz "^$t\$" -fuzztime "$fuzztime" "$pkg" 2>&1); then
      continue
    fi
    if ! grep -q 'Failing input written' <<<"$out" && grep -q '^    context deadline exceeded$' <<<"$out"; then
      echo "  $t: go's fuzz coordinator missed its own deadline (go.dev/issue/75804), no failing input: not counted" >&2
      continue
    fi
    echo "$out" >&2
    exit 1
  done
done
echo "fuzzed $n targets for $fuzztime each"
