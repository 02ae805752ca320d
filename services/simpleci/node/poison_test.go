package node

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/node/nodebus"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
)

// TestAdminPoisonEmbedded: the embedded bus of a data directory poisons into the directory,
// `simpleci admin poison list --data` reads it from outside the bus, and `replay` is
// carried out by the running bus.
func TestAdminPoisonEmbedded(t *testing.T) {
	data := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := bus.NewGoChannel(nil, append(nodebus.EmbeddedOptions(data),
		bus.WithRetry(bus.RetryPolicy{MaxRetries: 2, InitialInterval: time.Millisecond}))...)
	defer b.Close()
	var healed atomic.Bool
	handled := make(chan string, 10)
	err := b.Subscribe(ctx, event.TopicRunRequests, "scheduler", event.Consumer(event.On(func(_ context.Context, r *eventsv1.RunRequested) error {
		if !healed.Load() {
			return errors.New("resolve project: project service unavailable")
		}
		handled <- r.GetRunId()
		return nil
	})))
	if err != nil {
		t.Fatal(err)
	}
	admin := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := Admin(append([]string{"poison"}, args...), &out, &errOut); err != nil {
			t.Fatalf("admin poison %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	if out := admin("list", "--data", data); strings.Count(out, "\n") != 1 {
		t.Fatalf("list of an empty queue: %q, want the header only", out)
	}

	req, err := event.Encode("run-1", "run-1", &eventsv1.RunRequested{RunId: "run-1", ProjectId: "p"})
	if err != nil {
		t.Fatal(err)
	}
	garbage := bus.Message{ID: "garbage-1", Key: "run-2", Type: req.Type, Payload: []byte{0xff, 0xff}}
	if err := b.Publish(ctx, event.TopicRunRequests, req, garbage); err != nil {
		t.Fatal(err)
	}
	var recordID string
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := admin("list", "--data", data, "--topic", event.TopicRunRequests)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) == 3 {
			for _, l := range lines[1:] {
				f := strings.Fields(l)
				if f[1] != event.TopicRunRequests || f[2] != "scheduler" || f[3] != req.Type {
					t.Fatalf("record %q: want topic, group and type", l)
				}
				if f[4] == "run-1" {
					recordID = f[0]
					if !strings.Contains(l, "project service unavailable") {
						t.Fatalf("record %q: want the handler's error", l)
					}
				} else if f[4] != "garbage-1" || !strings.Contains(l, "decode") {
					t.Fatalf("record %q: want the garbage message and its decode error", l)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("poison list after 30 s:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out := admin("list", "--data", data, "--topic", event.TopicLogs); strings.Count(out, "\n") != 1 {
		t.Fatalf("list --topic of another topic: %q", out)
	}

	healed.Store(true)
	// Flags after the id, as people type it.
	if out := admin("replay", recordID, "--data", data); !strings.Contains(out, "queued for replay") {
		t.Fatalf("replay: %q", out)
	}
	select {
	case got := <-handled:
		if got != "run-1" {
			t.Fatalf("replayed %s, want run-1", got)
		}
	case <-ctx.Done():
		t.Fatal("the running bus did not replay the request")
	}
	var out, errOut bytes.Buffer
	if err := Admin([]string{"poison", "replay", "--data", data, "no-such-record"}, &out, &errOut); err == nil {
		t.Fatal("replay of an unknown record: no error")
	}
}
