package e2e_test

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// TestMetrics: after one run driven by a webhook, every process's /metrics holds the
// metrics operators watch (docs/operations.md, "Metrics") with the values that run
// gives them, in the split deployment and in `simpleci dev` (one process, one
// registry); no label carries a run id, a project id or a project name.
func TestMetrics(t *testing.T) {
	t.Run("split", func(t *testing.T) {
		c := startCluster(t, 1)
		ids := metricsRun(t, c.api)
		checkMetrics(t, c.http, metricWants("postgres"), ids)
	})
	t.Run("dev", func(t *testing.T) {
		a := startDev(t)
		ids := metricsRun(t, a)
		addr := strings.TrimPrefix(a.base, "http://")
		// One process serves every metric: each want is looked up there.
		one := map[string]string{}
		for _, w := range metricWants("sqlite") {
			one[w.proc] = addr
		}
		checkMetrics(t, one, metricWants("sqlite"), ids)
	})
}

// metricsRun runs faultPipeline once through a signed push webhook, sends one delivery
// with a bad signature, and returns the ids the labels must not hold.
func metricsRun(t *testing.T, a *api) []string {
	p, sha := a.faultProject("metrics")
	id := a.push(p, "main2", sha)
	if r := a.waitRun(id, 90*time.Second); r.Status != "succeeded" {
		t.Fatalf("run %s: %s (%s)", id, r.Status, r.Reason)
	}
	a.waitLogs(id)
	if code, b := a.do("POST", p.WebhookPath, []byte(`{"ref":"refs/heads/main2"}`), map[string]string{
		"X-Hub-Signature-256": "sha256=00", "X-GitHub-Event": "push", "X-GitHub-Delivery": "bad"}); code != http.StatusUnauthorized {
		t.Fatalf("badly signed delivery: %d %s", code, b)
	}
	return []string{id, p.ID, p.Name}
}

// metricWant is a metric one process must serve: series with labels (among others),
// whose values (a histogram's: its count of observations) add up to at least min.
type metricWant struct {
	proc   string
	name   string
	labels map[string]string
	min    float64
}

func (w metricWant) String() string {
	return fmt.Sprintf("%s: %s%v >= %g", w.proc, w.name, w.labels, w.min)
}

// metricWants are the metrics of one run of faultPipeline on tier standard, whose
// event store is store (postgres or sqlite).
func metricWants(store string) []metricWant {
	kafka := store == "postgres" // the split deployment; simpleci dev has the in-process bus
	l := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	wants := []metricWant{
		{"gateway", "simpleci_webhooks_total", l("provider", "local", "outcome", "accepted"), 1},
		{"gateway", "simpleci_webhooks_total", l("provider", "local", "outcome", "bad_signature"), 1},
		{"gateway", "simpleci_gateway_outbox_lag_positions", nil, 0},
		{"gateway", "simpleci_grpc_client_handled_total", l("grpc_method", "ResolveProject", "grpc_code", "OK"), 1},
		{"auth", "simpleci_grpc_server_handled_total", l("grpc_code", "OK"), 1},
		{"project", "simpleci_grpc_server_handled_total", l("grpc_method", "ResolveProject", "grpc_code", "OK"), 1},
		{"scheduler", "simpleci_runs_finished_total", l("status", "succeeded"), 1},
		{"scheduler", "simpleci_queue_depth", l("tier", "standard"), 0},
		{"scheduler", "simpleci_queue_wait_seconds", l("tier", "standard"), 1},
		{"scheduler", "simpleci_runners_connected", l("tier", "standard"), 1},
		{"scheduler", "simpleci_jobs_running", l("tier", "standard"), 0},
		{"scheduler", "simpleci_leases_lost_total", nil, 0},
		{"scheduler", "simpleci_kafka_consumer_lag_messages", l("group", "scheduler", "topic", "simpleci.run-requests"), 0},
		{"scheduler", "simpleci_scheduler_follower_lag_positions", l("follower", "outbox"), 0},
		{"scheduler", "simpleci_scheduler_follower_lag_positions", l("follower", "run-list"), 0},
		{"scheduler", "simpleci_eventstore_append_seconds", l("store", store, "result", "ok"), 3}, // queued, started, finished at least
		{"scheduler", "simpleci_grpc_server_handled_total", l("grpc_service", "simpleci.runner.v1.RunnerService", "grpc_method", "Report", "grpc_code", "OK"), 1},
		{"scheduler", "simpleci_grpc_server_handling_seconds", l("grpc_method", "ClaimJob"), 1},
		{"runner-1", "simpleci_runner_job_duration_seconds", l("tier", "standard", "status", "succeeded"), 1},
		{"runner-1", "simpleci_runner_jobs_running", l("tier", "standard"), 0},
		{"runner-1", "simpleci_grpc_client_handled_total", l("grpc_method", "ClaimJob"), 1},
		{"log", "simpleci_log_chunks_stored_total", l("stream", "stdout"), 1},
		{"log", "simpleci_kafka_consumer_lag_messages", l("group", "log-chunks", "topic", "simpleci.logs"), 0},
		// faultPipeline prints line-1 to line-5 and done: 40 bytes on stdout.
		{"log", "simpleci_log_stored_bytes_total", l("stream", "stdout"), 40},
		{"log", "simpleci_grpc_server_handled_total", l("grpc_service", "simpleci.runner.v1.RunnerLogService", "grpc_code", "OK"), 1},
	}
	if !kafka {
		wants = slices.DeleteFunc(wants, func(w metricWant) bool { return strings.HasPrefix(w.name, "simpleci_kafka_") })
	}
	return wants
}

// checkMetrics scrapes each process at addrs (by the wants' proc) until every want is
// met (counters fed by consumers catch up within seconds), then checks that no label of
// SimpleCI's metrics holds one of secrets.
func checkMetrics(t *testing.T, addrs map[string]string, wants []metricWant, secrets []string) {
	t.Helper()
	var unmet []string
	scrapes := map[string]map[string]*dto.MetricFamily{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		unmet = nil
		clear(scrapes)
		for _, proc := range slices.Sorted(maps.Keys(addrs)) {
			mfs, err := scrape(addrs[proc])
			if err != nil {
				t.Fatalf("%s: %v", proc, err)
			}
			scrapes[proc] = mfs
		}
		for _, w := range wants {
			if got, ok := metricValue(scrapes[w.proc][w.name], w.labels); !ok || got < w.min {
				unmet = append(unmet, fmt.Sprintf("%v: got %g (series found: %v)", w, got, ok))
			}
		}
		if len(unmet) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(unmet) > 0 {
		t.Errorf("metrics not as a run leaves them:\n  %s", strings.Join(unmet, "\n  "))
	}
	for proc, mfs := range scrapes {
		for name, mf := range mfs {
			if !strings.HasPrefix(name, "simpleci_") {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if slices.Contains(secrets, lp.GetValue()) {
						t.Errorf("%s: %s has label %s=%q: a run or project id (or name) as a label", proc, name, lp.GetName(), lp.GetValue())
					}
				}
			}
		}
	}
}

// scrape GETs addr's /metrics and parses it.
func scrape(addr string) (map[string]*dto.MetricFamily, error) {
	cl := &http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	var p expfmt.TextParser
	return p.TextToMetricFamilies(resp.Body)
}

// metricValue adds up the series of mf that carry labels: counters and gauges by value,
// histograms by count. ok says whether any series matched.
func metricValue(mf *dto.MetricFamily, labels map[string]string) (sum float64, ok bool) {
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		match := true
		for k, v := range labels {
			match = match && have[k] == v
		}
		if !match {
			continue
		}
		ok = true
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			sum += m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			sum += m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			sum += float64(m.GetHistogram().GetSampleCount())
		default:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, ok
}
