package event

import (
	"context"
	"fmt"

	"github.com/simpleci/simpleci/libs/bus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Handler handles the events of one type; On makes one, Consumer combines them.
type Handler struct {
	typ    protoreflect.MessageType
	handle func(context.Context, proto.Message) error
}

// On makes the handler of events of type T (a generated event message, e.g.
// *eventsv1.RunRequested). h gets the decoded event; an error from h is retried and then
// poisoned by the bus (bus.Handler).
func On[T proto.Message](h func(ctx context.Context, e T) error) Handler {
	var zero T
	return Handler{
		typ:    zero.ProtoReflect().Type(),
		handle: func(ctx context.Context, m proto.Message) error { return h(ctx, m.(T)) },
	}
}

// Consumer returns the bus.Handler of one consumer group: the one place where events are
// decoded. A message is decoded once, into the type its Type names, and passed to the
// handler of that type. Of the other messages:
//   - one of a known event type that no handler takes is skipped (a topic carries events
//     for several consumers);
//   - one without a type, of a type this binary does not know, or whose payload does not
//     decode fails with bus.Permanent: it goes to the poison queue at once, unretried.
//
// Consumer panics if two handlers take the same type (a programming error).
func Consumer(handlers ...Handler) bus.Handler {
	byType := make(map[protoreflect.FullName]Handler, len(handlers))
	for _, h := range handlers {
		name := h.typ.Descriptor().FullName()
		if _, dup := byType[name]; dup {
			panic(fmt.Sprintf("event.Consumer: two handlers of %s", name))
		}
		byType[name] = h
	}
	return func(ctx context.Context, m bus.Message) error {
		name := protoreflect.FullName(m.Type)
		h, ok := byType[name]
		if !ok {
			if m.Type == "" {
				return bus.Permanent(fmt.Errorf("message %s has no event type", m.ID))
			}
			if _, err := protoregistry.GlobalTypes.FindMessageByName(name); err != nil {
				return bus.Permanent(fmt.Errorf("message %s: unknown event type %q", m.ID, m.Type))
			}
			return nil
		}
		e := h.typ.New().Interface()
		if err := proto.Unmarshal(m.Payload, e); err != nil {
			return bus.Permanent(fmt.Errorf("message %s: decode %s: %w", m.ID, m.Type, err))
		}
		return h.handle(ctx, e)
	}
}
