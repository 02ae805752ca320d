#!/usr/bin/env bash
# `make test`: start the real PostgreSQL and Kafka (reused when running), check the
# generated code and formatting, then run every test of every module with the servers'
# addresses set, so that no server-backed test skips.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)

# The runner's sandbox uses bubblewrap and, for jobs with the network on, slirp4netns
# when present; the tests of its layers need them.
deploy/local/sandbox-tools.sh
eval "$(deploy/local/test-env.sh)"
export SIMPLECI_TEST_POSTGRES_URL SIMPLECI_TEST_KAFKA_BROKERS SIMPLECI_TEST_S3_URL

# The web UI's browser tests drive Debian's Chromium with playwright-core (npm, pinned).
deploy/local/browser.sh >/dev/null

deploy/local/proto.sh check
make --no-print-directory lint

pkgs=$(go list -m -f '{{.Path}}/...')
# -p 2: this is a 2-core machine; the end-to-end tests start several processes.
go test -count=1 -p 2 -timeout 20m $pkgs
# Second phase, alone: the fault tests stop and restart the shared PostgreSQL and Kafka and
# SIGKILL services mid-run (services/simpleci/e2e/faults_test.go), so nothing else may use
# the servers meanwhile. Whatever their outcome, the servers are left running.
fault_start=$(date +%s)
fault_rc=0
SIMPLECI_TEST_FAULTS=1 go test -count=1 -timeout 15m -run 'Fault' github.com/simpleci/simpleci/services/simpleci/e2e || fault_rc=$?
deploy/local/test-env.sh >/dev/null
if [ "$fault_rc" -ne 0 ]; then
  exit "$fault_rc"
fi
echo "make test: fault tests passed in $(( $(date +%s) - fault_start ))s" >&2
# Fuzz targets run briefly on every test run; `make fuzz` runs them longer.
deploy/local/fuzz.sh 5s

echo "make test: passed in $(( $(date +%s) - start ))s" >&2
