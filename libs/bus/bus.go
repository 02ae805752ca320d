// Package bus is SimpleCI's event bus: publish events to topics and consume them as named
// consumer groups, over Apache Kafka (production, several processes) or an in-process
// Watermill GoChannel (the embedded `simpleci dev` mode). Both are Watermill underneath.
//
// Delivery is at least once on Kafka: a crash, a rebalance or a failed handler delivers a
// message again, so every handler must be idempotent (dedupe on Message.ID). Messages with
// the same Key are delivered in the order they were published. Consumers run on Watermill's
// message.Router: a failing message is retried in place with backoff, then set aside in the
// poison queue (Bus.Poison) so that the messages behind it go on.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// Message is one event on the bus.
type Message struct {
	// ID is the event's unique id; consumers dedupe on it. Required.
	ID string
	// Key is the partition key: messages with the same key (a run id) stay in order. On Kafka
	// all messages with an empty key go to one partition.
	Key string
	// Type is the event type name, e.g. the protobuf full name of the payload.
	Type string
	// Payload is the serialized event (protobuf).
	Payload []byte
	// Metadata carries extra headers (trace context, organisation id, ...). Keys starting with
	// ReservedMetadataPrefix are the bus's own and rejected by Publish.
	Metadata map[string]string
}

// Handler processes one message. A returned error (or a panic) is retried in place with
// exponential backoff (RetryPolicy), holding back the messages behind it on the same
// partition, so per-key order holds. When the retries are used up, or at once for an error
// made by Permanent, the message goes to the poison queue (PoisonQueue) with the error, and
// the partition goes on. ctx is cancelled when the subscription ends; a handler that fails
// because of that is not poisoned: the message is delivered again to the group's next member.
type Handler func(ctx context.Context, m Message) error

// Bus publishes messages and runs handlers for consumer groups. Its methods are safe for
// concurrent use.
type Bus interface {
	// Publish sends msgs to topic in order. It returns once the bus has accepted them: on Kafka
	// when all in-sync replicas acknowledged each message; on GoChannel when they are queued
	// for delivery. On error, a prefix of msgs may have been published.
	Publish(ctx context.Context, topic string, msgs ...Message) error
	// Subscribe consumes topic as consumer group `group` (names are permanent once deployed)
	// until ctx is done or Close; it returns once the subscription is established (so callers
	// can subscribe before publishing), and runs the handler on a Watermill message.Router
	// (recoverer, retry, poison queue) in goroutines it owns. Several subscriptions of one
	// group share the topic's messages; each group gets every message.
	Subscribe(ctx context.Context, topic, group string, h Handler) error
	// Poison is the bus's poison queue: the messages its handlers gave up on.
	Poison() PoisonQueue
	// Close ends every subscription, waits for running handlers to return and releases the
	// connections. Publish and Subscribe fail afterwards. Calling Close again returns nil.
	Close() error
}

// ErrClosed is returned by Publish and Subscribe on a closed Bus.
var ErrClosed = errors.New("bus: closed")

// MaxMessageBytes bounds one message (payload, key, type, id and metadata): Publish refuses a
// larger one with ErrTooLarge before sending anything of the batch. It lies well below
// Kafka's own limits (the broker's message.max.bytes and Sarama's Producer.MaxMessageBytes,
// both about 1 MB by default), so a message the bus accepted is never refused by the broker,
// which a producer retrying it would otherwise do for ever. Events are bounded tighter still
// (libs/platform/event.MaxEventBytes); this is the last check.
const MaxMessageBytes = 512 << 10

// ErrTooLarge is returned (wrapped, and marked Permanent: no retry can make it smaller) by
// Publish for a message over MaxMessageBytes.
var ErrTooLarge = errors.New("message larger than the bus takes")

// Size is what m counts against MaxMessageBytes.
func (m Message) Size() int {
	n := len(m.ID) + len(m.Key) + len(m.Type) + len(m.Payload)
	for k, v := range m.Metadata {
		n += len(k) + len(v)
	}
	return n
}

// CheckSize returns a Permanent error wrapping ErrTooLarge if m is over MaxMessageBytes.
func CheckSize(m Message) error {
	if n := m.Size(); n > MaxMessageBytes {
		return Permanent(fmt.Errorf("bus: message %s (type %q, key %q) is %d bytes: %w (%d bytes)", m.ID, m.Type, m.Key, n, ErrTooLarge, MaxMessageBytes))
	}
	return nil
}

// ReservedMetadataPrefix starts the metadata keys the bus uses itself (to carry Key and Type).
const ReservedMetadataPrefix = "simpleci_"

// traceparent is the metadata key of the W3C trace context (propagation.TraceContext).
const traceparent = "traceparent"

const (
	metaKey  = ReservedMetadataPrefix + "key"
	metaType = ReservedMetadataPrefix + "type"
)

func validateSubscribe(topic, group string, h Handler) error {
	switch {
	case topic == "":
		return errors.New("bus: subscribe: empty topic")
	case group == "":
		return fmt.Errorf("bus: subscribe to %s: empty consumer group", topic)
	case h == nil:
		return fmt.Errorf("bus: subscribe to %s as %s: nil handler", topic, group)
	}
	return nil
}

// toWatermill converts msgs for publishing to topic, refusing what a consumer could not use.
// A message that carries no trace context (W3C traceparent) gets ctx's, so the consumer's
// span continues the publisher's trace; while tracing is off (the global propagator is the
// OpenTelemetry no-op) nothing is added.
func toWatermill(ctx context.Context, topic string, msgs []Message) ([]*message.Message, error) {
	if topic == "" {
		return nil, errors.New("bus: publish: empty topic")
	}
	out := make([]*message.Message, len(msgs))
	for i, m := range msgs {
		if m.ID == "" {
			return nil, fmt.Errorf("bus: publish to %s: message %d (type %q): empty ID", topic, i, m.Type)
		}
		if err := CheckSize(m); err != nil {
			return nil, fmt.Errorf("bus: publish to %s: nothing sent: %w", topic, err)
		}
		md := make(message.Metadata, len(m.Metadata)+2)
		for k, v := range m.Metadata {
			if strings.HasPrefix(k, ReservedMetadataPrefix) {
				return nil, fmt.Errorf("bus: publish to %s: message %s: metadata key %q is reserved", topic, m.ID, k)
			}
			md[k] = v
		}
		if _, carried := m.Metadata[traceparent]; !carried {
			otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(md))
		}
		md[metaKey] = m.Key
		md[metaType] = m.Type
		wm := message.NewMessage(m.ID, m.Payload)
		wm.Metadata = md
		out[i] = wm
	}
	return out, nil
}

func fromWatermill(wm *message.Message) Message {
	m := Message{
		ID:      wm.UUID,
		Key:     wm.Metadata[metaKey],
		Type:    wm.Metadata[metaType],
		Payload: wm.Payload,
	}
	if len(wm.Metadata) > 2 {
		m.Metadata = maps.Clone(map[string]string(wm.Metadata))
		delete(m.Metadata, metaKey)
		delete(m.Metadata, metaType)
	}
	return m
}

func orDiscard(logger *slog.Logger) *slog.Logger {
	if logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return logger
}
