#!/usr/bin/env bash
# Run every Fuzz* target of every module for DURATION each (default 5s).
set -euo pipefail
cd "$(dirname "$0")/../.."
dur="${1:-5s}"
for dir in $(go list -m -f '{{.Dir}}'); do
  (cd "$dir" && for pkg in $(go list ./...); do
    for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
      echo "fuzz $pkg $f ($dur)" >&2
      go test -run '^$' -fuzz "^$f\$" -fuzztime "$dur" "$pkg" >/dev/null
    done
  done)
done
