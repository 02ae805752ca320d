package service

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
)

// The scheduler's metrics (docs/operations.md, "Metrics"). Counters and the queue wait
// count the decisions this process commits; the gauges (queue depth, jobs running,
// runners connected, follower lag) are read from the database when /metrics is scraped,
// so every replica reports the deployment's figures: aggregate them with max, not sum.
// Tiers are labels only as the deployment configures them (a run of another tier counts
// as "other"); statuses are the run statuses of docs/api.md.
var (
	runsFinished = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "simpleci", Name: "runs_finished_total",
		Help: "Runs that reached a final status, by status (succeeded, failed, cancelled, timed_out, errored).",
	}, []string{"status"})
	runsRequeued = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "simpleci", Name: "runs_requeued_total",
		Help: "Runs put back in the queue for another runner, by reason (runner_lost, handed_back).",
	}, []string{"reason"})
	leasesLost = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "simpleci", Name: "leases_lost_total",
		Help: "Job leases that lapsed because their runner stopped heartbeating (the run was requeued or ended).",
	})
	queueWait = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "simpleci", Name: "queue_wait_seconds",
		Help:    "Time an attempt of a run waited in the queue, from queued (or requeued) to started, by tier.",
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
	}, []string{"tier"})
)

// observeCommitted counts what the committed events of a decision on r say.
func (s *Service) observeCommitted(r *domain.Run, evs []recorded) {
	for _, e := range evs {
		switch ev := e.msg.(type) {
		case *eventsv1.RunFinished:
			runsFinished.WithLabelValues(ev.GetStatus()).Inc()
		case *eventsv1.RunRequeued:
			reason := "runner_lost"
			if ev.GetHandedBack() {
				reason = "handed_back"
			}
			runsRequeued.WithLabelValues(reason).Inc()
		case *eventsv1.RunStarted:
			if !r.Waiting.IsZero() {
				queueWait.WithLabelValues(s.tierLabel(r.Tier)).Observe(ev.GetStartedAt().AsTime().Sub(r.Waiting).Seconds())
			}
		}
	}
}

// tierLabel is tier when the deployment serves it, else "other": labels stay bounded by
// the configuration.
func (s *Service) tierLabel(tier string) string {
	if _, ok := s.cfg.Tiers[tier]; ok {
		return tier
	}
	return "other"
}

var (
	queueDepthDesc = prometheus.NewDesc("simpleci_queue_depth",
		"Runs queued and waiting for a runner, by tier.", []string{"tier"}, nil)
	jobsRunningDesc = prometheus.NewDesc("simpleci_jobs_running",
		"Jobs held by a runner (busy), by tier.", []string{"tier"}, nil)
	runnersConnectedDesc = prometheus.NewDesc("simpleci_runners_connected",
		"Runners that asked for a job within the last 45 s, by tier they serve (a runner of two tiers counts in both).", []string{"tier"}, nil)
	followerLagDesc = prometheus.NewDesc("simpleci_scheduler_follower_lag_positions",
		"Events of the event store a follower (outbox: publishing to Kafka; run-list; statuses: reporting to forges) has not handled yet.", []string{"follower"}, nil)
)

// gauges is the collector of the database-read gauges; it reads the scheduler started
// last in the process (one, but for tests).
type gauges struct{ s atomic.Pointer[Service] }

var (
	gaugesOnce      sync.Once
	schedulerGauges = &gauges{}
)

// observeGauges makes /metrics report s's database-read gauges.
func observeGauges(s *Service) {
	gaugesOnce.Do(func() { prometheus.MustRegister(schedulerGauges) })
	schedulerGauges.s.Store(s)
}

func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- jobsRunningDesc
	ch <- runnersConnectedDesc
	ch <- followerLagDesc
}

// scrapeTimeout bounds the queries of one scrape.
const scrapeTimeout = 2 * time.Second

// Collect reads the gauges; a query that fails leaves its gauge out of the scrape (and
// logged), so a database outage shows as missing series, not as zeros.
func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	s := g.s.Load()
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if err := s.collectJobs(ctx, ch); err != nil {
		s.log.Warn("metrics: read the job queue", "err", err)
	}
	if err := s.collectRunners(ctx, ch); err != nil {
		s.log.Warn("metrics: read the runners", "err", err)
	}
	if err := s.collectLag(ctx, ch); err != nil {
		s.log.Warn("metrics: read the followers' positions", "err", err)
	}
}

// collectJobs reports the queue depth and the jobs running of every configured tier
// (0 when it has none).
func (s *Service) collectJobs(ctx context.Context, ch chan<- prometheus.Metric) error {
	queued, running := map[string]float64{}, map[string]float64{}
	for _, t := range s.tierNames() {
		queued[t], running[t] = 0, 0
	}
	rows, err := s.db.QueryContext(ctx, `SELECT tier, state, COUNT(*) FROM sched_jobs GROUP BY tier, state`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var tier, state string
		var n float64
		if err := rows.Scan(&tier, &state, &n); err != nil {
			return err
		}
		switch state {
		case "queued":
			queued[s.tierLabel(tier)] += n
		case "running":
			running[s.tierLabel(tier)] += n
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for t, n := range queued {
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, n, t)
	}
	for t, n := range running {
		ch <- prometheus.MustNewConstMetric(jobsRunningDesc, prometheus.GaugeValue, n, t)
	}
	return nil
}

// collectRunners reports the connected runners of every configured tier.
func (s *Service) collectRunners(ctx context.Context, ch chan<- prometheus.Metric) error {
	counts := map[string]float64{}
	for _, t := range s.tierNames() {
		counts[t] = 0
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT tiers FROM sched_runners WHERE last_seen > ?`), time.Now().Add(-runnerGone).UnixNano())
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var tiers string
		if err := rows.Scan(&tiers); err != nil {
			return err
		}
		for _, t := range strings.Split(strings.Trim(tiers, ","), ",") {
			if _, ok := counts[t]; ok {
				counts[t]++
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for t, n := range counts {
		ch <- prometheus.MustNewConstMetric(runnersConnectedDesc, prometheus.GaugeValue, n, t)
	}
	return nil
}

// collectLag reports how far behind the event store's last position each follower is.
func (s *Service) collectLag(ctx context.Context, ch chan<- prometheus.Metric) error {
	var head int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(position), 0) FROM events`).Scan(&head); err != nil {
		return err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT name, position FROM sched_positions`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var pos int64
		if err := rows.Scan(&name, &pos); err != nil {
			return err
		}
		ch <- prometheus.MustNewConstMetric(followerLagDesc, prometheus.GaugeValue, float64(max(head-pos, 0)), name)
	}
	return rows.Err()
}
