package eventstore

import (
	"context"
	"time"
)

// SubscribeOptions tune Subscribe. The zero value works.
type SubscribeOptions struct {
	// BatchSize bounds the events passed to one handler call (default 500).
	BatchSize int
	// Poll is how often the log is read when nothing woke the subscriber (default 250 ms),
	// which is how appends made by other processes are seen.
	Poll time.Duration
	// Wake, when set, returns a channel that is closed at the next append made in this
	// process, so that the subscriber reads at once instead of at the next poll.
	Wake func() <-chan struct{}
	// OnError is told about failed reads and handler errors before they are retried.
	OnError func(position int64, err error)
}

// Subscribe follows the log: it calls h with the events after position after, in
// position order, in batches, until ctx ends, and returns ctx's error. When h fails, the
// same batch is passed again after a backoff (up to 5 s), so h sees every event at least
// once; storing the position of the last event of a batch in the same transaction as
// the batch's effects makes that exactly once. Events whose transaction commits late are
// not skipped (ReadAll's guarantee).
func Subscribe(ctx context.Context, s Store, after int64, opts SubscribeOptions, h func(context.Context, []Event) error) error {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Poll <= 0 {
		opts.Poll = 250 * time.Millisecond
	}
	wake := opts.Wake
	if wake == nil {
		never := make(chan struct{})
		wake = func() <-chan struct{} { return never }
	}
	poll := time.NewTicker(opts.Poll)
	defer poll.Stop()
	backoff := 50 * time.Millisecond
	quick := 0 // short re-reads after a wake that found nothing: a commit still in flight
	for ctx.Err() == nil {
		woken := wake()
		evs, err := s.ReadAll(ctx, after, opts.BatchSize)
		if err == nil && len(evs) > 0 {
			err = h(ctx, evs)
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if opts.OnError != nil {
				opts.OnError(after, err)
			}
			sleep(ctx, backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if len(evs) > 0 {
			after = evs[len(evs)-1].Position
			quick = 0
			continue
		}
		if quick > 0 && quick < 6 {
			sleep(ctx, time.Duration(5<<quick)*time.Millisecond)
			quick++
			continue
		}
		quick = 0
		select {
		case <-ctx.Done():
		case <-woken:
			quick = 1
		case <-poll.C:
		}
	}
	return ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
