package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBench is `make bench` (deploy/local/bench.sh, docs/benchmarks.md), a benchmark,
// not a test: with SIMPLECI_BENCH_OUT=FILE it starts `simpleci dev` and then the split
// deployment (every service its own process, Kafka and PostgreSQL, two runners), drives
// each from outside with signed push webhooks (SIMPLECI_BENCH_MODES: dev, split, and split2
// with two gateways, schedulers and log services), and writes one Markdown table of what it
// measured into FILE:
//   - webhook sent → first step started (the step's startedAt), p50 and p99, with
//     webhooks sent at 1, 10 and 25 runs/s for SIMPLECI_BENCH_RATE_SECONDS (10) each;
//   - sustained throughput: workers that each send a push and wait for its run, for
//     SIMPLECI_BENCH_SUSTAIN_SECONDS (60), every run checked to succeed, with the CPU each
//     process took meanwhile (which resource saturates);
//   - a step printing 200 MB (SIMPLECI_BENCH_LOG_MB): webhook → the whole log readable
//     through the API, against the same command writing to /dev/null here;
//   - live-tail lag: a step printing its clock every 20 ms, read through the SSE stream;
//   - idle RSS of each process and the time from start to ready.
//
// Pipelines run three `true` steps. Runs go to 8 projects in turn, as a deployment's
// webhooks come from many repositories (each project's webhook rate limit stays the
// default). It fails only when a run does not succeed or a log comes back short.
func TestBench(t *testing.T) {
	out := os.Getenv("SIMPLECI_BENCH_OUT")
	if out == "" {
		t.Skip("a benchmark: make bench (SIMPLECI_BENCH_OUT=FILE, docs/benchmarks.md)")
	}
	cfg := benchConfig{
		rateFor:    envSeconds(t, "SIMPLECI_BENCH_RATE_SECONDS", 10),
		sustainFor: envSeconds(t, "SIMPLECI_BENCH_SUSTAIN_SECONDS", 60),
		logBytes:   envInt(t, "SIMPLECI_BENCH_LOG_MB", 200) * 1000 * 1000,
		workers:    envInt(t, "SIMPLECI_BENCH_WORKERS", 8),
	}
	modes := strings.Split(os.Getenv("SIMPLECI_BENCH_MODES"), ",")
	if modes[0] == "" {
		modes = []string{"dev", "split", "split2"}
	}
	logCap := fmt.Sprintf("%dMiB", cfg.logBytes>>20+16)
	tier := "standard:timeout=600s,log-step=" + logCap + ",log-run=" + logCap
	var results []benchResult
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			var tgt benchTarget
			switch mode {
			case "dev":
				begin := time.Now()
				a, p := startDevWith(t, nil, t.TempDir(), nil, "--tier", tier)
				tgt = benchTarget{name: "`simpleci dev`", apis: []*api{a}, procs: map[string]*proc{"simpleci dev": p}, ready: time.Since(begin)}
			case "split":
				begin := time.Now()
				c := startClusterWith(t, 2, "--tier", tier)
				waitReady(t, c)
				tgt = benchTarget{name: "split: 1 of each service, 2 runners", apis: []*api{c.api}, procs: c.procs, ready: time.Since(begin)}
			case "split2":
				// Two gateways (webhooks sent to each in turn), two schedulers, two log
				// services; each runner talks to its own scheduler and log service.
				begin := time.Now()
				c := startClusterWith(t, 0, "--tier", tier)
				_, gw2 := c.startReplica("gateway", "gateway-2")
				sched2, _ := c.startReplica("scheduler", "scheduler-2")
				log2, _ := c.startReplica("log", "log-2")
				c.startRunner("runner-1")
				c.startRunner("runner-2", "SIMPLECI_SCHEDULER_ADDR="+sched2, "SIMPLECI_LOG_ADDR="+log2)
				waitReady(t, c)
				tgt = benchTarget{name: "split: 2 gateways, 2 schedulers, 2 log services, 2 runners", apis: []*api{c.api, gw2}, procs: c.procs, ready: time.Since(begin)}
			default:
				t.Fatalf("SIMPLECI_BENCH_MODES: unknown mode %q (dev, split, split2)", mode)
			}
			for i, a := range tgt.apis {
				tgt.apis[i] = &api{t: t, base: a.base, token: a.token}
			}
			results = append(results, runBench(t, cfg, tgt))
		})
	}
	if t.Failed() {
		return
	}
	if err := os.WriteFile(out, []byte(benchTable(cfg, results)), 0o644); err != nil {
		t.Fatal(err)
	}
}

type benchConfig struct {
	rateFor, sustainFor time.Duration
	logBytes            int
	workers             int
}

type benchTarget struct {
	name  string
	apis  []*api // gateways: webhooks go to each in turn
	procs map[string]*proc
	ready time.Duration
}

// waitReady waits until every process of c answers /readyz.
func waitReady(t *testing.T, c *cluster) {
	for name, addr := range c.http {
		probe := &api{t: t, base: "http://" + addr}
		eventually(t, 60*time.Second, name+" ready", func() bool { return probe.up("/readyz") })
	}
}

// benchResult is one mode's figures, as table cells.
type benchResult struct {
	name                                    string
	latency                                 map[int]string // by runs/s
	throughput, saturation, logPath, logLag string
	idleRSS, ready                          string
}

var benchRates = []int{1, 10, 25}

func runBench(t *testing.T, cfg benchConfig, tgt benchTarget) benchResult {
	res := benchResult{name: tgt.name, latency: map[int]string{}, ready: tgt.ready.Round(10 * time.Millisecond).String()}
	time.Sleep(3 * time.Second) // settle, then measure the idle processes
	res.idleRSS = rssOf(t, tgt.procs)
	a := tgt.apis[0]
	gw := func(i int) *api { return tgt.apis[i%len(tgt.apis)] }
	pipeline := `{"steps": [{"name": "a", "run": "true"}, {"name": "b", "run": "true"}, {"name": "c", "run": "true"}]}`
	var projects []benchProject
	for i := range 8 {
		repo, shas := gitRepo(t, map[string]string{"main2": pipeline})
		var p project
		a.json("POST", "/api/v1/projects", map[string]any{"name": fmt.Sprintf("bench-%d", i), "provider": "local", "repository": repo,
			"events": []string{"push"}}, http.StatusOK, &p)
		projects = append(projects, benchProject{p, shas["main2"]})
	}
	// Warm up: each project's first run fills caches that a steady state has.
	var warm []string
	for _, p := range projects {
		warm = append(warm, a.push(p.project, "main2", p.sha))
	}
	for _, id := range warm {
		benchWait(t, a, id)
	}

	for _, rate := range benchRates {
		n := max(1, int(float64(rate)*cfg.rateFor.Seconds()))
		sent := make([]time.Time, n)
		ids := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / time.Duration(rate))
		for i := range n {
			if i > 0 {
				<-tick.C
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				sent[i] = time.Now()
				ids[i], errs[i] = benchPush(gw(i), projects[i%len(projects)])
			}()
		}
		tick.Stop()
		wg.Wait()
		var lat []time.Duration
		for i, id := range ids {
			if errs[i] != nil {
				t.Fatalf("%d runs/s: webhook %d: %v", rate, i, errs[i])
			}
			r := benchWait(t, a, id)
			started, err := time.Parse(time.RFC3339Nano, r.Steps[0].Started)
			if err != nil {
				t.Fatalf("run %s: first step started %q: %v", id, r.Steps[0].Started, err)
			}
			lat = append(lat, started.Sub(sent[i]))
		}
		res.latency[rate] = fmt.Sprintf("%s / %s", ms(quantile(lat, 0.50)), ms(quantile(lat, 0.99)))
		t.Logf("%s, %d runs/s for %v: webhook → first step p50 / p99 %s (%d runs, all succeeded)", tgt.name, rate, cfg.rateFor, res.latency[rate], n)
	}

	res.throughput, res.saturation = benchSustain(t, cfg, tgt, projects)
	res.logPath = benchLogPath(t, cfg, a)
	res.logLag = benchTailLag(t, a)
	return res
}

// benchSustain runs cfg.workers workers, each sending a push to its own project and
// waiting for the run to finish, for cfg.sustainFor; it returns runs per second and
// where the CPU went meanwhile.
func benchSustain(t *testing.T, cfg benchConfig, tgt benchTarget, projects []benchProject) (string, string) {
	a := tgt.apis[0]
	cpu0, procs0 := machineCPU(t), processCPU(tgt.procs)
	begin := time.Now()
	end := begin.Add(cfg.sustainFor)
	var mu sync.Mutex
	var ids []string
	var failure error
	var wg sync.WaitGroup
	for w := range cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				id, err := benchPush(tgt.apis[w%len(tgt.apis)], projects[w%len(projects)])
				if err == nil {
					_, err = benchPoll(a, id, 5*time.Minute)
				}
				mu.Lock()
				if err != nil && failure == nil {
					failure = err
				}
				if err == nil {
					ids = append(ids, id)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(begin)
	cpu1, procs1 := machineCPU(t), processCPU(tgt.procs)
	if failure != nil {
		t.Fatalf("sustained load: %v", failure)
	}
	for _, id := range ids {
		if r := benchWait(t, a, id); r.Status != "succeeded" {
			t.Fatalf("sustained load: run %s %s", id, r.Status)
		}
	}
	rate := float64(len(ids)) / took.Seconds()
	busy := cpu1.busy - cpu0.busy
	total := cpu1.total - cpu0.total
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(procs1)) {
		d := procs1[name] - procs0[name]
		parts = append(parts, fmt.Sprintf("%s %.0f%%", name, 100*d.Seconds()/took.Seconds()))
	}
	sat := fmt.Sprintf("CPU %.0f%% of %d cores busy (%s)", 100*float64(busy)/float64(total), runtime.NumCPU(), strings.Join(parts, ", "))
	t.Logf("%s: %d runs in %v: %.1f runs/s; %s", tgt.name, len(ids), took.Round(time.Millisecond), rate, sat)
	return fmt.Sprintf("%.1f runs/s (%d runs, %d workers, all succeeded)", rate, len(ids), cfg.workers), sat
}

// benchLogPath times a step printing cfg.logBytes from its webhook until the whole log is
// readable through the API, against the same command writing to /dev/null here.
func benchLogPath(t *testing.T, cfg benchConfig, a *api) string {
	line := "benchmark output line: 0123456789abcdefghijklmnopqrstuvwxyzABCDE" // 64 bytes with its newline
	command := fmt.Sprintf("yes '%s' | head -c %d", line, cfg.logBytes)
	var bare []time.Duration
	for range 3 {
		begin := time.Now()
		if out, err := exec.Command("/bin/sh", "-c", command+" >/dev/null").CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", command, err, out)
		}
		bare = append(bare, time.Since(begin))
	}
	repo, shas := gitRepo(t, map[string]string{"log": fmt.Sprintf(`{"steps": [{"name": "print", "run": %q}]}`, command)})
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "bench-log", "provider": "local", "repository": repo, "events": []string{"push"}}, http.StatusOK, &p)
	begin := time.Now()
	id, err := benchPush(a, benchProject{p, shas["log"]})
	if err != nil {
		t.Fatal(err)
	}
	if r := benchWait(t, a, id); r.Status != "succeeded" {
		t.Fatalf("log run: %s (%s)", r.Status, r.Reason)
	}
	eventually(t, 10*time.Minute, "the whole log to be stored", func() bool {
		var out struct {
			Complete bool `json:"complete"`
		}
		a.json("GET", "/api/v1/runs/"+id+"/logs?after="+strconv.Itoa(cfg.logBytes), nil, http.StatusOK, &out)
		return out.Complete
	})
	took := time.Since(begin)
	chunks, _ := a.logPages(id)
	n := 0
	for _, c := range chunks {
		if c.Stream == "stdout" {
			n += len(c.Text)
		}
	}
	if n != cfg.logBytes {
		t.Fatalf("log of %s: %d bytes of stdout, want %d", id, n, cfg.logBytes)
	}
	b := quantile(bare, 0.5)
	t.Logf("%d MB: complete and readable %v after its webhook; the command to /dev/null %v", cfg.logBytes/1e6, took.Round(time.Millisecond), b.Round(time.Millisecond))
	return fmt.Sprintf("%s (%.1f× the bare %s)", secs(took), took.Seconds()/b.Seconds(), secs(b))
}

// benchTailLag follows, through the SSE stream, a step that prints its clock (ns) every
// 20 ms, and returns p50 / p99 of the time each line took to arrive.
func benchTailLag(t *testing.T, a *api) string {
	// The step waits a second first, so that the stream is open before the first line.
	script := `sleep 1; i=0; while [ $i -lt 250 ]; do date +%s%N; sleep 0.02; i=$((i+1)); done`
	repo, shas := gitRepo(t, map[string]string{"tail": fmt.Sprintf(`{"steps": [{"name": "clock", "run": %q}]}`, script)})
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "bench-tail", "provider": "local", "repository": repo, "events": []string{"push"}}, http.StatusOK, &p)
	id, err := benchPush(a, benchProject{p, shas["tail"]})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var resp *http.Response
	// The run list follows the events: a run just queued may be 404 for a moment.
	eventually(t, 10*time.Second, "the log stream to open", func() bool {
		req, _ := http.NewRequestWithContext(ctx, "GET", a.base+"/api/v1/runs/"+id+"/logs:stream", nil)
		req.Header.Set("Authorization", "Bearer "+a.token)
		var err error
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return false
		}
		return true
	})
	defer resp.Body.Close()
	var lags []time.Duration
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			if sc.Text() == "event: end" {
				break
			}
			continue
		}
		now := time.Now()
		var c chunk
		if json.Unmarshal([]byte(data), &c) != nil || c.Stream != "stdout" {
			continue
		}
		for _, l := range strings.Split(strings.TrimSpace(c.Text), "\n") {
			if ns, err := strconv.ParseInt(strings.TrimSpace(l), 10, 64); err == nil {
				lags = append(lags, now.Sub(time.Unix(0, ns)))
			}
		}
	}
	if len(lags) != 250 {
		t.Fatalf("live tail: %d clock lines arrived, want 250", len(lags))
	}
	return fmt.Sprintf("%s / %s", ms(quantile(lags, 0.5)), ms(quantile(lags, 0.99)))
}

// benchProject is a project and the commit its pushes name.
type benchProject struct {
	project
	sha string
}

// benchPush sends a signed push webhook of the project's commit and returns the run's
// id; unlike api.push it may be called from any goroutine.
func benchPush(a *api, p benchProject) (string, error) {
	delivery := fmt.Sprintf("b-%d", time.Now().UnixNano())
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main2", "after": p.sha, "sender": map[string]string{"login": "bench"}, "delivery": delivery})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", a.base+p.WebhookPath, bytes.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", sign(p.WebhookSecret, body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", delivery)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		RunIDs []string `json:"runIds"`
	}
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(b, &out) != nil || len(out.RunIDs) != 1 {
		return "", fmt.Errorf("webhook: %s %s", resp.Status, b)
	}
	return out.RunIDs[0], nil
}

// benchPoll waits for run id to finish, from any goroutine.
func benchPoll(a *api, id string, within time.Duration) (run, error) {
	end := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", a.base+"/api/v1/runs/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+a.token)
		resp, err := http.DefaultClient.Do(req)
		var r run
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
		}
		cancel()
		if err != nil {
			return r, fmt.Errorf("run %s: %v", id, err)
		}
		if final[r.Status] {
			if r.Status != "succeeded" {
				return r, fmt.Errorf("run %s: %s (%s)", id, r.Status, r.Reason)
			}
			return r, nil
		}
		if time.Now().After(end) {
			return r, fmt.Errorf("run %s: still %s after %v", id, r.Status, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// benchWait waits for run id and fails the test unless it succeeded.
func benchWait(t *testing.T, a *api, id string) run {
	t.Helper()
	r, err := benchPoll(a, id, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Steps) == 0 || r.Steps[0].Started == "" {
		t.Fatalf("run %s: no first step start: %+v", id, r.Steps)
	}
	return r
}

type cpuTimes struct{ busy, total int64 }

// machineCPU reads the machine's CPU ticks (/proc/stat): busy (all but idle and iowait)
// and total.
func machineCPU(t *testing.T) cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var c cpuTimes
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		c.total += n
		if i != 3 && i != 4 { // idle, iowait
			c.busy += n
		}
	}
	return c
}

// processCPU is the CPU time each process and its waited-for children took so far, and
// that of PostgreSQL's and Kafka's processes on the machine.
func processCPU(procs map[string]*proc) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, p := range procs {
		own, kids, _ := procCPU(p.cmd.Process.Pid) // a process gone counts 0
		out[name] = own + kids
	}
	out["PostgreSQL"] = serverCPU("postgres")
	out["Kafka"] = serverCPU("kafka.Kafka")
	return out
}

// serverCPU sums the CPU time of the processes whose command line contains marker.
func serverCPU(marker string) time.Duration {
	var sum time.Duration
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if bytes.Contains(b, []byte(marker)) {
			own, _, _ := procCPU(pid)
			sum += own
		}
	}
	return sum
}

// rssOf lists each process's resident memory (VmRSS) in MB.
func rssOf(t *testing.T, procs map[string]*proc) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(procs)) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", procs[name].cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
				parts = append(parts, fmt.Sprintf("%s %.1f", name, float64(kb)/1024))
			}
		}
	}
	return strings.Join(parts, ", ") + " MB"
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func envSeconds(t *testing.T, name string, def int) time.Duration {
	return time.Duration(envInt(t, name, def)) * time.Second
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// benchTable is the Markdown of the results, one column per mode, with the targets of
// issue 12.
func benchTable(cfg benchConfig, results []benchResult) string {
	var b strings.Builder
	row := func(what, target string, cell func(benchResult) string) {
		fmt.Fprintf(&b, "| %s | %s |", what, target)
		for _, r := range results {
			fmt.Fprintf(&b, " %s |", cell(r))
		}
		b.WriteString("\n")
	}
	b.WriteString("| | target |")
	for _, r := range results {
		fmt.Fprintf(&b, " %s |", r.name)
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---|", len(results)) + "\n")
	for _, rate := range benchRates {
		target := ""
		if rate == 10 {
			target = "p99 < 50 ms (dev), < 75 ms (split)"
		}
		row(fmt.Sprintf("webhook → first step started, p50 / p99, %d run(s)/s for %v", rate, cfg.rateFor), target,
			func(r benchResult) string { return r.latency[rate] })
	}
	row(fmt.Sprintf("sustained, 3 steps of `true`, %v", cfg.sustainFor), "≥ 50 runs/s, nothing lost", func(r benchResult) string { return r.throughput })
	row("where the CPU went meanwhile", "", func(r benchResult) string { return r.saturation })
	row(fmt.Sprintf("%d MB log: webhook → complete and readable", cfg.logBytes/1000/1000), "< 1.5× the bare command", func(r benchResult) string { return r.logPath })
	row("live-tail lag (SSE), p50 / p99", "p99 < 200 ms", func(r benchResult) string { return r.logLag })
	row("idle RSS", "dev < 30 MB, runner < 20 MB", func(r benchResult) string { return r.idleRSS })
	row("start → ready", "", func(r benchResult) string { return r.ready })
	return b.String()
}
