package service

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TestOutboxCarriesTraceContext: with the W3C propagator installed (tracing on), a delivery
// accepted into gw_outbox keeps the trace context of the request that accepted it, and the
// forwarder publishes it with that context, not its own; with tracing off the row stores
// none and the message carries none.
func TestOutboxCarriesTraceContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sqldb.Open(ctx, filepath.Join(t.TempDir(), "gateway.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ApplyMigrations(ctx, Schema); err != nil {
		t.Fatal(err)
	}
	b := bus.NewGoChannel(nil)
	defer b.Close()
	got := make(chan bus.Message, 2)
	if err := b.Subscribe(ctx, "t", "test", func(_ context.Context, m bus.Message) error { got <- m; return nil }); err != nil {
		t.Fatal(err)
	}
	in := &intake{db: db, bus: b, log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	request := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))

	accept := func(id string) bus.Message {
		t.Helper()
		if via, err := in.accept(request, "t", bus.Message{ID: id, Key: id, Type: "x", Payload: []byte("p")}); err != nil || via != "outbox" {
			t.Fatalf("accept: %s %v", via, err)
		}
		if n, err := in.forwardOnce(ctx); err != nil || n != 1 {
			t.Fatalf("forward: %d %v", n, err)
		}
		select {
		case m := <-got:
			return m
		case <-ctx.Done():
			t.Fatal("nothing published")
		}
		return bus.Message{}
	}
	if m := accept("off"); len(m.Metadata) != 0 {
		t.Fatalf("tracing off: published with metadata %v", m.Metadata)
	}
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator()) })
	if m := accept("on"); m.Metadata["traceparent"] != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Fatalf("published with metadata %v, want the accepting request's traceparent", m.Metadata)
	}
}
