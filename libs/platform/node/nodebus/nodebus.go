// Package nodebus opens a node process's one event bus: Kafka when brokers are
// configured (its topics created at start, the brokers one of the readiness checks),
// else the in-process bus.
package nodebus

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/node"
)

// Open returns the process's bus, opened on first use and closed in the last shutdown
// phase, before the databases.
func Open(ctx context.Context, env *node.Env) (bus.Bus, error) {
	v, err := env.Shared("bus", node.CloseTransport, func() (any, func(), error) {
		brokers := env.Config.KafkaBrokers
		if len(brokers) == 0 {
			b := bus.NewGoChannel(env.Log, EmbeddedOptions(env.Config.DataDir)...)
			return b, func() { b.Close() }, nil
		}
		kc := bus.KafkaConfig{Brokers: brokers, ClientID: "simpleci", Namespace: env.Config.KafkaNamespace}
		ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err := bus.EnsureTopics(ectx, kc, event.Topics...)
		cancel()
		if err != nil {
			return nil, nil, fmt.Errorf("kafka topics: %w", err)
		}
		b, err := bus.NewKafka(kc, env.Log)
		if err != nil {
			return nil, nil, fmt.Errorf("kafka: %w", err)
		}
		env.Checks.Add("kafka", func(ctx context.Context) error { return bus.PingKafka(ctx, kc) })
		return b, func() { b.Close() }, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(bus.Bus), nil
}

// PoisonDir is where the in-process bus of a data directory keeps its poison queue, for
// `simpleci admin poison --data` to read from another process.
func PoisonDir(dataDir string) string { return filepath.Join(dataDir, "poison") }

// EmbeddedOptions configures the in-process bus: with a data directory, its poison queue
// is kept there (bus.WithPoisonDir); without one, in memory.
func EmbeddedOptions(dataDir string) []bus.GoChannelOption {
	if dataDir == "" {
		return nil
	}
	return []bus.GoChannelOption{bus.WithPoisonDir(PoisonDir(dataDir))}
}
