package bus

import (
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// consumerLag is how many messages each consumer group of this process has yet to
// commit on its topic, summed over the partitions (docs/operations.md, "Metrics"). The
// group and the topic are the names the services subscribe with (fixed in code; the
// deployment's namespace is left out), so the labels are bounded.
var consumerLag = promauto.NewGaugeVec(prometheus.GaugeOpts{
	Namespace: "simpleci", Subsystem: "kafka", Name: "consumer_lag_messages",
	Help: "Messages of a topic its consumer group has not committed yet (newest offset minus committed offset, over the partitions), by group and topic.",
}, []string{"group", "topic"})

// lagEvery is how often a Kafka bus measures its groups' lag.
const lagEvery = 10 * time.Second

type subscription struct{ topic, group string }

// watchLag measures the lag of b's subscriptions now and every lagEvery until b closes.
// A measurement that fails drops the group's series (missing, not stale) until one
// succeeds. It runs in one goroutine of b (b.wg), started by the first Subscribe.
func (b *kafkaBus) watchLag() {
	defer b.wg.Done()
	var client sarama.Client
	var admin sarama.ClusterAdmin
	defer func() {
		if admin != nil {
			admin.Close() // closes client too
		}
	}()
	t := time.NewTicker(lagEvery)
	defer t.Stop()
	for {
		if admin == nil {
			var err error
			if client, err = sarama.NewClient(b.cfg.Brokers, saramaConfig(b.cfg, b.version)); err == nil {
				if admin, err = sarama.NewClusterAdminFromClient(client); err != nil {
					client.Close()
				}
			}
			if err != nil {
				b.logger.Debug("bus: measure consumer lag: connect", slog.Any("err", err))
			}
		}
		if admin != nil {
			b.mu.Lock()
			subs := make([]subscription, 0, len(b.subscribed))
			for s := range b.subscribed {
				subs = append(subs, s)
			}
			b.mu.Unlock()
			for _, s := range subs {
				lag, err := b.lag(client, admin, s)
				if err != nil {
					// Missing, not stale; the metadata may be what is out of date (a
					// leader moved): refreshed for the next measurement. Logged at debug:
					// during a Kafka outage the consumers already say so.
					consumerLag.DeleteLabelValues(s.group, s.topic)
					_ = client.RefreshMetadata(b.cfg.name(s.topic))
					b.logger.Debug("bus: measure consumer lag", slog.String("group", s.group), slog.String("topic", s.topic), slog.Any("err", err))
					continue
				}
				consumerLag.WithLabelValues(s.group, s.topic).Set(float64(lag))
			}
		}
		select {
		case <-b.closing:
			return
		case <-t.C:
		}
	}
}

// lag sums, over the partitions of s's topic, the newest offset minus the group's
// committed one (a partition the group never committed counts from its oldest offset,
// where a new group starts).
func (b *kafkaBus) lag(client sarama.Client, admin sarama.ClusterAdmin, s subscription) (int64, error) {
	topic, group := b.cfg.name(s.topic), b.cfg.name(s.group)
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0, err
	}
	offsets, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	if err != nil {
		return 0, err
	}
	var lag int64
	for _, p := range parts {
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		committed := int64(-1)
		if blk := offsets.GetBlock(topic, p); blk != nil {
			committed = blk.Offset
		}
		if committed < 0 {
			if committed, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
				return 0, err
			}
		}
		lag += max(newest-committed, 0)
	}
	return lag, nil
}
