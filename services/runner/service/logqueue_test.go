package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
)

// stuckBus is a bus whose broker is away: Publish fails the first failures calls and
// blocks until release is closed.
type stuckBus struct {
	release  chan struct{}
	mu       sync.Mutex
	failures int
	ids      []string
}

func (b *stuckBus) Publish(ctx context.Context, topic string, msgs ...bus.Message) error {
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures > 0 {
		b.failures--
		return errors.New("kafka: client has run out of available brokers to talk to")
	}
	for _, m := range msgs {
		b.ids = append(b.ids, m.ID)
	}
	return nil
}

func (b *stuckBus) Subscribe(context.Context, string, string, bus.Handler) error { return nil }
func (b *stuckBus) Close() error                                                 { return nil }
func (b *stuckBus) Poison() bus.PoisonQueue                                      { return nil }

// The engine calls Log with its output lock held: while Log waits, no output is read,
// and a command that exits meanwhile loses its unread output after engine.WaitDelay.
// So chunks must be handed over at once however long the bus takes, and the job's end
// must wait until they are all published, in order, through failures.
func TestLogQueueHandsOverAtOnceAndPublishesEverythingInOrder(t *testing.T) {
	b := &stuckBus{release: make(chan struct{}), failures: 3}
	q := newLogQueue(b, slog.New(slog.DiscardHandler))
	var want []string
	start := time.Now()
	for i := 1; i <= 5; i++ {
		id := fmt.Sprintf("run-log-1-%d", i)
		want = append(want, id)
		q.push(bus.Message{ID: id, Payload: []byte("line\n")})
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("push waited %s for the bus", d)
	}
	closed := make(chan struct{})
	go func() { q.close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("close returned while the chunks were not published")
	case <-time.After(100 * time.Millisecond):
	}
	close(b.release) // the broker is back
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("close did not return after the broker came back")
	}
	if !slices.Equal(b.ids, want) {
		t.Fatalf("published %v, want %v", b.ids, want)
	}
}
