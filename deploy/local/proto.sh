#!/usr/bin/env bash
# Generate the protobuf code with buf and the plugins pinned in tools/ (built with
# `go build`, no remote registry). `check` fails when the committed code is stale.
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOWORK=off
BUF=bin/buf
if [ ! -x "$BUF" ]; then
  echo "building buf (pinned in tools/buf/go.mod; a few minutes on a cold module cache)" >&2
  (cd tools/buf && go build -o ../../bin/buf github.com/bufbuild/buf/cmd/buf)
fi
case "${1:-generate}" in
  generate)
    "$BUF" lint
    "$BUF" generate
    ;;
  check)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    cp -r proto "$tmp/"
    "$BUF" lint
    "$BUF" generate
    if ! diff -r "$tmp/proto" proto >/dev/null; then
      echo "generated protobuf code is stale: run 'make proto' and commit the result" >&2
      diff -r "$tmp/proto" proto | head -20 >&2 || true
      exit 1
    fi
    echo "generated protobuf code is up to date" >&2
    ;;
  *) echo "usage: $0 generate|check" >&2; exit 2 ;;
esac
