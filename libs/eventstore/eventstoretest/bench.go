package eventstoretest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/simpleci/simpleci/libs/eventstore"
)

// streamLength is how many appends go to one stream before the benchmarks
// move on to the next, so they measure appends to run-sized streams rather
// than to one ever-growing stream.
const streamLength = 50

// AppendBenchmark measures Append of batch events at a time with an exact
// expected version, from one goroutine. It reports events/s besides ns/op
// (one op is one Append).
func AppendBenchmark(b *testing.B, s eventstore.Store, batch int) {
	ctx := context.Background()
	events := make([]eventstore.Event, batch)
	payload := make([]byte, 200) // about the size of a step event
	b.ReportAllocs()
	var version int64
	i := 0
	for ; b.Loop(); i++ {
		if i%streamLength == 0 {
			version = 0
		}
		for j := range events {
			events[j] = eventstore.Event{ID: newID(), Type: "StepFinished", Payload: payload,
				Metadata: map[string]string{"org_id": "org-1", "project_id": "project-1"}}
		}
		v, err := s.Append(ctx, fmt.Sprintf("run-bench-%d", i/streamLength), version, events...)
		if err != nil {
			b.Fatal(err)
		}
		version = v
	}
	b.ReportMetric(float64(i*batch)/b.Elapsed().Seconds(), "events/s")
}

// ParallelAppendBenchmark is AppendBenchmark from parallelism×GOMAXPROCS
// goroutines, each appending to its own streams (as scheduler replicas
// appending to different runs do).
func ParallelAppendBenchmark(b *testing.B, s eventstore.Store, batch, parallelism int) {
	ctx := context.Background()
	payload := make([]byte, 200)
	var worker atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := worker.Add(1)
		events := make([]eventstore.Event, batch)
		var version int64
		for i := 0; pb.Next(); i++ {
			if i%streamLength == 0 {
				version = 0
			}
			for j := range events {
				events[j] = eventstore.Event{ID: newID(), Type: "StepFinished", Payload: payload,
					Metadata: map[string]string{"org_id": "org-1", "project_id": "project-1"}}
			}
			v, err := s.Append(ctx, fmt.Sprintf("run-bench-w%d-%d", w, i/streamLength), version, events...)
			if err != nil {
				b.Error(err)
				return
			}
			version = v
		}
	})
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}
