#!/usr/bin/env bash
# `make test`: start the real PostgreSQL and Kafka (reused when running), check the
# generated code and formatting, then run every test of every module with the servers'
# addresses set, so that no server-backed test skips.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)

eval "$(deploy/local/test-env.sh)"
export SIMPLECI_TEST_POSTGRES_URL SIMPLECI_TEST_KAFKA_BROKERS

deploy/local/proto.sh check
make --no-print-directory lint

pkgs=$(go list -m -f '{{.Path}}/...')
# -p 2: this is a 2-core machine; the end-to-end tests start several processes.
go test -count=1 -p 2 -timeout 20m $pkgs
# Fuzz targets run briefly on every test run; `make fuzz` runs them longer.
deploy/local/fuzz.sh 5s

echo "make test: passed in $(( $(date +%s) - start ))s" >&2
