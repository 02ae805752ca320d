package event

import (
	"context"
	"fmt"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

// Transient returns err marked bus.Unavailable when a dependency that is down caused it:
// a peer answered Unavailable or DeadlineExceeded, or ping (the consumer's database)
// fails now. Such a message is retried for as long as the outage lasts instead of being
// poisoned; any other failure is the message's own and poisoned after the retries.
func Transient(ctx context.Context, err error, ping func(context.Context) error) error {
	if err == nil || bus.IsPermanent(err) || bus.IsUnavailable(err) {
		return err
	}
	if st, ok := status.FromError(err); ok && (st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded) {
		return bus.Unavailable(err)
	}
	if ping != nil && ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if perr := ping(pctx); perr != nil {
			return bus.Unavailable(fmt.Errorf("%w (and the database does not answer: %v)", err, perr))
		}
	}
	return err
}
