package bus_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
)

// BenchmarkPublishToHandler measures the latency from Publish to the handler running, one
// message at a time; p50 and p99 are reported beside ns/op (which includes the Publish).
//
//	go test -run '^$' -bench PublishToHandler ./...            (GoChannel only)
//	eval "$(deploy/local/test-env.sh)" && go test -run '^$' -bench PublishToHandler ./...
func BenchmarkPublishToHandler(b *testing.B) {
	b.Run("gochannel", func(b *testing.B) { benchPublishToHandler(b, goChannelFixture()) })
	b.Run("kafka", func(b *testing.B) {
		kafkaConfig(b) // skips without a broker
		benchPublishToHandler(b, kafkaFixture(""))
	})
}

func benchPublishToHandler(b *testing.B, f fixture) {
	bb, topic := f.newBus(b), f.topic(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	handled := make(chan time.Time, 1)
	h := func(context.Context, bus.Message) error {
		handled <- time.Now()
		return nil
	}
	if err := bb.Subscribe(ctx, topic, "bench", h); err != nil {
		b.Fatal(err)
	}
	var latencies []time.Duration
	i := 0
	for b.Loop() {
		i++
		m := bus.Message{ID: fmt.Sprintf("bench-%d", i), Key: fmt.Sprintf("run-%d", i%16), Type: "bench", Payload: make([]byte, 256)}
		start := time.Now()
		if err := bb.Publish(ctx, topic, m); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-handled:
			latencies = append(latencies, at.Sub(start))
		case <-time.After(30 * time.Second):
			b.Fatalf("message %d not handled within 30 s", i)
		}
	}
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		b.ReportMetric(float64(latencies[n/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(latencies[min(n-1, n*99/100)].Microseconds()), "p99-µs")
	}
}
