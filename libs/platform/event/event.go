// Package event names the bus topics and turns protobuf events into bus messages and back.
// Topic and consumer-group names are permanent once deployed (docs/events.md).
package event

import (
	"fmt"

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

// Encode makes a bus message of event m with the given event id and partition key.
func Encode(id, key string, m proto.Message) (bus.Message, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return bus.Message{}, fmt.Errorf("encode %s: %w", TypeOf(m), err)
	}
	return bus.Message{ID: id, Key: key, Type: TypeOf(m), Payload: b}, nil
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
