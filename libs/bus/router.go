package bus

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// RetryPolicy bounds how often a failing handler runs again, with exponential backoff,
// before its message goes to the poison queue. Zero fields take the defaults.
type RetryPolicy struct {
	// MaxRetries is how many times a failed message is handled again. Default 8.
	MaxRetries int
	// InitialInterval is the wait before the first retry; each next one doubles. Default 100 ms.
	InitialInterval time.Duration
	// MaxInterval caps the wait between retries. Default 10 s (with the other defaults a
	// message is given up after about 23 s of failures: within Kafka's rebalance timeout).
	MaxInterval time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxRetries <= 0 {
		p.MaxRetries = 8
	}
	if p.InitialInterval <= 0 {
		p.InitialInterval = 100 * time.Millisecond
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = 10 * time.Second
	}
	return p
}

// Permanent marks err as one that no retry can fix (a payload that does not decode): the
// message goes to the poison queue at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was made by Permanent.
func IsPermanent(err error) bool { return errors.As(err, new(permanentError)) }

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Unavailable marks err as the failure of a dependency (a database, a peer service) that
// is down, not of the message: when the retries run out the message is not poisoned but
// delivered again later (after the nack delay), so an outage of any length delays the
// partition instead of filling the poison queue. A handler that cannot tell should check
// its dependencies (a database ping) before it says so.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return unavailableError{err}
}

// IsUnavailable reports whether err was made by Unavailable.
func IsUnavailable(err error) bool { return errors.As(err, new(unavailableError)) }

type unavailableError struct{ err error }

func (e unavailableError) Error() string { return "dependency unavailable: " + e.err.Error() }
func (e unavailableError) Unwrap() error { return e.err }

// stoppingError is a failure while the subscription was ending: neither retried nor
// poisoned, the message is nacked and goes to the group's next member.
type stoppingError struct{ err error }

func (e stoppingError) Error() string { return "subscription ended: " + e.err.Error() }
func (e stoppingError) Unwrap() error { return e.err }

// consumer is what one subscription's router needs.
type consumer struct {
	topic, group string
	h            Handler
	logger       *slog.Logger
	retry        RetryPolicy
	poison       message.Publisher // where poisoned messages go (see poisonPublisher)
	poisonTopic  string
	// nackDelay, when set, spaces the deliveries of a nacked message (GoChannel redelivers at once).
	nackDelay time.Duration
}

// newRouter returns a Watermill router with one handler that consumes c.topic from sub and
// runs c.h under the middleware, outermost first:
//
//	[nack delay] → poison queue → stop guard → retry (exponential backoff) → recoverer → c.h
//
// so a panic becomes an error, an error is retried in place (holding back the partition),
// and a message that still fails is published to the poison topic and acked, unless its
// error says a dependency is down (Unavailable): then it is nacked and delivered again. An error that
// happens because the subscription is ending (its context is done) skips the retries and the
// poison queue and nacks the message, for the group's next member to handle.
func newRouter(c consumer, sub message.Subscriber) (*message.Router, error) {
	retry := c.retry.withDefaults()
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, newSlogAdapter(c.logger))
	if err != nil {
		return nil, err
	}
	poison, err := middleware.PoisonQueueWithFilter(c.poison, c.poisonTopic, func(err error) bool {
		return !errors.As(err, new(stoppingError)) && !IsUnavailable(err)
	})
	if err != nil {
		return nil, err
	}
	if c.nackDelay > 0 {
		r.AddMiddleware(nackDelay(c.nackDelay))
	}
	r.AddMiddleware(
		poison,
		stopGuard,
		middleware.Retry{
			MaxRetries:          retry.MaxRetries,
			InitialInterval:     retry.InitialInterval,
			MaxInterval:         retry.MaxInterval,
			Multiplier:          2,
			RandomizationFactor: 0.2,
			ShouldRetry: func(p middleware.RetryParams) bool {
				return !IsPermanent(p.Err)
			},
		}.Middleware,
		middleware.Recoverer,
	)
	// The handler's name is the consumer group: the poison queue records it as the
	// message's handler (PoisonedHandlerKey).
	r.AddConsumerHandler(c.group, c.topic, sub, c.handle)
	return r, nil
}

// tracerName is the instrumentation scope of the bus's spans.
const tracerName = "github.com/simpleci/simpleci/libs/bus"

// startSpan starts the consumer span of m, continuing the trace context in its metadata.
// Not inlined: its frame (the attributes) stays off the stack of handle, whose goroutine
// Watermill starts per message, while tracing is off.
//
//go:noinline
func (c consumer) startSpan(ctx context.Context, wm *message.Message, m Message) (context.Context, trace.Span) {
	ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(wm.Metadata))
	return otel.Tracer(tracerName).Start(ctx, c.topic+" process", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.destination.name", c.topic), attribute.String("messaging.consumer.group.name", c.group),
			attribute.String("messaging.message.id", m.ID), attribute.String("messaging.kafka.message.key", m.Key), attribute.String("simpleci.event.type", m.Type)))
}

// handle runs c.h on one message.
func (c consumer) handle(wm *message.Message) error {
	ctx := wm.Context()
	if ctx.Err() != nil {
		return ctx.Err() // ended before it started: run no more handlers
	}
	m := fromWatermill(wm)
	// The handler runs in a consumer span continuing the publisher's trace. Only a traced
	// publisher sends a trace context: while tracing is off this costs a map lookup.
	if _, traced := wm.Metadata[traceparent]; traced {
		var span trace.Span
		ctx, span = c.startSpan(ctx, wm, m)
		defer span.End()
	}
	err := c.h(ctx, m)
	if err != nil {
		span := trace.SpanFromContext(ctx) // the consumer span, or a no-op one
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	if err != nil && ctx.Err() == nil {
		level := slog.LevelWarn
		if IsPermanent(err) {
			level = slog.LevelError
		}
		c.logger.LogAttrs(ctx, level, "bus: handler failed",
			slog.String("topic", c.topic), slog.String("group", c.group), slog.String("message_id", m.ID),
			slog.String("type", m.Type), slog.String("key", m.Key), slog.Bool("permanent", IsPermanent(err)), slog.Any("err", err))
	}
	return err
}

// stopGuard marks a failure of a message whose context is done (the subscription is ending)
// as a stoppingError, so the poison queue lets it through to a nack.
func stopGuard(h message.HandlerFunc) message.HandlerFunc {
	return func(wm *message.Message) ([]*message.Message, error) {
		out, err := h(wm)
		if err != nil && wm.Context().Err() != nil {
			return out, stoppingError{err}
		}
		return out, err
	}
}

// nackDelay waits d (or until the message's context ends) before a failed message is nacked.
func nackDelay(d time.Duration) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(wm *message.Message) ([]*message.Message, error) {
			out, err := h(wm)
			if err != nil {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-wm.Context().Done():
					t.Stop()
				}
			}
			return out, err
		}
	}
}

// runRouter runs r until ctx ends or r is closed; it is the subscription goroutine's body.
func runRouter(ctx context.Context, r *message.Router, logger *slog.Logger, topic, group string) {
	if err := r.Run(ctx); err != nil {
		// The subscription failed (the bus closed meanwhile): no handler ever ran, and
		// Close would wait its CloseTimeout for one.
		logger.Error("bus: consumer router", slog.String("topic", topic), slog.String("group", group), slog.Any("err", err))
		return
	}
	// Run returns once its context ended and the handlers stopped; Close is then immediate.
	if err := r.Close(); err != nil {
		logger.Warn("bus: close consumer router", slog.String("topic", topic), slog.String("group", group), slog.Any("err", err))
	}
}
