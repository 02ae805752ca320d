package e2e_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchJobs is a benchmark, not a test (docs/benchmarks.md): with
// SIMPLECI_BENCH_JOBS=1,2,4 it starts `simpleci dev` with each --jobs in turn, sends a
// burst of SIMPLECI_BENCH_RUNS (default 50) signed push webhooks for a pipeline of three
// `true` steps, and logs the runs per second from the first webhook sent to the last
// run's finishedAt. It asserts only that every run succeeded.
func TestBenchJobs(t *testing.T) {
	list := os.Getenv("SIMPLECI_BENCH_JOBS")
	if list == "" {
		t.Skip("a benchmark: set SIMPLECI_BENCH_JOBS=1,2,4 (docs/benchmarks.md)")
	}
	runs := 50
	if v := os.Getenv("SIMPLECI_BENCH_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("SIMPLECI_BENCH_RUNS=%q: want a positive number", v)
		}
		runs = n
	}
	for i, v := range strings.Split(list, ",") {
		jobs := strings.TrimSpace(v)
		// Named apart, as a repeated name would put a '#' into the data directory's path.
		t.Run(fmt.Sprintf("%d-jobs=%s", i+1, jobs), func(t *testing.T) {
			a, dev := startDevWith(t, nil, t.TempDir(), nil, "--tier", "standard:timeout=120s", "--webhook-rate", "off", "--jobs", jobs)
			repo, shas := gitRepo(t, map[string]string{"main2": `{"steps": [
				{"name": "a", "run": "true"}, {"name": "b", "run": "true"}, {"name": "c", "run": "true"}]}`})
			var p project
			a.json("POST", "/api/v1/projects", map[string]any{"name": "bench", "provider": "local", "repository": repo,
				"events": []string{"push"}}, http.StatusOK, &p)
			own0, kids0 := cpuTime(t, dev.cmd.Process.Pid)
			start := time.Now()
			ids := make([]string, 0, runs)
			for range runs {
				ids = append(ids, a.push(p, "main2", shas["main2"]))
			}
			sent := time.Since(start)
			var last time.Time
			// edges are the runs' starts (+1) and ends (-1), for how many ran at once.
			type edge struct {
				at time.Time
				d  int
			}
			var edges []edge
			for _, id := range ids {
				if r := a.waitRun(id, 5*time.Minute); r.Status != "succeeded" {
					t.Fatalf("run %s: %s (%s)", id, r.Status, r.Reason)
				}
				var r faultRun
				a.json("GET", "/api/v1/runs/"+id, nil, http.StatusOK, &r)
				begin, err1 := time.Parse(time.RFC3339Nano, r.Started)
				end, err2 := time.Parse(time.RFC3339Nano, r.Finished)
				if err1 != nil || err2 != nil {
					t.Fatalf("run %s: from %q to %q", id, r.Started, r.Finished)
				}
				last = later(last, end)
				edges = append(edges, edge{begin, 1}, edge{end, -1})
			}
			slices.SortFunc(edges, func(x, y edge) int {
				if c := x.at.Compare(y.at); c != 0 {
					return c
				}
				return x.d - y.d // an end before a start at the same instant
			})
			most, now := 0, 0
			for _, e := range edges {
				now += e.d
				most = max(most, now)
			}
			took := last.Sub(start)
			own, kids := cpuTime(t, dev.cmd.Process.Pid)
			own, kids = own-own0, kids-kids0
			perRun := func(d time.Duration) time.Duration { return (d / time.Duration(runs)).Round(time.Millisecond) }
			t.Logf("--jobs %s: %d runs of three `true` steps in %v (webhooks sent in %v): %.1f runs/s, at most %d running at once, all succeeded; "+
				"CPU per run: %v (simpleci dev %v, its children: git, bwrap, nsenter, the steps %v)",
				jobs, runs, took.Round(time.Millisecond), sent.Round(time.Millisecond), float64(runs)/took.Seconds(), most,
				perRun(own+kids), perRun(own), perRun(kids))
		})
	}
}

// cpuTime is the CPU time process pid used so far (user and system) and that of its
// waited-for children (/proc/PID/stat), in clock ticks of 10 ms.
func cpuTime(t *testing.T, pid int) (own, children time.Duration) {
	t.Helper()
	own, children, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	return own, children
}

// procCPU is cpuTime without a test: an error when pid is gone or its stat unreadable.
func procCPU(pid int) (own, children time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The fields after the command's name (which may hold spaces) in parentheses; utime,
	// stime, cutime and cstime are fields 14 to 17 of the line.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	var ticks [4]int64
	for i, v := range f[11:15] {
		if ticks[i], err = strconv.ParseInt(v, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
		}
	}
	tick := 10 * time.Millisecond
	return time.Duration(ticks[0]+ticks[1]) * tick, time.Duration(ticks[2]+ticks[3]) * tick, nil
}
