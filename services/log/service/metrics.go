package service

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The log service's metrics (docs/operations.md, "Metrics"): what it stored, by stream
// (stdout, stderr, system). A redelivered chunk is stored, and counted, once.
var (
	logChunks = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "simpleci", Subsystem: "log", Name: "chunks_stored_total",
		Help: "Log chunks stored, by stream.",
	}, []string{"stream"})
	logBytes = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "simpleci", Subsystem: "log", Name: "stored_bytes_total",
		Help: "Bytes of log output stored, by stream (a chunk past its run's log limit is stored empty).",
	}, []string{"stream"})
)

// countChunk counts a chunk of n bytes stored on stream.
func countChunk(stream string, n int) {
	logChunks.WithLabelValues(stream).Inc()
	logBytes.WithLabelValues(stream).Add(float64(n))
}
