package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
)

// DefaultKafkaVersion is the Kafka protocol version Sarama speaks unless KafkaConfig.Version
// says otherwise: the version of the broker that deploy/local/kafka.sh runs. Sarama picks its
// request versions from it; Kafka 4 brokers reject the very old ones that Watermill's default
// (1.0) would use.
const DefaultKafkaVersion = "4.1.0"

// KafkaConfig configures NewKafka and EnsureTopics. Zero fields take the documented defaults.
type KafkaConfig struct {
	// Brokers lists bootstrap brokers as host:port. Required.
	Brokers []string
	// ClientID names this process to the brokers (logs, quotas). Default "simpleci".
	ClientID string
	// Version is the brokers' Kafka version, e.g. "3.9.0". Default DefaultKafkaVersion.
	Version string
	// Partitions is the partition count EnsureTopics gives a topic it creates. Default 12.
	Partitions int
	// ReplicationFactor is the replica count EnsureTopics gives a topic it creates. Default 1.
	ReplicationFactor int16
	// SubscribeTimeout bounds how long Subscribe waits for the group to assign partitions.
	// Default 30 s.
	SubscribeTimeout time.Duration
	// NackDelay is the wait before a nacked message is delivered again (after its retries,
	// only when the poison topic could not be written). Default 100 ms.
	NackDelay time.Duration
	// Retry bounds the retries of a failing handler before its message is poisoned.
	Retry RetryPolicy
	// PoisonTopic receives the messages the consumers gave up on. Default DefaultPoisonTopic.
	PoisonTopic string
	// Namespace is prefixed to every topic (the poison topic too) and consumer group this
	// bus uses on the brokers, so that several deployments (or test clusters) share one
	// Kafka cluster without taking each other's messages. Callers, poison records and
	// replays speak the names without it. Letters, digits, '.', '_' and '-'; default none.
	Namespace string
}

// name is topic or group t as the brokers know it.
func (c KafkaConfig) name(t string) string { return c.Namespace + t }

func (c KafkaConfig) withDefaults() (KafkaConfig, sarama.KafkaVersion, error) {
	if c.ClientID == "" {
		c.ClientID = "simpleci"
	}
	if c.Version == "" {
		c.Version = DefaultKafkaVersion
	}
	if c.Partitions == 0 {
		c.Partitions = 12
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = 1
	}
	if c.SubscribeTimeout == 0 {
		c.SubscribeTimeout = 30 * time.Second
	}
	if c.NackDelay == 0 {
		c.NackDelay = 100 * time.Millisecond
	}
	if c.PoisonTopic == "" {
		c.PoisonTopic = DefaultPoisonTopic
	}
	var problems []string
	if len(c.Brokers) == 0 {
		problems = append(problems, "no brokers (set e.g. 127.0.0.1:19092)")
	}
	for _, b := range c.Brokers {
		if b == "" || !strings.Contains(b, ":") {
			problems = append(problems, fmt.Sprintf("broker %q is not host:port", b))
		}
	}
	version, err := sarama.ParseKafkaVersion(c.Version)
	if err != nil {
		problems = append(problems, fmt.Sprintf("version %q: %v", c.Version, err))
	}
	if c.Partitions < 0 {
		problems = append(problems, fmt.Sprintf("partitions %d < 1", c.Partitions))
	}
	if c.ReplicationFactor < 0 {
		problems = append(problems, fmt.Sprintf("replication factor %d < 1", c.ReplicationFactor))
	}
	if strings.Trim(c.Namespace, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
		problems = append(problems, fmt.Sprintf("namespace %q: use letters, digits, '.', '_' and '-'", c.Namespace))
	}
	if c.SubscribeTimeout < 0 || c.NackDelay < 0 {
		problems = append(problems, "negative timeout")
	}
	if len(problems) > 0 {
		return c, version, fmt.Errorf("bus: kafka config: %s", strings.Join(problems, "; "))
	}
	return c, version, nil
}

// saramaConfig is the client configuration shared by producer, consumers and admin: every
// network call is bounded by these timeouts (Sarama's calls take no context).
func saramaConfig(c KafkaConfig, version sarama.KafkaVersion) *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = version
	sc.ClientID = c.ClientID
	sc.Net.DialTimeout = 5 * time.Second
	sc.Net.ReadTimeout = 30 * time.Second
	sc.Net.WriteTimeout = 10 * time.Second
	sc.Metadata.Timeout = 30 * time.Second // whole refresh, retries included
	sc.Admin.Timeout = 10 * time.Second

	// Producer: acknowledged by all in-sync replicas; idempotent, so a retried send neither
	// duplicates nor reorders (which needs one request in flight per connection).
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Retry.Max = 10
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Timeout = 10 * time.Second

	// Consumer: a new group starts at the oldest message, so nothing published after
	// Subscribe returned (or before, while the group did not exist) is missed. A low fetch
	// wait keeps per-message commits and catching up fast; a short session hands a dead
	// member's partitions over in seconds. Offsets are committed every second: a crash
	// redelivers up to a second of acked messages (handlers are idempotent).
	sc.Consumer.Return.Errors = true
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Offsets.AutoCommit.Interval = time.Second
	sc.Consumer.MaxWaitTime = 50 * time.Millisecond
	sc.Consumer.Group.Session.Timeout = 6 * time.Second
	sc.Consumer.Group.Heartbeat.Interval = 2 * time.Second
	return sc
}

// marshaler keys each Kafka record by Message.Key, so one key stays on one partition.
var marshaler = kafka.NewWithPartitioningMarshaler(func(_ string, m *message.Message) (string, error) {
	return m.Metadata.Get(metaKey), nil
})

// NewKafka connects to the brokers (it fails if none answers within about 30 s) and returns a
// Bus over Kafka. Subscriptions run the handler one message at a time per partition; a
// nacked message is retried on its partition, holding back the messages behind it. Topics are
// created on first use by the broker's defaults unless EnsureTopics created them before.
// A nil logger discards logs.
func NewKafka(cfg KafkaConfig, logger *slog.Logger) (Bus, error) {
	cfg, version, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	logger = orDiscard(logger)
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{
		Brokers:               cfg.Brokers,
		Marshaler:             marshaler,
		OverwriteSaramaConfig: saramaConfig(cfg, version),
	}, newSlogAdapter(logger))
	if err != nil {
		return nil, fmt.Errorf("bus: connect to kafka %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	return &kafkaBus{
		cfg:     cfg,
		version: version,
		logger:  logger,
		pub:     pub,
		closing: make(chan struct{}),
		subs:    make(map[*kafka.Subscriber]struct{}),
	}, nil
}

type kafkaBus struct {
	cfg     KafkaConfig
	version sarama.KafkaVersion
	logger  *slog.Logger
	pub     *kafka.Publisher

	pubMu     sync.RWMutex // held for reading while publishing, for writing to close pub
	pubClosed bool

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	subs    map[*kafka.Subscriber]struct{}
	wg      sync.WaitGroup // one per subscription goroutine, and watchLag's
	// subscribed are the subscriptions established, whose lag watchLag measures.
	subscribed map[subscription]struct{}
}

func (b *kafkaBus) Publish(ctx context.Context, topic string, msgs ...Message) error {
	wms, err := toWatermill(ctx, topic, msgs)
	if err != nil {
		return err
	}
	b.pubMu.RLock()
	defer b.pubMu.RUnlock()
	if b.pubClosed {
		return ErrClosed
	}
	// One message per call, so ctx is checked between sends; each send is bounded by the
	// producer's timeouts and retries.
	for i, wm := range wms {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("bus: publish to %s: %d of %d messages sent: %w", topic, i, len(wms), err)
		}
		if err := b.pub.Publish(b.cfg.name(topic), wm); err != nil {
			if errors.Is(err, sarama.ErrMessageSizeTooLarge) {
				// The broker's own limit is lower than ours: no retry will change that.
				err = Permanent(fmt.Errorf("%w: %w", ErrTooLarge, err))
			}
			return fmt.Errorf("bus: publish to %s: %d of %d messages sent: %w", topic, i, len(wms), err)
		}
	}
	return nil
}

// pubOrClosed is the producer as a message.Publisher for the poison middleware: it fails
// with ErrClosed once Close began, so the message is nacked, not lost.
func (b *kafkaBus) pubOrClosed() message.Publisher { return guardedPublisher{b} }

type guardedPublisher struct{ b *kafkaBus }

func (g guardedPublisher) Publish(topic string, msgs ...*message.Message) error {
	g.b.pubMu.RLock()
	defer g.b.pubMu.RUnlock()
	if g.b.pubClosed {
		return ErrClosed
	}
	return g.b.pub.Publish(topic, msgs...)
}

func (g guardedPublisher) Close() error { return nil }

func (b *kafkaBus) Subscribe(ctx context.Context, topic, group string, h Handler) error {
	if err := validateSubscribe(topic, group, h); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bus: subscribe to %s as %s: %w", topic, group, err)
	}
	ready := &setupSignal{ch: make(chan struct{})}
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               b.cfg.Brokers,
		Unmarshaler:           marshaler,
		OverwriteSaramaConfig: saramaConfig(b.cfg, b.version),
		ConsumerGroup:         b.cfg.name(group),
		NackResendSleep:       b.cfg.NackDelay,
		ReconnectRetrySleep:   time.Second,
		Tracer:                ready,
	}, newSlogAdapter(b.logger.With(slog.String("topic", topic), slog.String("group", group))))
	if err != nil {
		return fmt.Errorf("bus: subscribe to %s as %s: %w", topic, group, err)
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.subs[sub] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()

	r, err := newRouter(consumer{
		topic: b.cfg.name(topic), group: b.cfg.name(group), h: h, logger: b.logger, retry: b.cfg.Retry,
		poison: stampingPublisher{pub: b.pubOrClosed(), logger: b.logger}, poisonTopic: b.cfg.name(b.cfg.PoisonTopic),
	}, sub)
	if err != nil {
		b.forget(sub)
		b.wg.Done()
		return fmt.Errorf("bus: subscribe to %s as %s: %w", topic, group, err)
	}
	subCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer b.wg.Done()
		defer close(done)
		defer b.forget(sub)
		defer cancel()
		// The router subscribes and runs a handler per message; Watermill's Kafka subscriber
		// hands a partition's next message over only after the ack or nack of the one before.
		// A handler whose subscription ended mid-message nacks; the message, not committed,
		// goes to the partition's next owner.
		runRouter(subCtx, r, b.logger, topic, group)
	}()

	timer := time.NewTimer(b.cfg.SubscribeTimeout)
	defer timer.Stop()
	select {
	case <-ready.ch:
		b.mu.Lock()
		if !b.closed {
			if b.subscribed == nil {
				b.subscribed = map[subscription]struct{}{}
				b.wg.Add(1)
				go b.watchLag()
			}
			b.subscribed[subscription{topic: topic, group: group}] = struct{}{}
		}
		b.mu.Unlock()
		return nil
	case <-done:
		err = fmt.Errorf("bus: subscribe to %s as %s: the subscription ended before it was established (see the logs)", topic, group)
	case <-timer.C:
		err = fmt.Errorf("bus: subscribe to %s as %s: no partitions assigned within %s (is the broker up? see the logs)",
			topic, group, b.cfg.SubscribeTimeout)
	case <-ctx.Done():
		err = fmt.Errorf("bus: subscribe to %s as %s: %w", topic, group, ctx.Err())
	case <-b.closing:
		err = ErrClosed
	}
	cancel()
	<-done
	return err
}

// forget closes sub (waiting for its consumer to leave the group) and drops it from b.subs.
func (b *kafkaBus) forget(sub *kafka.Subscriber) {
	if err := sub.Close(); err != nil {
		b.logger.Warn("bus: close kafka subscriber", slog.Any("err", err))
	}
	b.mu.Lock()
	delete(b.subs, sub)
	b.mu.Unlock()
}

func (b *kafkaBus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.closing)
	subs := make([]*kafka.Subscriber, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()

	// Each Close leaves its group (a round trip or two): in parallel.
	var closers sync.WaitGroup
	for _, s := range subs {
		closers.Go(func() {
			if err := s.Close(); err != nil {
				b.logger.Warn("bus: close kafka subscriber", slog.Any("err", err))
			}
		})
	}
	closers.Wait()
	b.wg.Wait() // handlers returned
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	b.pubClosed = true
	if err := b.pub.Close(); err != nil {
		return fmt.Errorf("bus: close kafka producer: %w", err)
	}
	return nil
}

// setupSignal is a kafka.SaramaTracer used only for its hook into the consumer group handler:
// Sarama calls Setup once the group assigned this member its partitions (and their committed
// offsets are fetched), which is when Subscribe's subscription is established.
type setupSignal struct {
	once sync.Once
	ch   chan struct{}
}

func (s *setupSignal) WrapConsumer(c sarama.Consumer) sarama.Consumer { return c }
func (s *setupSignal) WrapPartitionConsumer(c sarama.PartitionConsumer) sarama.PartitionConsumer {
	return c
}
func (s *setupSignal) WrapSyncProducer(_ *sarama.Config, p sarama.SyncProducer) sarama.SyncProducer {
	return p
}
func (s *setupSignal) WrapConsumerGroupHandler(h sarama.ConsumerGroupHandler) sarama.ConsumerGroupHandler {
	return setupHook{ConsumerGroupHandler: h, s: s}
}

type setupHook struct {
	sarama.ConsumerGroupHandler
	s *setupSignal
}

func (h setupHook) Setup(sess sarama.ConsumerGroupSession) error {
	err := h.ConsumerGroupHandler.Setup(sess)
	if err == nil {
		h.s.once.Do(func() { close(h.s.ch) })
	}
	return err
}

// EnsureTopics creates those of topics that do not exist, with cfg.Partitions partitions and
// cfg.ReplicationFactor replicas, and waits until each has a leader for every partition. An
// existing topic is left as it is. Each broker call is bounded by the client timeouts; ctx is
// checked between calls and bounds the wait.
func EnsureTopics(ctx context.Context, cfg KafkaConfig, topics ...string) error {
	cfg, version, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	sc := saramaConfig(cfg, version)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < sc.Admin.Timeout {
		sc.Admin.Timeout = max(time.Until(dl), time.Millisecond)
	}
	admin, err := sarama.NewClusterAdmin(cfg.Brokers, sc)
	if err != nil {
		return fmt.Errorf("bus: ensure topics: connect to kafka %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	defer admin.Close()

	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("bus: ensure topics: list topics: %w", err)
	}
	named := make([]string, len(topics))
	for i, t := range topics {
		if t == "" {
			return errors.New("bus: ensure topics: empty topic name")
		}
		named[i] = cfg.name(t)
	}
	topics = named
	for _, t := range topics {
		if _, ok := existing[t]; ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("bus: ensure topics: %w", err)
		}
		err := admin.CreateTopic(t, &sarama.TopicDetail{
			NumPartitions:     int32(cfg.Partitions),
			ReplicationFactor: cfg.ReplicationFactor,
		}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("bus: ensure topics: create %s: %w", t, err)
		}
	}

	// The controller has created them; wait until the brokers serve every partition, so a
	// consumer group formed right now sees all of them.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		pending, err := leaderless(admin, topics)
		if err != nil {
			return fmt.Errorf("bus: ensure topics: describe: %w", err)
		}
		if len(pending) == 0 {
			return nil
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("bus: ensure topics: %s not ready: %w", strings.Join(pending, ", "), ctx.Err())
		case <-t.C:
		}
	}
}

// leaderless returns the topics that are unknown or have a partition without a leader.
func leaderless(admin sarama.ClusterAdmin, topics []string) ([]string, error) {
	metas, err := admin.DescribeTopics(topics)
	if err != nil {
		return nil, err
	}
	var pending []string
	for _, m := range metas {
		ready := m.Err == sarama.ErrNoError && len(m.Partitions) > 0
		for _, p := range m.Partitions {
			if p.Err != sarama.ErrNoError || p.Leader < 0 {
				ready = false
			}
		}
		if !ready {
			pending = append(pending, m.Name)
		}
	}
	return pending, nil
}

func (b *kafkaBus) Poison() PoisonQueue { return kafkaPoison{b} }

// kafkaPoison reads the poison topic as a plain consumer of every partition (no group, no
// committed offsets: listing changes nothing) and replays through the bus's producer.
type kafkaPoison struct{ b *kafkaBus }

// List reads the poison topic from its oldest retained record up to the end it had when
// List began; ctx bounds the whole read (a partition that cannot be read fails the list).
func (q kafkaPoison) List(ctx context.Context, topic string, limit int) ([]Poisoned, error) {
	sc := saramaConfig(q.b.cfg, q.b.version)
	client, err := sarama.NewClient(q.b.cfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("bus: poison list: connect to kafka: %w", err)
	}
	defer client.Close()
	poisonTopic := q.b.cfg.name(q.b.cfg.PoisonTopic)
	parts, err := client.Partitions(poisonTopic)
	if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bus: poison list: %s: %w", poisonTopic, err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("bus: poison list: %w", err)
	}
	defer consumer.Close()
	var all []Poisoned
	for _, p := range parts {
		oldest, err := client.GetOffset(poisonTopic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, fmt.Errorf("bus: poison list: %s/%d: %w", poisonTopic, p, err)
		}
		end, err := client.GetOffset(poisonTopic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("bus: poison list: %s/%d: %w", poisonTopic, p, err)
		}
		if end <= oldest {
			continue
		}
		recs, err := readPartition(ctx, consumer, poisonTopic, q.b.cfg.Namespace, p, oldest, end)
		if err != nil {
			return nil, err
		}
		all = append(all, recs...)
	}
	slices.SortStableFunc(all, func(a, b Poisoned) int { return a.At.Compare(b.At) })
	return pick(all, topic, limit), nil
}

// readPartition returns the poison records of partition p in [from, end).
// Their topics are given without namespace.
func readPartition(ctx context.Context, consumer sarama.Consumer, topic, namespace string, p int32, from, end int64) ([]Poisoned, error) {
	pc, err := consumer.ConsumePartition(topic, p, from)
	if err != nil {
		return nil, fmt.Errorf("bus: poison list: %s/%d: %w", topic, p, err)
	}
	defer pc.Close()
	var out []Poisoned
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bus: poison list: %s/%d: read up to offset %d of %d: %w", topic, p, from, end, ctx.Err())
		case err := <-pc.Errors():
			return nil, fmt.Errorf("bus: poison list: %s/%d: %w", topic, p, err)
		case km := <-pc.Messages():
			// Transaction markers and compacted records leave gaps: the end is an offset bound.
			if wm, err := marshaler.Unmarshal(km); err == nil {
				rec := poisonRecord(fmt.Sprintf("%d-%d", p, km.Offset), wm)
				rec.Topic = strings.TrimPrefix(rec.Topic, namespace)
				rec.Group = strings.TrimPrefix(rec.Group, namespace)
				if rec.At.IsZero() {
					rec.At = km.Timestamp
				}
				out = append(out, rec)
			}
			from = km.Offset + 1
			if from >= end {
				return out, nil
			}
		}
	}
}

// Replay publishes p's message to its original topic.
func (q kafkaPoison) Replay(ctx context.Context, p Poisoned) error { return replay(ctx, q.b, p) }

func (q kafkaPoison) SetAside(_ context.Context, p Poisoned) error {
	p.Topic, p.Group = q.b.cfg.name(p.Topic), q.b.cfg.name(p.Group) // as the poison middleware records them
	return stampingPublisher{pub: q.b.pubOrClosed(), logger: q.b.logger}.Publish(q.b.cfg.name(q.b.cfg.PoisonTopic), setAsideMessage(p))
}

// DeleteNamespace deletes every topic of cfg.Namespace (which must not be empty): the
// end of a deployment that shared a cluster, such as a test run's. Consumer groups are
// left to expire with the broker's offset retention.
func DeleteNamespace(ctx context.Context, cfg KafkaConfig) error {
	cfg, version, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if cfg.Namespace == "" {
		return errors.New("bus: delete namespace: no namespace given (that would be every topic)")
	}
	sc := saramaConfig(cfg, version)
	admin, err := sarama.NewClusterAdmin(cfg.Brokers, sc)
	if err != nil {
		return fmt.Errorf("bus: delete namespace: connect to kafka %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	defer admin.Close()
	topics, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("bus: delete namespace: list topics: %w", err)
	}
	for t := range topics {
		if !strings.HasPrefix(t, cfg.Namespace) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("bus: delete namespace %s: %w", cfg.Namespace, err)
		}
		if err := admin.DeleteTopic(t); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return fmt.Errorf("bus: delete namespace %s: topic %s: %w", cfg.Namespace, t, err)
		}
	}
	return nil
}
