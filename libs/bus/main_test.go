package bus_test

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// createdTopics are the Kafka topics this test run created, deleted when it ends so that
// the shared test broker does not collect a few dozen topics per run.
var createdTopics struct {
	sync.Mutex
	names []string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := deleteCreatedTopics(); err != nil {
		fmt.Fprintf(os.Stderr, "bus tests: cleaning up test topics: %v\n", err)
	}
	os.Exit(code)
}

// brokerTopics lists the test broker's topics.
func brokerTopics() ([]string, error) {
	admin, err := sarama.NewClusterAdmin(strings.Split(os.Getenv("SIMPLECI_TEST_KAFKA_BROKERS"), ","), adminConfig())
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	topics, err := admin.ListTopics()
	return slices.Collect(maps.Keys(topics)), err
}

func adminConfig() *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Net.DialTimeout = 5 * time.Second
	sc.Admin.Timeout = 10 * time.Second
	return sc
}

func deleteCreatedTopics() error {
	brokers := os.Getenv("SIMPLECI_TEST_KAFKA_BROKERS")
	createdTopics.Lock()
	names := createdTopics.names
	createdTopics.Unlock()
	if brokers == "" || len(names) == 0 {
		return nil
	}
	admin, err := sarama.NewClusterAdmin(strings.Split(brokers, ","), adminConfig())
	if err != nil {
		return err
	}
	defer admin.Close()
	for _, t := range names {
		if err := admin.DeleteTopic(t); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return fmt.Errorf("delete %s: %w", t, err)
		}
	}
	return nil
}
