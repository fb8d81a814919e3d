#!/usr/bin/env bash
# Runs every Go fuzz target for a while and copies the corpus it grew into
# the package's testdata/fuzz/, so that `go test` replays it from then on.
set -euo pipefail
fuzztime=${1:-30s}
cache=$(go env GOCACHE)/fuzz
module=$(go list -m)
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "== $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
    if [ -d "$cache/$pkg/$target" ]; then
      mkdir -p "$dir/testdata/fuzz/$target"
      cp -n "$cache/$pkg/$target"/* "$dir/testdata/fuzz/$target/" 2>/dev/null || true
    fi
  done
done
echo "corpus kept under testdata/fuzz/ of each package ($module)"
