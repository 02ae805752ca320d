package bus_test

import (
	"fmt"
	"os"
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

func deleteCreatedTopics() error {
	brokers := os.Getenv("SIMPLECI_TEST_KAFKA_BROKERS")
	createdTopics.Lock()
	names := createdTopics.names
	createdTopics.Unlock()
	if brokers == "" || len(names) == 0 {
		return nil
	}
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Net.DialTimeout = 5 * time.Second
	sc.Admin.Timeout = 10 * time.Second
	admin, err := sarama.NewClusterAdmin(strings.Split(brokers, ","), sc)
	if err != nil {
		return err
	}
	defer admin.Close()
	for _, t := range names {
		if err := admin.DeleteTopic(t); err != nil {
			return fmt.Errorf("delete %s: %w", t, err)
		}
	}
	return nil
}
