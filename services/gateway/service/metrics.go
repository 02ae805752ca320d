package service

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The gateway's metrics (docs/operations.md, "Metrics").
var webhooks = promauto.NewCounterVec(prometheus.CounterOpts{
	Namespace: "simpleci", Name: "webhooks_total",
	Help: "Webhook deliveries answered, by provider (a configured forge, else unknown) and outcome " +
		"(accepted, ignored, bad_signature, not_found, rate_limited, too_large, replayed, rejected, unavailable, error).",
}, []string{"provider", "outcome"})

// webhookOutcome names what the answer's status code says happened to a delivery.
func webhookOutcome(code int) string {
	switch code {
	case http.StatusAccepted:
		return "accepted"
	case http.StatusOK:
		return "ignored"
	case http.StatusUnauthorized:
		return "bad_signature"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusConflict:
		return "replayed"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	if code >= 400 && code < 500 {
		return "rejected"
	}
	return "error"
}

// countWebhooks counts the deliveries h answers. The provider comes from the URL, so it
// is a label only when it names a configured forge: labels stay bounded whatever is sent.
func (g *gateway) countWebhooks(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h(rec, r)
		provider := r.PathValue("provider")
		if _, err := g.cfg.Forges.Lookup(provider); err != nil {
			provider = "unknown"
		}
		webhooks.WithLabelValues(provider, webhookOutcome(rec.code)).Inc()
	}
}

// statusRecorder remembers the status code written through it.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

var outboxLagDesc = prometheus.NewDesc("simpleci_gateway_outbox_lag_positions",
	"Accepted webhook deliveries in the gateway's outbox (gw_outbox) not yet forwarded to Kafka.", nil, nil)

// outboxGauge reports the outbox of the gateway started last in the process (one, but
// for tests), read from its database at each scrape.
type outboxGauge struct{ in atomic.Pointer[intake] }

var (
	outboxOnce sync.Once
	outboxLag  = &outboxGauge{}
)

// scrapeLimit bounds the query of one scrape.
const scrapeLimit = 2 * time.Second

// observeOutbox makes /metrics report in's outbox.
func observeOutbox(in *intake) {
	outboxOnce.Do(func() { prometheus.MustRegister(outboxLag) })
	outboxLag.in.Store(in)
}

func (o *outboxGauge) Describe(ch chan<- *prometheus.Desc) { ch <- outboxLagDesc }

// Collect counts the outbox's rows; when the database does not answer the gauge is left
// out of the scrape (and logged), not reported as 0.
func (o *outboxGauge) Collect(ch chan<- prometheus.Metric) {
	in := o.in.Load()
	if in == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeLimit)
	defer cancel()
	var n int64
	if err := in.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM gw_outbox`).Scan(&n); err != nil {
		in.log.Warn("metrics: count the outbox", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(outboxLagDesc, prometheus.GaugeValue, float64(n))
}
