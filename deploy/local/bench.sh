#!/usr/bin/env bash
# `make bench`: starts `simpleci dev` and the split deployment (real PostgreSQL and Kafka
# from deploy/local, every service its own process), drives them from outside with signed
# webhooks (services/simpleci/e2e/bench_test.go, TestBench), and writes the table of what
# it measured into docs/benchmarks.md between the "make bench" markers, with the machine,
# the commit and the command. Takes about 10 minutes; run it on an otherwise idle machine.
#
# SIMPLECI_BENCH_MODES (dev,split), SIMPLECI_BENCH_RATE_SECONDS (10),
# SIMPLECI_BENCH_SUSTAIN_SECONDS (60), SIMPLECI_BENCH_LOG_MB (200) and
# SIMPLECI_BENCH_WORKERS (8) change what runs; SIMPLECI_BENCH_DOC=- prints the section
# instead of writing it into the document.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=common.sh
source deploy/local/common.sh

deploy/local/sandbox-tools.sh
eval "$(deploy/local/test-env.sh)"
export SIMPLECI_TEST_POSTGRES_URL SIMPLECI_TEST_KAFKA_BROKERS

load=$(cut -d' ' -f1-3 /proc/loadavg)
table=$(mktemp)
trap 'rm -f "$table"' EXIT
SIMPLECI_BENCH_OUT="$table" go test -count=1 -timeout 60m -run '^TestBench$' -v ./services/simpleci/e2e/ |
	grep -E 'bench_test.go|^(--- |ok|FAIL|PASS)' >&2

commit=$(git rev-parse --short HEAD)
dirty=$(git status --porcelain --untracked-files=no | grep -q . && echo " (with uncommitted changes)" || true)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
section=$(
	echo "Measured $(date -u +%Y-%m-%d) at commit $commit$dirty on $(nproc) × $cpu, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3), load average before the run: $load. Command: \`make bench\` ($(env | grep -E '^SIMPLECI_BENCH_(MODES|RATE_SECONDS|SUSTAIN_SECONDS|LOG_MB|WORKERS)=' | tr '\n' ' ' | sed 's/ $//'))."
	echo
	cat "$table"
)
doc=${SIMPLECI_BENCH_DOC:-docs/benchmarks.md}
if [[ $doc == - ]]; then
	echo "$section"
	exit 0
fi
start='<!-- make bench: start -->'
end='<!-- make bench: end -->'
grep -qF "$start" "$doc" || die "$doc has no '$start' marker"
python3 - "$doc" "$start" "$end" "$section" <<'PY'
import sys
path, start, end, section = sys.argv[1:]
text = open(path).read()
head, rest = text.split(start, 1)
_, tail = rest.split(end, 1)
open(path, "w").write(head + start + "\n" + section + "\n" + end + tail)
PY
log "wrote the results into $doc"
