package bus

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
)

const (
	// goChannelQueue bounds the messages queued per topic; Publish waits (honouring its ctx)
	// when a topic's consumers fall this far behind.
	goChannelQueue = 4096
	// goChannelNackDelay spaces deliveries of a message whose handler failed.
	goChannelNackDelay = 100 * time.Millisecond
)

// GoChannelOption configures NewGoChannel.
type GoChannelOption func(*goChannelBus)

// WithPoisonDir keeps the poison queue in dir (a PoisonDir), where `simpleci admin poison`
// reads it, and makes the bus carry out the replay requests filed there. Without it the
// poison queue is kept in memory and lost with the process.
func WithPoisonDir(dir string) GoChannelOption {
	return func(b *goChannelBus) { b.poisonDir = OpenPoisonDir(dir) }
}

// WithRetry sets how often a failing handler runs again before its message is poisoned.
func WithRetry(p RetryPolicy) GoChannelOption {
	return func(b *goChannelBus) { b.retry = p }
}

// NewGoChannel returns the in-process bus of the embedded mode: one shared Watermill
// gochannel.GoChannel with BlockPublishUntilSubscriberAck, so a topic has one message in
// flight at a time and per-key order holds. It keeps nothing but the poison queue: a
// message reaches only the groups subscribed when it is delivered, and what is queued is
// lost on Close or a crash.
//
// Publish queues the messages and returns; one goroutine per topic hands them to the
// GoChannel in order. That decoupling is what lets a handler publish (even to its own topic)
// without deadlocking: the GoChannel's Publish holds the topic's lock until every subscriber
// acked. Several subscriptions of one group compete for the group's messages, as on Kafka.
// A nil logger discards logs.
func NewGoChannel(logger *slog.Logger, opts ...GoChannelOption) Bus {
	logger = orDiscard(logger)
	b := &goChannelBus{
		logger: logger,
		gc: gochannel.NewGoChannel(gochannel.Config{
			BlockPublishUntilSubscriberAck: true,
		}, newSlogAdapter(logger)),
		closing: make(chan struct{}),
		topics:  make(map[string]chan *message.Message),
		groups:  make(map[groupKey]*goChannelGroup),
		members: make(map[*goChannelMember]struct{}),
	}
	for _, o := range opts {
		o(b)
	}
	if b.poisonDir != nil {
		b.poisonDir.logger = logger
		b.poison, b.poisonPub = b.poisonDir, b.poisonDir
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.poisonDir.serveReplays(b, logger, b.closing)
		}()
	} else {
		mem := &memoryPoison{bus: b, logger: logger}
		b.poison, b.poisonPub = mem, mem
	}
	return b
}

type goChannelBus struct {
	logger    *slog.Logger
	gc        *gochannel.GoChannel
	retry     RetryPolicy
	poisonDir *PoisonDir
	poison    PoisonQueue
	poisonPub message.Publisher

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	topics  map[string]chan *message.Message // queue per topic, drained by dispatch
	groups  map[groupKey]*goChannelGroup
	members map[*goChannelMember]struct{}
	wg      sync.WaitGroup // dispatchers, members and the replay server
}

func (b *goChannelBus) Poison() PoisonQueue { return b.poison }

type groupKey struct{ topic, group string }

// goChannelGroup is one GoChannel subscription shared by the members of a consumer group.
type goChannelGroup struct {
	msgs    <-chan *message.Message
	cancel  context.CancelFunc // ends the GoChannel subscription
	members int
}

type goChannelMember struct{ cancel context.CancelFunc }

func (b *goChannelBus) Publish(ctx context.Context, topic string, msgs ...Message) error {
	wms, err := toWatermill(ctx, topic, msgs)
	if err != nil {
		return err
	}
	q, err := b.queue(topic)
	if err != nil {
		return err
	}
	for i, wm := range wms {
		select {
		case q <- wm:
		case <-ctx.Done():
			return fmt.Errorf("bus: publish to %s: %d of %d messages queued: %w", topic, i, len(wms), ctx.Err())
		case <-b.closing:
			return ErrClosed
		}
	}
	return nil
}

// queue returns topic's queue, starting its dispatcher on first use.
func (b *goChannelBus) queue(topic string) (chan *message.Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	q, ok := b.topics[topic]
	if !ok {
		q = make(chan *message.Message, goChannelQueue)
		b.topics[topic] = q
		b.wg.Add(1)
		go b.dispatch(topic, q)
	}
	return q, nil
}

// dispatch hands topic's queued messages to the GoChannel one at a time; each Publish there
// returns when every subscribed group acked the message (or the GoChannel closed).
func (b *goChannelBus) dispatch(topic string, q <-chan *message.Message) {
	defer b.wg.Done()
	for {
		select {
		case wm := <-q:
			if err := b.gc.Publish(topic, wm); err != nil {
				// Only a closed GoChannel fails, and only on Close.
				b.logger.Debug("bus: gochannel publish", slog.String("topic", topic), slog.Any("err", err))
				return
			}
		case <-b.closing:
			return
		}
	}
}

func (b *goChannelBus) Subscribe(ctx context.Context, topic, group string, h Handler) error {
	if err := validateSubscribe(topic, group, h); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bus: subscribe to %s as %s: %w", topic, group, err)
	}
	key := groupKey{topic, group}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	g, ok := b.groups[key]
	if !ok {
		// Not under b.mu: the GoChannel's Subscribe waits for the message in flight on the
		// topic, whose handler may be publishing (which takes b.mu).
		b.mu.Unlock()
		subCtx, cancel := context.WithCancel(context.Background())
		msgs, err := b.gc.Subscribe(subCtx, topic) // registered when it returns: established
		b.mu.Lock()
		if err != nil {
			cancel()
			if b.closed {
				return ErrClosed
			}
			return fmt.Errorf("bus: subscribe to %s as %s: %w", topic, group, err)
		}
		if b.closed {
			cancel()
			return ErrClosed
		}
		if g, ok = b.groups[key]; ok {
			cancel() // another member created the group meanwhile: join it
		} else {
			g = &goChannelGroup{msgs: msgs, cancel: cancel}
			b.groups[key] = g
		}
	}
	g.members++
	memberCtx, cancel := context.WithCancel(ctx)
	m := &goChannelMember{cancel: cancel}
	b.members[m] = struct{}{}
	b.wg.Add(1)
	go b.consume(memberCtx, m, key, g, h)
	return nil
}

// consume runs h on a router for the messages of g until ctx is done or g's subscription
// ends.
func (b *goChannelBus) consume(ctx context.Context, m *goChannelMember, key groupKey, g *goChannelGroup, h Handler) {
	defer b.wg.Done()
	defer func() {
		m.cancel()
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.members, m)
		g.members--
		if g.members == 0 {
			g.cancel()
			if b.groups[key] == g {
				delete(b.groups, key)
			}
		}
	}()
	r, err := newRouter(consumer{
		topic: key.topic, group: key.group, h: h, logger: b.logger, retry: b.retry,
		poison: stampingPublisher{pub: b.poisonPub, logger: b.logger}, poisonTopic: DefaultPoisonTopic,
		nackDelay: goChannelNackDelay,
	}, memberSubscriber{g: g})
	if err != nil {
		b.logger.Error("bus: consumer router", slog.String("topic", key.topic), slog.String("group", key.group), slog.Any("err", err))
		return
	}
	runRouter(ctx, r, b.logger, key.topic, key.group)
}

// memberSubscriber is one member's view of its group's GoChannel subscription, as the
// message.Subscriber a router consumes.
type memberSubscriber struct{ g *goChannelGroup }

// Subscribe forwards the group's messages, each with ctx as its context, until ctx is done
// or the group's subscription ends; a message taken while leaving is nacked for another member.
func (s memberSubscriber) Subscribe(ctx context.Context, _ string) (<-chan *message.Message, error) {
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case wm, ok := <-s.g.msgs:
				if !ok {
					return
				}
				if ctx.Err() != nil {
					wm.Nack()
					return
				}
				wm.SetContext(ctx)
				select {
				case out <- wm:
				case <-ctx.Done():
					wm.Nack()
					return
				}
			}
		}
	}()
	return out, nil
}

func (memberSubscriber) Close() error { return nil }

func (b *goChannelBus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.closing)
	for m := range b.members {
		m.cancel()
	}
	b.mu.Unlock()
	// The members' routers return once their handlers did.
	// Closing the GoChannel releases a dispatcher waiting for an ack and ends the subscriptions.
	err := b.gc.Close()
	b.wg.Wait()
	if err != nil {
		return fmt.Errorf("bus: close gochannel: %w", err)
	}
	return nil
}
