#!/usr/bin/env bash
# stop-all.sh: stop the test Kafka broker and PostgreSQL server started by test-env.sh.
# Their data stays; `kafka.sh reset` / `postgres.sh reset` delete it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

status=0
"$here/kafka.sh" stop || status=1
"$here/postgres.sh" stop || status=1
"$here/s3.sh" stop || status=1
exit "$status"
