#!/usr/bin/env bash
# test-env.sh: start the test PostgreSQL, Kafka and S3-compatible server (idempotently: running ones are reused) and
# print the environment the tests read, for example in a Makefile or CI script:
#
#   eval "$(deploy/local/test-env.sh)"
#   go test ./...
#
# stdout carries only the export lines; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

"$here/postgres.sh" start >&2
"$here/kafka.sh" start >&2
"$here/s3.sh" start >&2

# Single-quoted: the values hold no quote, and `eval $(...)` works unquoted too.
printf "export SIMPLECI_TEST_POSTGRES_URL='%s'\n" "$("$here/postgres.sh" url)"
printf "export SIMPLECI_TEST_KAFKA_BROKERS='%s'\n" "$("$here/kafka.sh" brokers)"
printf "export SIMPLECI_TEST_S3_URL='%s'\n" "$("$here/s3.sh" url)"
