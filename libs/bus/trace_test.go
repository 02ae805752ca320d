package bus_test

import (
	"context"
	"sync"
	"testing"

	"github.com/simpleci/simpleci/libs/bus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// testTraceContext: with a W3C propagator installed (tracing on), Publish puts the
// publisher's trace context into the message's metadata and the handler runs in a span
// continuing it; a message that carries its own (an outbox relaying a stored event's) keeps
// it; with the default no-op propagator (tracing off) no metadata is added.
func testTraceContext(t *testing.T, f fixture) {
	b, topic, ctx := f.newBus(t), f.topic(t), testContext(t)
	var mu sync.Mutex
	got := map[string]trace.SpanContext{} // by message id: the handler's span context
	meta := map[string]map[string]string{}
	if err := b.Subscribe(ctx, topic, "trace", func(ctx context.Context, m bus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[m.ID], meta[m.ID] = trace.SpanContextFromContext(ctx), m.Metadata
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sc := func(traceHex, spanHex string) trace.SpanContext {
		tid, _ := trace.TraceIDFromHex(traceHex)
		sid, _ := trace.SpanIDFromHex(spanHex)
		return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	}
	publisher := sc("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
	pctx := trace.ContextWithSpanContext(ctx, publisher)

	// Off: nothing added. (A propagator set once cannot be unset: the empty composite is
	// the no-op one.)
	off := propagation.NewCompositeTextMapPropagator()
	otel.SetTextMapPropagator(off)
	t.Cleanup(func() { otel.SetTextMapPropagator(off) })
	if err := b.Publish(pctx, topic, bus.Message{ID: "off", Type: "t"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the untraced message", func() bool { mu.Lock(); defer mu.Unlock(); _, ok := got["off"]; return ok })

	otel.SetTextMapPropagator(propagation.TraceContext{})
	stored := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if err := b.Publish(pctx, topic, bus.Message{ID: "on", Type: "t"},
		bus.Message{ID: "stored", Type: "t", Metadata: map[string]string{"traceparent": stored}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the traced messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 })
	mu.Lock()
	defer mu.Unlock()
	if len(meta["off"]) != 0 || got["off"].IsValid() {
		t.Errorf("tracing off: metadata %v, handler span %v; want none", meta["off"], got["off"])
	}
	if g := got["on"]; g.TraceID() != publisher.TraceID() || !g.IsRemote() || g.SpanID() != publisher.SpanID() {
		t.Errorf("handler of a traced message: span context %v, want the publisher's trace %s (metadata %v)", g, publisher.TraceID(), meta["on"])
	}
	if g := got["stored"]; g.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || meta["stored"]["traceparent"] != stored {
		t.Errorf("a message carrying its trace context: handler in trace %s, metadata %v; want the carried one", g.TraceID(), meta["stored"])
	}
}
