package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchLogSize is the log TestBenchLogRead reads back: 100 MiB of 64-byte lines, or
// SIMPLECI_BENCH_LOG_MIB.
var benchLogSize = 100 << 20

// TestBenchLogRead is a benchmark, not a test (docs/benchmarks.md): with
// SIMPLECI_BENCH_LOGS=1 it runs a step that prints 100 MiB (SIMPLECI_BENCH_LOG_MIB), then reads the log back
// through the REST pages and through `simpleci runs logs`, and logs the time of each and
// the peak RSS of the process serving them during the reads: `simpleci dev`, and the
// gateway and log service of the split deployment (with Kafka and PostgreSQL). It
// asserts only that every byte came back.
func TestBenchLogRead(t *testing.T) {
	if os.Getenv("SIMPLECI_BENCH_LOGS") == "" {
		t.Skip("a benchmark: set SIMPLECI_BENCH_LOGS=1 (docs/benchmarks.md)")
	}
	if v := os.Getenv("SIMPLECI_BENCH_LOG_MIB"); v != "" {
		mib, err := strconv.Atoi(v)
		if err != nil || mib <= 0 {
			t.Fatalf("SIMPLECI_BENCH_LOG_MIB=%q: want a positive number of MiB", v)
		}
		benchLogSize = mib << 20
	}
	cap := fmt.Sprintf("%dMiB", benchLogSize>>20+16)
	tier := "standard:timeout=600s,log-step=" + cap + ",log-run=" + cap
	t.Run("dev", func(t *testing.T) {
		a, p := startDevWith(t, nil, t.TempDir(), nil, "--tier", tier)
		benchLogRead(t, a, map[string]*proc{"dev": p})
	})
	t.Run("split", func(t *testing.T) {
		c := startClusterWith(t, 1, "--tier", tier)
		benchLogRead(t, c.api, map[string]*proc{"gateway": c.procs["gateway"], "log": c.procs["log"]})
	})
}

func benchLogRead(t *testing.T, a *api, watch map[string]*proc) {
	a = &api{t: t, base: a.base, token: a.token}
	line := "benchmark output line: 0123456789abcdefghijklmnopqrstuvwxyzABCDE\n" // 64 bytes
	repo, shas := gitRepo(t, map[string]string{"bench": fmt.Sprintf(`{"steps": [{"name": "print", "run": "yes '%s' | head -c %d"}]}`,
		strings.TrimSuffix(line, "\n"), benchLogSize)})
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "bench", "provider": "local", "repository": repo, "events": []string{"push"}}, http.StatusOK, &p)
	start := time.Now()
	r := a.waitRun(a.push(p, "bench", shas["bench"]), 10*time.Minute)
	if r.Status != "succeeded" {
		t.Fatalf("run %s (%s)", r.Status, r.Reason)
	}
	eventually(t, 10*time.Minute, "the whole log to be stored", func() bool {
		var out struct {
			Complete bool `json:"complete"`
		}
		a.json("GET", "/api/v1/runs/"+r.ID+"/logs?after="+strconv.Itoa(benchLogSize), nil, http.StatusOK, &out)
		return out.Complete
	})
	t.Logf("run and store %d MiB of output: %s", benchLogSize>>20, time.Since(start).Round(time.Millisecond))

	resetPeaks(t, watch)
	start = time.Now()
	chunks, complete := a.logPages(r.ID)
	rest := time.Since(start)
	n := 0
	for _, c := range chunks {
		if c.Stream == "stdout" {
			n += len(c.Text)
		}
	}
	if !complete || n != benchLogSize {
		t.Fatalf("REST pages: %d bytes of stdout (complete %v), want %d", n, complete, benchLogSize)
	}
	t.Logf("REST pages: %d chunks, %d MiB in %s (%.0f MiB/s); peak RSS during the read: %s",
		len(chunks), n>>20, rest.Round(time.Millisecond), float64(n)/(1<<20)/rest.Seconds(), peaks(t, watch))

	resetPeaks(t, watch)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "runs", "logs", r.ID)
	cmd.Env = append(os.Environ(), "SIMPLECI_SERVER="+a.base, "SIMPLECI_TOKEN="+a.token)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	got, _ := io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil || got < int64(benchLogSize) {
		t.Fatalf("simpleci runs logs: %v, %d bytes", err, got)
	}
	cli := time.Since(start)
	t.Logf("simpleci runs logs: %d MiB in %s (%.0f MiB/s); peak RSS during the read: %s",
		got>>20, cli.Round(time.Millisecond), float64(got)/(1<<20)/cli.Seconds(), peaks(t, watch))
}

// resetPeaks resets the peak RSS (VmHWM) of the processes to their RSS (Linux:
// clear_refs 5), and logs that RSS: what the processes held before the read.
func resetPeaks(t *testing.T, watch map[string]*proc) {
	t.Logf("RSS before the read: %s", procStatus(t, watch, "VmRSS:"))
	for name, p := range watch {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0); err != nil {
			t.Logf("reset the peak RSS of %s: %v (the figure is then the peak since it started)", name, err)
		}
	}
}

// peaks describes the peak RSS of the processes since resetPeaks.
func peaks(t *testing.T, watch map[string]*proc) string { return procStatus(t, watch, "VmHWM:") }

// procStatus lists a field of /proc/PID/status of each process.
func procStatus(t *testing.T, watch map[string]*proc, field string) string {
	var parts []string
	for name, p := range watch {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), field); ok {
				parts = append(parts, name+" "+strings.Join(strings.Fields(v), " "))
			}
		}
		f.Close()
	}
	return strings.Join(parts, ", ")
}
