package event_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/platform/event"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestConsumer(t *testing.T) {
	var got []string
	failing := errors.New("store down")
	h := event.Consumer(
		event.On(func(_ context.Context, e *eventsv1.RunRequested) error {
			got = append(got, "requested:"+e.GetRunId())
			if e.GetRunId() == "fail" {
				return failing
			}
			return nil
		}),
		event.On(func(_ context.Context, e *eventsv1.RunFinished) error {
			got = append(got, "finished:"+e.GetRunId())
			return nil
		}),
	)
	encode := func(id string, m *eventsv1.RunRequested) bus.Message {
		t.Helper()
		msg, err := event.Encode(id, m.GetRunId(), m)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	finished, err := event.Encode("e3", "r2", &eventsv1.RunFinished{RunId: "r2"})
	if err != nil {
		t.Fatal(err)
	}
	queued, err := event.Encode("e4", "r2", &eventsv1.RunQueued{RunId: "r2"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		msg       bus.Message
		wantErr   error // matched with errors.Is
		permanent bool
	}{
		{name: "decoded once and handled", msg: encode("e1", &eventsv1.RunRequested{RunId: "r1"})},
		{name: "the handler's error is returned, retryable", msg: encode("e2", &eventsv1.RunRequested{RunId: "fail"}), wantErr: failing},
		{name: "second type", msg: finished},
		{name: "a known type nobody here handles is skipped", msg: queued},
		{name: "payload that does not decode", msg: bus.Message{ID: "bad", Type: event.TypeOf(&eventsv1.RunRequested{}), Payload: []byte{0xff, 0xff, 0xff}}, permanent: true},
		{name: "unknown type", msg: bus.Message{ID: "unknown", Type: "simpleci.events.v1.NoSuchEvent", Payload: []byte{}}, permanent: true},
		{name: "no type", msg: bus.Message{ID: "untyped", Payload: []byte{1}}, permanent: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := h(context.Background(), c.msg)
			if bus.IsPermanent(err) != c.permanent {
				t.Fatalf("error %v: permanent %v, want %v", err, bus.IsPermanent(err), c.permanent)
			}
			if !c.permanent && !errors.Is(err, c.wantErr) {
				t.Fatalf("error %v, want %v", err, c.wantErr)
			}
		})
	}
	want := []string{"requested:r1", "requested:fail", "finished:r2"}
	if len(got) != len(want) {
		t.Fatalf("handled %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("handled %v, want %v", got, want)
		}
	}
}

func TestConsumerRefusesTwoHandlersOfOneType(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	h := event.On(func(context.Context, *eventsv1.RunRequested) error { return nil })
	event.Consumer(h, h)
}

func TestTransient(t *testing.T) {
	ctx := context.Background()
	up := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	plain := errors.New("constraint violated")
	tests := []struct {
		name        string
		err         error
		ping        func(context.Context) error
		unavailable bool
	}{
		{"peer unavailable", fmt.Errorf("resolve project: %w", status.Error(codes.Unavailable, "connection refused")), up, true},
		{"peer deadline", status.Error(codes.DeadlineExceeded, "slow"), up, true},
		{"database down", plain, down, true},
		{"the message's own failure", plain, up, false},
		{"a peer refusing the request", status.Error(codes.InvalidArgument, "bad"), up, false},
		{"permanent stays permanent", bus.Permanent(plain), down, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := event.Transient(ctx, tt.err, tt.ping)
			if bus.IsUnavailable(got) != tt.unavailable || !errors.Is(got, tt.err) && !bus.IsPermanent(tt.err) {
				t.Fatalf("Transient(%v) = %v, unavailable %v; want %v and the error kept", tt.err, got, bus.IsUnavailable(got), tt.unavailable)
			}
		})
	}
	if event.Transient(ctx, nil, down) != nil {
		t.Fatal("Transient(nil) != nil")
	}
}
