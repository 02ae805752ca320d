package bus_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/bus"
)

// refusingBus refuses for good any message whose id is in refuse, as a broker with a
// lower limit than the bus's own would.
type refusingBus struct {
	bus.Bus
	refuse []string
}

func (b refusingBus) Publish(ctx context.Context, topic string, msgs ...bus.Message) error {
	for _, m := range msgs {
		if slices.Contains(b.refuse, m.ID) {
			return bus.Permanent(errors.New("broker: record too large"))
		}
	}
	return b.Bus.Publish(ctx, topic, msgs...)
}

// TestPublishOrSetAside: the messages a bus refuses for good, before sending (over
// MaxMessageBytes) or when sending (a permanent error), are set aside with where the
// producer keeps them, and every other message is published in order.
func TestPublishOrSetAside(t *testing.T) {
	ctx := testContext(t)
	inner := bus.NewGoChannel(testLogger(t))
	t.Cleanup(func() { inner.Close() })
	b := refusingBus{Bus: inner, refuse: []string{"refused"}}
	rec := newRecorder()
	if err := b.Subscribe(ctx, "t", "g", rec.handler); err != nil {
		t.Fatal(err)
	}
	msgs := []bus.Message{{ID: "a", Key: "k"}, {ID: "big", Key: "k", Payload: make([]byte, bus.MaxMessageBytes+1)},
		{ID: "b", Key: "k"}, {ID: "refused", Key: "k"}, {ID: "c", Key: "k"}}
	err := bus.PublishOrSetAside(ctx, b, "t", "outbox:test", msgs, func(m bus.Message) string { return "kept as row " + m.ID })
	if err != nil {
		t.Fatal(err)
	}
	if got := idsOf(rec.waitCount(t, 3)); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("published %v", got)
	}
	ps, err := b.Poison().List(ctx, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := poisonIDs(ps); len(ps) != 2 || ps[0].Message.ID != "big" || ps[1].Message.ID != "refused" {
		t.Fatalf("set aside %v", got)
	}
	for _, p := range ps {
		if p.Group != "outbox:test" || !strings.Contains(p.Error, "kept as row "+p.Message.ID) {
			t.Fatalf("record %+v", p)
		}
	}
	if ps[1].Message.Key != "k" {
		t.Fatalf("record lost the key: %+v", ps[1])
	}
}
