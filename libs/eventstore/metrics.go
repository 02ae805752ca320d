package eventstore

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// appendSeconds is how long appends take (docs/operations.md, "Metrics"): the store
// (postgres or sqlite) and the result (ok, conflict, error) are its labels. An append
// inside the caller's transaction (TxStore) is timed without the commit.
var appendSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
	Namespace: "simpleci", Subsystem: "eventstore", Name: "append_seconds",
	Help:    "Time of one event-store append, by store and result (ok, conflict, error).",
	Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms to 4 s
}, []string{"store", "result"})

// ObserveAppend records an append of store that began at start and ended with err; the
// implementations call it.
func ObserveAppend(store string, start time.Time, err error) {
	result := "ok"
	switch {
	case errors.Is(err, ErrConcurrency):
		result = "conflict"
	case err != nil:
		result = "error"
	}
	appendSeconds.WithLabelValues(store, result).Observe(time.Since(start).Seconds())
}
