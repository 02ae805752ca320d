package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/simpleci/simpleci/libs/bus"
)

// TestKafkaConsumerLag: the lag a Kafka bus reports for its group is the messages it has
// not committed: all of them while the handler holds them, none once it acked them.
func TestKafkaConsumerLag(t *testing.T) {
	kafkaConfig(t) // skips without a broker
	f := kafkaFixture("")
	b, topic, ctx := f.newBus(t), f.topic(t), testContext(t)
	group := uniqueName("lag")
	release := make(chan struct{})
	held := func(ctx context.Context, _ bus.Message) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := b.Subscribe(ctx, topic, group, held); err != nil {
		t.Fatal(err)
	}
	publishN(t, ctx, b, topic, 8, "lag")
	waitLag(t, group, topic, 8)
	close(release)
	waitLag(t, group, topic, 0)
}

// waitLag waits up to 40 s (the bus measures every 10 s) for group's lag on topic to read want.
func waitLag(t *testing.T, group, topic string, want float64) {
	t.Helper()
	var got float64 = -1
	for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		mfs, err := prometheus.DefaultGatherer.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "simpleci_kafka_consumer_lag_messages" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, lp := range m.GetLabel() {
					labels[lp.GetName()] = lp.GetValue()
				}
				if labels["group"] == group && labels["topic"] == topic {
					got = m.GetGauge().GetValue()
				}
			}
		}
		if got == want {
			return
		}
	}
	t.Fatalf("simpleci_kafka_consumer_lag_messages{group=%q,topic=%q} = %g, want %g", group, topic, got, want)
}
