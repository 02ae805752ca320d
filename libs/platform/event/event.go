// Package event names the bus topics and turns protobuf events into bus messages and back.
// Topic and consumer-group names are permanent once deployed (docs/events.md).
package event

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/simpleci/simpleci/libs/bus"
	_ "github.com/simpleci/simpleci/proto/simpleci/events/v1" // registers the event types
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Topics. Every message is keyed by its run id, so one run's events stay in order.
const (
	// TopicRunRequests carries RunRequested (gateway → scheduler).
	TopicRunRequests = "simpleci.run-requests"
	// TopicRuns carries the run lifecycle events the scheduler recorded.
	TopicRuns = "simpleci.runs"
	// TopicLogs carries LogEmitted (runner → log).
	TopicLogs = "simpleci.logs"
	// TopicPoison carries the messages a consumer group gave up on (a payload that does not
	// decode, or a handler that kept failing), each with its original topic, group and
	// error as metadata; `simpleci admin poison` lists and replays them.
	TopicPoison = bus.DefaultPoisonTopic
)

// Topics lists every topic, for creating them up front.
var Topics = []string{TopicRunRequests, TopicRuns, TopicLogs, TopicPoison}

// TypeOf returns the permanent type name of an event: its protobuf full name.
func TypeOf(m proto.Message) string { return string(m.ProtoReflect().Descriptor().FullName()) }

// MaxEventBytes bounds an event's encoded payload, on the bus and in the event store:
// well below the bus's own limit (bus.MaxMessageBytes, itself below Kafka's ~1 MB), so an
// event always fits with its metadata. What can be larger (a pipeline file) is stored once
// by its owner and referenced (docs/architecture.md, "Event size"); what a user or runner
// controls (reasons, context values) is bounded where it comes in (Bound).
const MaxEventBytes = 256 << 10

// ErrTooLarge is returned (wrapped) by Marshal and Encode for an event over MaxEventBytes.
var ErrTooLarge = errors.New("event larger than an event may be")

// Marshal encodes m, refusing an event over MaxEventBytes with ErrTooLarge.
func Marshal(m proto.Message) ([]byte, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", TypeOf(m), err)
	}
	if len(b) > MaxEventBytes {
		return nil, fmt.Errorf("encode %s: %d bytes: %w (%d bytes)", TypeOf(m), len(b), ErrTooLarge, MaxEventBytes)
	}
	return b, nil
}

// Encode makes a bus message of event m with the given event id and partition key; an
// event over MaxEventBytes fails with ErrTooLarge.
func Encode(id, key string, m proto.Message) (bus.Message, error) {
	b, err := Marshal(m)
	if err != nil {
		return bus.Message{}, err
	}
	return bus.Message{ID: id, Key: key, Type: TypeOf(m), Payload: b}, nil
}

// Bound returns s cut to at most max bytes (at a UTF-8 boundary) with a marker saying how
// much was cut, so a field whose size a user or a runner controls (a reason, a context
// value) cannot make its event too large. s within max is returned unchanged.
func Bound(s string, max int) string {
	if len(s) <= max {
		return s
	}
	marker := fmt.Sprintf("…[cut %d bytes]", len(s)) // as long as the final one, or longer
	keep := max - len(marker)
	if keep < 0 { // no room for the marker
		keep = max
		marker = ""
	}
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	if marker == "" {
		return s[:keep]
	}
	return s[:keep] + fmt.Sprintf("…[cut %d bytes]", len(s)-keep)
}

// Decode parses a payload of the named type.
func Decode(typ string, payload []byte) (proto.Message, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(typ))
	if err != nil {
		return nil, fmt.Errorf("unknown event type %q: %w", typ, err)
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", typ, err)
	}
	return m, nil
}
