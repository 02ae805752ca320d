package telemetry

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// traced installs a provider that records into the returned exporter, for one test.
func traced(t *testing.T) *tracetest.InMemoryExporter {
	exp := tracetest.NewInMemoryExporter()
	install(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	t.Cleanup(func() {
		enabled.Store(false)
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	})
	return exp
}

// TestOffByDefault: without OTEL_TRACES_EXPORTER (or with none, or with the SDK
// disabled) nothing is installed: no gRPC options, the HTTP handler itself.
func TestOffByDefault(t *testing.T) {
	for _, env := range [][2]string{{"OTEL_TRACES_EXPORTER", ""}, {"OTEL_TRACES_EXPORTER", "none"}, {"OTEL_SDK_DISABLED", "true"}} {
		t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
		t.Setenv(env[0], env[1])
		shutdown, err := Setup(context.Background(), "simpleci-test", nil)
		if err != nil {
			t.Fatalf("%s=%q: %v", env[0], env[1], err)
		}
		mux := http.NewServeMux()
		if Enabled() || GRPCServerOptions() != nil || GRPCDialOptions() != nil || HTTP(mux) != http.Handler(mux) {
			t.Fatalf("%s=%q: tracing is on", env[0], env[1])
		}
		md := map[string]string{}
		Inject(trace.ContextWithSpanContext(context.Background(), testSpanContext()), md)
		if len(md) != 0 {
			t.Fatalf("%s=%q: Inject wrote %v", env[0], env[1], md)
		}
		if err := shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSetupRefusesUnknown: a misspelt exporter or protocol is an error naming it.
func TestSetupRefusesUnknown(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "jaeger")
	if _, err := Setup(context.Background(), "x", nil); err == nil || !strings.Contains(err.Error(), `"jaeger"`) {
		t.Fatalf("exporter jaeger: %v", err)
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	if _, err := Setup(context.Background(), "x", nil); err == nil || !strings.Contains(err.Error(), "http/json") {
		t.Fatalf("protocol http/json: %v", err)
	}
	if Enabled() {
		t.Fatal("a failed setup turned tracing on")
	}
}

func testSpanContext() trace.SpanContext {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
}

// TestHTTPContinuesTrace: a request with a traceparent is a server span of that trace,
// named by the route that served it, with the response's status; probes are not traced.
func TestHTTPContinuesTrace(t *testing.T) {
	exp := traced(t)
	mux := http.NewServeMux()
	var inHandler trace.SpanContext
	mux.HandleFunc("POST /api/v1/webhooks/{provider}/{project}", func(w http.ResponseWriter, r *http.Request) {
		inHandler = trace.SpanContextFromContext(r.Context())
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	h := HTTP(mux)
	req := httptest.NewRequest("POST", "/api/v1/webhooks/github/p1", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/healthz", nil))
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want the webhook's alone: %v", len(spans), spans)
	}
	s := spans[0]
	if s.Name != "POST /api/v1/webhooks/{provider}/{project}" || s.SpanKind != trace.SpanKindServer {
		t.Errorf("span %q kind %v", s.Name, s.SpanKind)
	}
	if s.SpanContext.TraceID() != testSpanContext().TraceID() || s.Parent.SpanID() != testSpanContext().SpanID() {
		t.Errorf("span in trace %s under %s, want the caller's", s.SpanContext.TraceID(), s.Parent.SpanID())
	}
	if inHandler.SpanID() != s.SpanContext.SpanID() {
		t.Error("the handler's context is not in the request's span")
	}
	if !hasAttr(s.Attributes, attribute.Int("http.response.status_code", http.StatusAccepted)) {
		t.Errorf("attributes %v lack the status", s.Attributes)
	}
}

func hasAttr(as []attribute.KeyValue, want attribute.KeyValue) bool {
	for _, a := range as {
		if a == want {
			return true
		}
	}
	return false
}

// TestPropagation: a trace context stored in metadata (an event's) is carried on alone
// and continued where it is extracted.
func TestPropagation(t *testing.T) {
	traced(t)
	ctx, span := Start(context.Background(), "decide")
	defer span.End()
	md := map[string]string{"run_id": "r1", "org_id": "o1"}
	Inject(ctx, md)
	if md["traceparent"] == "" {
		t.Fatalf("nothing injected: %v", md)
	}
	carried := Carried(md)
	if len(carried) != 1 || carried["traceparent"] != md["traceparent"] {
		t.Fatalf("carried %v of %v, want the traceparent alone", carried, md)
	}
	got := trace.SpanContextFromContext(Extract(context.Background(), carried))
	if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() {
		t.Fatalf("extracted %v, want %v", got, span.SpanContext())
	}
	// A caller's long tracestate is not stored.
	long := Extract(context.Background(), map[string]string{"traceparent": md["traceparent"],
		"tracestate": "a=" + strings.Repeat("x", 250) + ",b=" + strings.Repeat("y", 250) + ",c=" + strings.Repeat("z", 250)})
	stored := map[string]string{}
	Inject(long, stored)
	if stored["traceparent"] != md["traceparent"] || stored["tracestate"] != "" {
		t.Fatalf("stored %v, want the traceparent without the long tracestate", stored)
	}
	if Carried(map[string]string{"run_id": "r1"}) != nil {
		t.Fatal("carried something of metadata without a trace context")
	}
}

// TestLogHandler: a line logged in a span names its trace and span; others do not.
func TestLogHandler(t *testing.T) {
	traced(t)
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewTextHandler(&buf, nil))).With("service", "scheduler")
	ctx, span := Start(context.Background(), "claim job")
	log.InfoContext(ctx, "job claimed", "run", "r1")
	span.End()
	log.Info("no span")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := "trace_id=" + span.SpanContext().TraceID().String() + " span_id=" + span.SpanContext().SpanID().String()
	if len(lines) != 2 || !strings.Contains(lines[0], want) || !strings.Contains(lines[0], "run=r1") || strings.Contains(lines[1], "trace_id") {
		t.Fatalf("log:\n%s\nwant the first line with %s, the second without", buf.String(), want)
	}
}
