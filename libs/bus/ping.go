package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// PingKafka reports whether at least one of the brokers answers a request within ctx
// (default 2 s): a readiness check. Each call opens and closes its own connections.
func PingKafka(ctx context.Context, cfg KafkaConfig) error {
	cfg, version, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	limit := 2 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		limit = max(time.Until(dl), time.Millisecond)
	}
	sc := sarama.NewConfig()
	sc.Version = version
	sc.ClientID = cfg.ClientID
	sc.Net.DialTimeout, sc.Net.ReadTimeout, sc.Net.WriteTimeout = limit, limit, limit
	// Sarama's calls take no context: the timeouts above bound them, and a cancelled ctx
	// stops waiting for the answer.
	errc := make(chan error, 1)
	go func() {
		var errs []error
		for _, addr := range cfg.Brokers {
			b := sarama.NewBroker(addr)
			if err := b.Open(sc); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", addr, err))
				continue
			}
			_, err := b.ApiVersions(&sarama.ApiVersionsRequest{})
			b.Close()
			if err == nil {
				errc <- nil
				return
			}
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		}
		errc <- fmt.Errorf("no kafka broker answers (%s): %w", strings.Join(cfg.Brokers, ","), errors.Join(errs...))
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no kafka broker answered in time (%s): %w", strings.Join(cfg.Brokers, ","), ctx.Err())
	}
}
