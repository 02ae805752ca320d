#!/usr/bin/env bash
# Benchmarks of `simpleci exec` as a user runs it: the real binary against
# plain shell baselines (docs/benchmarks.md, "Pipeline engine and simpleci
# exec"). Each pair is measured interleaved (baseline, exec, baseline,
# exec, ...) so that both see the same machine load; the figures are
# medians of wall time and of CPU time (user + system of the command and
# every process it waited for: less sensitive to other load on the
# machine than wall time). Peak RSS is GNU time's "Maximum resident set
# size" (%M), the largest of 5 runs.
#
#   services/simpleci/local/bench.sh [RUNS]      (default 30)
set -euo pipefail
cd "$(dirname "$0")/../../.."
runs="${1:-30}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin="$work/simpleci"
go build -o "$bin" ./services/simpleci/cmd/simpleci

lorem() { echo "seq 1 $1 | sed 's/\$/ lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore/'"; }

mkdir -p "$work/steps1/.simpleci" "$work/steps50/.simpleci" "$work/lorem200k/.simpleci" "$work/lorem800k/.simpleci" "$work/lorem3200k/.simpleci"
for n in 1 50; do
  python3 -c 'import json,sys; print(json.dumps({"steps": [{"name": "step %d" % i, "run": "true"} for i in range(1, int(sys.argv[1]) + 1)]}))' "$n" \
    >"$work/steps$n/.simpleci/pipeline.json"
done
for n in 200000 800000 3200000; do
  python3 -c 'import json,sys; print(json.dumps({"steps": [{"name": "Lorem", "run": sys.argv[1]}]}))' "$(lorem "$n")" \
    >"$work/lorem$((n / 1000))k/.simpleci/pipeline.json"
done

python3 - "$runs" "$work" "$bin" "$(lorem 200000)" "$(lorem 800000)" <<'EOF'
import os, statistics, sys, time

runs, work, binary, lorem200k, lorem800k = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
devnull = os.open(os.devnull, os.O_RDWR)

def once(argv, cwd):
    """Runs argv with stdout and stderr on /dev/null: (wall ms, CPU ms)."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        os.dup2(devnull, 0); os.dup2(devnull, 1); os.dup2(devnull, 2)
        os.execvp(argv[0], argv)
    _, status, ru = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv} failed: {status}")
    return elapsed * 1e3, (ru.ru_utime + ru.ru_stime) * 1e3

def pair(name, a, b, cwd, warmup=3):
    """Runs a and b alternately; returns their median wall and CPU times in ms."""
    for _ in range(warmup):
        once(a, cwd); once(b, cwd)
    ra, rb = [], []
    for _ in range(runs):
        ra.append(once(a, cwd))
        rb.append(once(b, cwd))
    med = lambda rs, i: statistics.median(r[i] for r in rs)
    wa, wb, ca, cb = med(ra, 0), med(rb, 0), med(ra, 1), med(rb, 1)
    print(f"{name}: wall median baseline {wa:.1f} ms (min {min(r[0] for r in ra):.1f}), "
          f"simpleci exec {wb:.1f} ms (min {min(r[0] for r in rb):.1f}); "
          f"CPU median baseline {ca:.1f} ms, simpleci exec {cb:.1f} ms")
    return wa, wb, ca, cb

secret = ["--secret", "TOKEN=s3cr3t-value"]
print(f"{runs} interleaved runs per pair")
wl, we, cl, ce = pair("50 steps of true", ["sh", "-c", "for i in $(seq 50); do sh -c true; done"], [binary, "exec"], f"{work}/steps50")
print(f"  per step, wall: simpleci exec {we / 50:.2f} ms, shell loop {wl / 50:.2f} ms, overhead {(we - wl) / 50:.2f} ms")
print(f"  per step, CPU:  simpleci exec {ce / 50:.2f} ms, shell loop {cl / 50:.2f} ms, overhead {(ce - cl) / 50:.2f} ms")
wl1, we1, cl1, ce1 = pair("1 step of true", ["sh", "-c", "for i in $(seq 1); do sh -c true; done"], [binary, "exec"], f"{work}/steps1")
print(f"  fixed cost of simpleci exec (start, parse, git, summary) over the shell: wall {we1 - wl1:.1f} ms, CPU {ce1 - cl1:.1f} ms")
print(f"  marginal per step ((50 steps - 1 step) / 49), wall: simpleci exec {(we - we1) / 49:.2f} ms, shell loop {(wl - wl1) / 49:.2f} ms, "
      f"overhead {((we - we1) - (wl - wl1)) / 49:.2f} ms")
print(f"  marginal per step, CPU: simpleci exec {(ce - ce1) / 49:.2f} ms, shell loop {(cl - cl1) / 49:.2f} ms, "
      f"overhead {((ce - ce1) - (cl - cl1)) / 49:.2f} ms")
for label, cmd, d in (("200,000 lines", lorem200k, "lorem200k"), ("800,000 lines", lorem800k, "lorem800k")):
    ws, we, cs, ce = pair(label, ["sh", "-c", cmd + " >/dev/null"], [binary, "exec"] + secret, f"{work}/{d}")
    print(f"  simpleci exec / shell: wall {we / ws:.2f}x, CPU {ce / cs:.2f}x")
EOF

echo "peak RSS of simpleci exec (GNU time %M, KiB, the largest of 5 runs; output to /dev/null):"
for dir in steps1 steps50 lorem200k lorem800k lorem3200k; do
  peak=0
  for _ in 1 2 3 4 5; do
    kb=$(cd "$work/$dir" && /usr/bin/time -f %M "$bin" exec --secret TOKEN=s3cr3t-value 2>&1 >/dev/null | tail -1)
    peak=$((kb > peak ? kb : peak))
  done
  echo "  $dir: $peak"
done
