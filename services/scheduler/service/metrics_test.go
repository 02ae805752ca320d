package service_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/simpleci/simpleci/services/scheduler/service"
)

// metric reads the sum of the default registry's series of name that carry labels.
func metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// TestMetricsLostRunner: a lapsed lease counts as lost and its requeue as runner_lost; the
// second attempt's queue wait is observed; the run's end counts by its status.
func TestMetricsLostRunner(t *testing.T) {
	lost, requeued := metric(t, "simpleci_leases_lost_total", nil), metric(t, "simpleci_runs_requeued_total", map[string]string{"reason": "runner_lost"})
	waits, failed := metric(t, "simpleci_queue_wait_seconds", nil), metric(t, "simpleci_runs_finished_total", map[string]string{"status": "failed"})
	e := newEnv(t, withLease(300*time.Millisecond), func(c *service.Config) { c.LostRunRetries = 1 })
	r := e.trigger("main", "")
	e.loseLease(r.GetId())
	e.loseLease(r.GetId()) // no retries left: failed
	if got := metric(t, "simpleci_leases_lost_total", nil) - lost; got != 2 {
		t.Errorf("leases lost: +%g, want +2", got)
	}
	if got := metric(t, "simpleci_runs_requeued_total", map[string]string{"reason": "runner_lost"}) - requeued; got != 1 {
		t.Errorf("requeued (runner_lost): +%g, want +1", got)
	}
	if got := metric(t, "simpleci_queue_wait_seconds", nil) - waits; got != 2 {
		t.Errorf("queue waits observed: +%g, want +2 (one per attempt)", got)
	}
	if got := metric(t, "simpleci_runs_finished_total", map[string]string{"status": "failed"}) - failed; got != 1 {
		t.Errorf("runs finished failed: +%g, want +1", got)
	}
	if metric(t, "simpleci_queue_depth", map[string]string{"tier": "standard"}) != 0 {
		t.Errorf("queue depth of standard is not 0 once the run ended")
	}
}
