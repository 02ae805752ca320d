package bus_test

import (
	"context"
	"fmt"

	"github.com/simpleci/simpleci/libs/bus"
)

func Example() {
	ctx := context.Background()
	b := bus.NewGoChannel(nil) // or bus.NewKafka(bus.KafkaConfig{Brokers: ...}, logger)
	defer b.Close()

	done := make(chan struct{})
	err := b.Subscribe(ctx, "run-events", "log-service", func(ctx context.Context, m bus.Message) error {
		fmt.Printf("%s %s %s\n", m.Type, m.Key, m.Payload)
		close(done)
		return nil // an error would deliver the message again
	})
	if err != nil {
		panic(err)
	}
	err = b.Publish(ctx, "run-events", bus.Message{
		ID: "01J9Z3", Key: "run-42", Type: "simpleci.run.v1.RunQueued", Payload: []byte("..."),
	})
	if err != nil {
		panic(err)
	}
	<-done
	// Output: simpleci.run.v1.RunQueued run-42 ...
}
