// Package telemetry sets up OpenTelemetry tracing for a SimpleCI process, configured only
// by the standard OTEL_* environment variables and off unless OTEL_TRACES_EXPORTER names
// an exporter (docs/operations.md, "Traces"; docs/adr/0033-traces.md). While it is off no
// provider, propagator or instrumentation is installed: the gRPC and HTTP options below
// are empty, and the global OpenTelemetry API stays the no-op it is by default.
//
// One run is one trace: the trace context travels in gRPC metadata and HTTP headers (W3C
// traceparent, by the otelgrpc stats handlers and HTTP below), in bus message metadata
// (libs/bus), and with the events of the event store (Inject into the event's metadata,
// Extract where the outbox publishes it).
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Tracer is the instrumentation scope of SimpleCI's own spans.
const Tracer = "github.com/simpleci/simpleci"

var enabled atomic.Bool

// Enabled reports whether Setup installed a tracer provider in this process.
func Enabled() bool { return enabled.Load() }

// Setup installs the tracer provider the environment asks for and returns the function
// that flushes and stops it (call it on exit; it is a no-op when tracing is off).
// service names the process in its spans (service.name) unless OTEL_SERVICE_NAME or
// OTEL_RESOURCE_ATTRIBUTES say otherwise. Recognised: OTEL_SDK_DISABLED;
// OTEL_TRACES_EXPORTER = none (the default) | otlp | console, or several comma-separated;
// OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL = http/protobuf (the default) | grpc, with the
// OTLP exporters' own OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout, TLS);
// OTEL_TRACES_SAMPLER[_ARG] and OTEL_BSP_* (read by the SDK). console writes to stderr
// (stdout is the program's own output).
func Setup(ctx context.Context, service string, log *slog.Logger) (shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	exporters, err := exportersFromEnv(ctx, os.Stderr)
	if err != nil || len(exporters) == 0 {
		return noop, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv()) // last: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	if err != nil && res == nil {
		return noop, fmt.Errorf("telemetry: resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	for _, e := range exporters {
		opts = append(opts, sdktrace.WithBatcher(e))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	if log != nil {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("opentelemetry", "err", err) }))
	}
	install(tp)
	return tp.Shutdown, nil
}

// install makes tp the process's tracer provider and turns the instrumentation on.
func install(tp trace.TracerProvider) {
	otel.SetTracerProvider(tp)
	// W3C trace context only: its fields are validated and bounded (a traceparent, a
	// tracestate of at most 32 members), while baggage from a webhook's sender would be
	// stored with every event of the run and could make them too large for the bus.
	otel.SetTextMapPropagator(propagation.TraceContext{})
	enabled.Store(true)
}

// exportersFromEnv makes the span exporters OTEL_TRACES_EXPORTER names (none when unset).
func exportersFromEnv(ctx context.Context, console io.Writer) ([]sdktrace.SpanExporter, error) {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return nil, nil
	}
	var out []sdktrace.SpanExporter
	for name := range strings.SplitSeq(os.Getenv("OTEL_TRACES_EXPORTER"), ",") {
		var e sdktrace.SpanExporter
		var err error
		switch name = strings.TrimSpace(name); name {
		case "", "none":
			continue
		case "otlp":
			e, err = otlpExporter(ctx)
		case "console":
			e, err = stdouttrace.New(stdouttrace.WithWriter(console))
		default:
			err = fmt.Errorf("OTEL_TRACES_EXPORTER=%q: unknown exporter (otlp, console or none)", name)
		}
		if err != nil {
			for _, e := range out {
				e.Shutdown(ctx)
			}
			return nil, fmt.Errorf("telemetry: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

func otlpExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	proto := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch proto {
	case "", "http/protobuf":
		return otlptracehttp.New(ctx)
	case "grpc":
		return otlptracegrpc.New(ctx)
	}
	return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: unsupported (http/protobuf or grpc)", proto)
}

// GRPCServerOptions are the options that trace a gRPC server's calls (the otelgrpc stats
// handler; health checks are left out): none while tracing is off.
func GRPCServerOptions() []grpc.ServerOption {
	if !Enabled() {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithFilter(filters.Not(filters.HealthCheck()))))}
}

// GRPCDialOptions are the options that trace a connection's calls and send the caller's
// trace context with them: none while tracing is off.
func GRPCDialOptions() []grpc.DialOption {
	if !Enabled() {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithFilter(filters.Not(filters.HealthCheck()))))}
}

// maxStoredTraceState bounds the tracestate Inject stores: a caller's vendor entries (up to
// 32 of 512 bytes) would otherwise be stored with every event of a run.
const maxStoredTraceState = 512

// Inject writes ctx's trace context into md (W3C traceparent, and tracestate unless it is
// over maxStoredTraceState bytes), for storing with an event or an outbox row: nothing
// while tracing is off.
func Inject(ctx context.Context, md map[string]string) {
	otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(md))
	if len(md["tracestate"]) > maxStoredTraceState {
		delete(md, "tracestate")
	}
}

// Extract returns ctx continuing the trace context carried in md (ctx itself when md
// carries none or tracing is off).
func Extract(ctx context.Context, md map[string]string) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(md))
}

// Carried returns the trace context entries of md (nil when there are none), for passing
// a stored trace context on (the outbox copies an event's into its bus message).
func Carried(md map[string]string) map[string]string {
	var out map[string]string
	for _, k := range otel.GetTextMapPropagator().Fields() {
		if v, ok := md[k]; ok {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// Start starts a span of SimpleCI's own (a no-op span while tracing is off).
func Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return otel.Tracer(Tracer).Start(ctx, name, opts...)
}

// End ends span, recording err (if any) as its error.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// RunID names the run ctx's span works on (attribute simpleci.run_id), to find a run's
// trace by its id.
func RunID(ctx context.Context, runID string) {
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("simpleci.run_id", runID))
}

// TraceHeader is the gRPC response header in which a call hands back the trace context of
// the work it gave out, to be continued by the caller: ClaimJob's is the claimed run's, so
// the runner's work on it joins the run's trace rather than that of its polling call.
const TraceHeader = "simpleci-traceparent"

// SendTrace sets the TraceHeader of the call ctx serves to work's trace context (nothing
// while tracing is off).
func SendTrace(ctx, work context.Context) {
	md := map[string]string{}
	Inject(work, md)
	if tp := md["traceparent"]; tp != "" {
		grpc.SetHeader(ctx, metadata.Pairs(TraceHeader, tp))
	}
}

// ReceivedTrace returns ctx continuing the trace context of header's TraceHeader (ctx
// itself when it has none).
func ReceivedTrace(ctx context.Context, header metadata.MD) context.Context {
	if tp := header.Get(TraceHeader); len(tp) > 0 {
		return Extract(ctx, map[string]string{"traceparent": tp[0]})
	}
	return ctx
}
