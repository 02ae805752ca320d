package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// DefaultPoisonTopic is the topic the poison queue uses unless configured otherwise
// (permanent once deployed, like every topic).
const DefaultPoisonTopic = "simpleci.poison"

// metaPoisonedAt is when the message was poisoned (RFC 3339, UTC); the other poison metadata
// are Watermill's (middleware.ReasonForPoisonedKey, PoisonedTopicKey, PoisonedHandlerKey).
const metaPoisonedAt = ReservedMetadataPrefix + "poisoned_at"

// poisonKeys are the metadata keys of a poison record that the original message did not have.
var poisonKeys = []string{metaPoisonedAt, middleware.ReasonForPoisonedKey, middleware.PoisonedTopicKey,
	middleware.PoisonedHandlerKey, middleware.PoisonedSubscriberKey}

// Poisoned is a message a consumer group gave up on.
type Poisoned struct {
	// ID names this record in its poison queue (Kafka: "partition-offset" in the poison
	// topic; the embedded bus: a time-ordered name). A message poisoned twice has two.
	ID string
	// Message is the original message: id, key, type, payload and metadata as published.
	Message Message
	// Topic and Group are where it was consumed and by whom.
	Topic, Group string
	// Error is the handler's last error.
	Error string
	// At is when it was poisoned.
	At time.Time
}

// PoisonQueue holds the messages the bus's consumers gave up on.
type PoisonQueue interface {
	// List returns the poisoned messages, oldest first: those of the original topic topic
	// (all when empty), at most limit of them (all when limit <= 0), the newest kept.
	List(ctx context.Context, topic string, limit int) ([]Poisoned, error)
	// Replay publishes p.Message again to p.Topic (every group of the topic gets it again:
	// handlers are idempotent). The record stays in the queue.
	Replay(ctx context.Context, p Poisoned) error
	// SetAside records a message that its producer could not publish and never will (it is
	// over MaxMessageBytes, or the bus refused it permanently), so that the producer's
	// outbox goes on: p.Topic is where it was meant to go, p.Group names the producer
	// (e.g. "outbox:gateway"), p.Error why. p.ID and p.At are ignored. A payload too large
	// for the poison queue itself is left out and the record's error says so (the producer
	// keeps the original where the record says).
	SetAside(ctx context.Context, p Poisoned) error
}

// maxPoisonError bounds the error text a record set aside carries.
const maxPoisonError = 4 << 10

// setAsideMessage is the poison record of p for SetAside, within MaxMessageBytes.
func setAsideMessage(p Poisoned) *message.Message {
	m := p.Message
	reason := p.Error
	if m.Size()+len(reason)+1024 > MaxMessageBytes {
		reason += fmt.Sprintf(" (payload of %d bytes not kept in the poison queue: over its limit)", len(m.Payload))
		m.Payload = nil
	}
	if len(reason) > maxPoisonError {
		reason = reason[:maxPoisonError] + "…[cut]"
	}
	md := make(message.Metadata, len(m.Metadata)+6)
	for k, v := range m.Metadata {
		md[k] = v
	}
	md[metaKey], md[metaType] = m.Key, m.Type
	md[middleware.PoisonedTopicKey] = p.Topic
	md[middleware.PoisonedHandlerKey] = p.Group
	md[middleware.ReasonForPoisonedKey] = reason
	wm := message.NewMessage(m.ID, m.Payload)
	wm.Metadata = md
	return wm
}

// poisonRecord makes a Poisoned from a message published to the poison topic.
func poisonRecord(id string, wm *message.Message) Poisoned {
	orig := wm.Copy()
	orig.Metadata = maps.Clone(wm.Metadata)
	for _, k := range poisonKeys {
		delete(orig.Metadata, k)
	}
	p := Poisoned{
		ID:      id,
		Message: fromWatermill(orig),
		Topic:   wm.Metadata[middleware.PoisonedTopicKey],
		Group:   wm.Metadata[middleware.PoisonedHandlerKey],
		Error:   wm.Metadata[middleware.ReasonForPoisonedKey],
	}
	p.At, _ = time.Parse(time.RFC3339Nano, wm.Metadata[metaPoisonedAt])
	return p
}

// pick applies List's topic and limit to records in order.
func pick(all []Poisoned, topic string, limit int) []Poisoned {
	out := all[:0:0]
	for _, p := range all {
		if topic == "" || p.Topic == topic {
			out = append(out, p)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// stampingPublisher is the poison middleware's publisher: it records the time, logs the
// poisoning and publishes to the poison topic through pub.
type stampingPublisher struct {
	pub    message.Publisher
	logger *slog.Logger
}

func (s stampingPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, wm := range msgs {
		wm.Metadata.Set(metaPoisonedAt, time.Now().UTC().Format(time.RFC3339Nano))
		s.logger.Error("bus: message poisoned: the consumer gave up on it; see `simpleci admin poison list`",
			slog.String("poison_topic", topic), slog.String("topic", wm.Metadata[middleware.PoisonedTopicKey]),
			slog.String("group", wm.Metadata[middleware.PoisonedHandlerKey]), slog.String("message_id", wm.UUID),
			slog.String("type", wm.Metadata[metaType]), slog.String("key", wm.Metadata[metaKey]),
			slog.String("err", wm.Metadata[middleware.ReasonForPoisonedKey]))
	}
	return s.pub.Publish(topic, msgs...)
}

func (s stampingPublisher) Close() error { return nil }

// replay re-publishes p through b, refusing a record that does not say where it came from.
func replay(ctx context.Context, b Bus, p Poisoned) error {
	if p.Topic == "" {
		return fmt.Errorf("bus: replay %s: the record names no original topic", p.ID)
	}
	m := p.Message
	m.Metadata = maps.Clone(m.Metadata)
	for k := range m.Metadata {
		if strings.HasPrefix(k, ReservedMetadataPrefix) {
			delete(m.Metadata, k)
		}
	}
	if err := b.Publish(ctx, p.Topic, m); err != nil {
		return fmt.Errorf("bus: replay %s (message %s) to %s: %w", p.ID, m.ID, p.Topic, err)
	}
	return nil
}

// memoryPoison is the poison queue of a GoChannel bus without a directory: it lives and
// dies with the process.
type memoryPoison struct {
	bus    Bus
	logger *slog.Logger
	mu     sync.Mutex
	all    []Poisoned
	n      int
}

func (q *memoryPoison) Publish(_ string, msgs ...*message.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, wm := range msgs {
		q.n++
		q.all = append(q.all, poisonRecord(fmt.Sprintf("mem-%d", q.n), wm))
	}
	return nil
}

func (q *memoryPoison) Close() error { return nil }

func (q *memoryPoison) List(ctx context.Context, topic string, limit int) ([]Poisoned, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(pick(q.all, topic, limit)), nil
}

func (q *memoryPoison) Replay(ctx context.Context, p Poisoned) error { return replay(ctx, q.bus, p) }

func (q *memoryPoison) SetAside(_ context.Context, p Poisoned) error {
	return stampingPublisher{pub: q, logger: orDiscard(q.logger)}.Publish("", setAsideMessage(p))
}

var errNoPoisonRecord = errors.New("no such poison record")

// SetAside records m, which producer could not publish to topic because of why and never
// will, in b's poison queue (PoisonQueue.SetAside), so that the producer can go on with
// the messages behind it.
func SetAside(ctx context.Context, b Bus, topic, producer string, m Message, why error) error {
	reason := "not published"
	if why != nil {
		reason = why.Error()
	}
	if err := b.Poison().SetAside(ctx, Poisoned{Message: m, Topic: topic, Group: producer, Error: reason}); err != nil {
		return fmt.Errorf("bus: set message %s aside: %w", m.ID, err)
	}
	return nil
}

// PublishOrSetAside publishes msgs to topic in order, like Publish, except that a message
// the bus refuses for good (over MaxMessageBytes, or a permanent error) is set aside in the
// poison queue as producer's (SetAside, its reason followed by where(m), which says where
// the producer keeps the original) and the others are still published: an outbox calls it
// so that one such message cannot hold back the messages behind it for ever. It returns
// the first other error (the bus is down: the caller retries the batch; messages may then
// be published twice, as Publish's at-least-once allows).
func PublishOrSetAside(ctx context.Context, b Bus, topic, producer string, msgs []Message, where func(Message) string) error {
	setAside := func(m Message, why error) error {
		if where != nil {
			why = fmt.Errorf("%w; %s", why, where(m))
		}
		return SetAside(ctx, b, topic, producer, m, why)
	}
	ok := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		if err := CheckSize(m); err != nil {
			if err := setAside(m, err); err != nil {
				return err
			}
			continue
		}
		ok = append(ok, m)
	}
	err := b.Publish(ctx, topic, ok...)
	if err == nil || !IsPermanent(err) {
		return err
	}
	// The bus refused one of them for good (e.g. a broker whose own limit is lower): find
	// it by publishing one at a time.
	for _, m := range ok {
		err := b.Publish(ctx, topic, m)
		if IsPermanent(err) {
			err = setAside(m, err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
