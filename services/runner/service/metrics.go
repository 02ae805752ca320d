package service

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
)

// The runner's metrics (docs/operations.md, "Metrics"). The tier is a label as the
// runner serves it (--runner-tiers); the status is the job's final status, or
// handed_back when the runner stopped and gave the job back.
var (
	jobDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "simpleci", Subsystem: "runner", Name: "job_duration_seconds",
		Help:    "Time a runner spent on a job, from claim to its end (checkout and pipeline), by tier and status.",
		Buckets: []float64{1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200},
	}, []string{"tier", "status"})
	jobsBusy = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "simpleci", Subsystem: "runner", Name: "jobs_running",
		Help: "Jobs this runner process runs now (at most its --jobs), by tier.",
	}, []string{"tier"})
)

// jobTier is the job's tier as a label: one the runner serves, else "other".
func (r *Runner) jobTier(job *runnerv1.Job) string {
	if slices.Contains(r.cfg.Tiers, job.GetTier()) {
		return job.GetTier()
	}
	return "other"
}

// jobStarted counts job as running; the function it returns ends it with status.
func (r *Runner) jobStarted(job *runnerv1.Job) (done func(status string)) {
	tier, start := r.jobTier(job), time.Now()
	jobsBusy.WithLabelValues(tier).Inc()
	return func(status string) {
		jobsBusy.WithLabelValues(tier).Dec()
		jobDuration.WithLabelValues(tier, status).Observe(time.Since(start).Seconds())
	}
}
