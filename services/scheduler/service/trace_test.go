package service_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/platform/event"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TestOutboxCarriesTraceContext: with the W3C propagator installed (tracing on), the
// events a decision appends keep the decision's trace context in their metadata, and the
// outbox follower publishes them with it, not with its own: the consumers of the run's
// events continue the trace of the call that recorded them.
func TestOutboxCarriesTraceContext(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator()) })
	e := newEnv(t)
	var mu sync.Mutex
	var onBus []bus.Message
	if err := e.bus.Subscribe(e.ctx, event.TopicRuns, "test", func(_ context.Context, m bus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		onBus = append(onBus, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(e.user("org1"), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	r, err := e.svc.TriggerRun(ctx, &apiv1.TriggerRunRequest{Project: "app", Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var stored string
	if err := e.db.QueryRowContext(e.ctx, e.db.Q(`SELECT metadata FROM events WHERE stream_id = ? AND stream_version = 1`), "run-"+r.GetId()).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	var md map[string]string
	if err := json.Unmarshal([]byte(stored), &md); err != nil || md["traceparent"] != want {
		t.Fatalf("RunQueued stored with metadata %s, want traceparent %s", stored, want)
	}
	e.eventually("RunQueued on the bus", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range onBus {
			if m.Key == r.GetId() && m.Type == event.TypeOf(&eventsv1.RunQueued{}) {
				if m.Metadata["traceparent"] != want {
					t.Fatalf("RunQueued published with metadata %v (stored %s), want traceparent %s", m.Metadata, stored, want)
				}
				return true
			}
		}
		return false
	})
}
