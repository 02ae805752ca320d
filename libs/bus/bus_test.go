package bus_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
)

// fixture is one Bus implementation under the conformance suite.
type fixture struct {
	// newBus returns a fresh bus, closed at the end of the test.
	newBus func(t testing.TB) bus.Bus
	// topic returns a new unique topic name, created if the implementation needs that.
	topic func(t testing.TB) string
}

// testRetry keeps the suite fast: a failing message is poisoned after about 40 ms.
var testRetry = bus.RetryPolicy{MaxRetries: 3, InitialInterval: 5 * time.Millisecond, MaxInterval: 20 * time.Millisecond}

func goChannelFixture(opts ...func(t testing.TB) bus.GoChannelOption) fixture {
	return fixture{
		newBus: func(t testing.TB) bus.Bus {
			o := []bus.GoChannelOption{bus.WithRetry(testRetry)}
			for _, f := range opts {
				o = append(o, f(t))
			}
			b := bus.NewGoChannel(testLogger(t), o...)
			t.Cleanup(func() { _ = b.Close() })
			return b
		},
		topic: func(t testing.TB) string { return uniqueName("topic") },
	}
}

const kafkaSkip = "SIMPLECI_TEST_KAFKA_BROKERS not set: start Kafka with deploy/local/kafka.sh start"

// kafkaConfig returns the test broker's config, or skips the test without one.
func kafkaConfig(t testing.TB) bus.KafkaConfig {
	brokers := os.Getenv("SIMPLECI_TEST_KAFKA_BROKERS")
	if brokers == "" {
		if os.Getenv("SIMPLECI_TEST_REQUIRE_SERVERS") != "" {
			t.Fatal("SIMPLECI_TEST_REQUIRE_SERVERS is set but SIMPLECI_TEST_KAFKA_BROKERS is not: start Kafka with deploy/local/kafka.sh start")
		}
		t.Skip(kafkaSkip)
	}
	return bus.KafkaConfig{
		Brokers:    strings.Split(brokers, ","),
		ClientID:   "simpleci-bus-test",
		Version:    os.Getenv("SIMPLECI_TEST_KAFKA_VERSION"), // empty: bus.DefaultKafkaVersion
		Partitions: 4,
		NackDelay:  10 * time.Millisecond,
		Retry:      testRetry,
	}
}

// ensureTestTopic creates topic on the test broker in namespace and has it deleted after
// the tests.
func ensureTestTopic(t testing.TB, namespace, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := kafkaConfig(t)
	cfg.Namespace = namespace
	if err := bus.EnsureTopics(ctx, cfg, name); err != nil {
		t.Fatal(err)
	}
	createdTopics.Lock()
	createdTopics.names = append(createdTopics.names, namespace+name)
	createdTopics.Unlock()
}

// kafkaFixture makes buses and topics in namespace (bus.KafkaConfig.Namespace).
func kafkaFixture(namespace string) fixture {
	return fixture{
		newBus: func(t testing.TB) bus.Bus {
			cfg := kafkaConfig(t)
			cfg.Namespace = namespace
			cfg.PoisonTopic = uniqueName("poison") // this bus's own: other tests poison too
			ensureTestTopic(t, namespace, cfg.PoisonTopic)
			b, err := bus.NewKafka(cfg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return b
		},
		topic: func(t testing.TB) string {
			name := uniqueName("topic")
			ensureTestTopic(t, namespace, name)
			return name
		},
	}
}

func TestGoChannel(t *testing.T) { runConformance(t, goChannelFixture()) }

// TestGoChannelPoisonDir is the embedded mode's bus: its poison queue in a directory.
func TestGoChannelPoisonDir(t *testing.T) {
	runConformance(t, goChannelFixture(func(t testing.TB) bus.GoChannelOption { return bus.WithPoisonDir(t.TempDir()) }))
}

func TestKafka(t *testing.T) {
	kafkaConfig(t) // skips without a broker
	runConformance(t, kafkaFixture(""))
}

// TestKafkaNamespace: two deployments sharing a cluster under different namespaces see
// only their own messages on the same topic and group names, and poison records and
// replays speak the names without the namespace.
func TestKafkaNamespace(t *testing.T) {
	kafkaConfig(t) // skips without a broker
	nsA, nsB := uniqueName("ns-a")+".", uniqueName("ns-b")+"."
	fa, fb := kafkaFixture(nsA), kafkaFixture(nsB)
	a, b, ctx := fa.newBus(t), fb.newBus(t), testContext(t)
	topic := uniqueName("topic")
	ensureTestTopic(t, nsA, topic)
	ensureTestTopic(t, nsB, topic)
	recA, recB := newRecorder(), newRecorder()
	if err := a.Subscribe(ctx, topic, "group", recA.handler); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe(ctx, topic, "group", recB.handler); err != nil {
		t.Fatal(err)
	}
	publishN(t, ctx, a, topic, 3, "a")
	publishN(t, ctx, b, topic, 2, "b")
	if got := sortedIDs(recA.waitCount(t, 3)); !reflect.DeepEqual(got, []string{"a-0", "a-1", "a-2"}) {
		t.Errorf("namespace A handled %v, want only its own a-0..a-2", got)
	}
	if got := sortedIDs(recB.waitCount(t, 2)); !reflect.DeepEqual(got, []string{"b-0", "b-1"}) {
		t.Errorf("namespace B handled %v, want only its own b-0, b-1", got)
	}
	recA.assertNoMoreThan(t, 3)
	recB.assertNoMoreThan(t, 2)
	t.Run("poison and replay", func(t *testing.T) { testPoison(t, fa) })

	cfg := kafkaConfig(t)
	cfg.Namespace = nsB
	if err := bus.DeleteNamespace(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "namespace B's topics to be gone", func() bool {
		names, err := brokerTopics()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if strings.HasPrefix(n, nsB) {
				return false
			}
		}
		return slices.Contains(names, nsA+topic)
	})
	cfg.Namespace = ""
	if err := bus.DeleteNamespace(ctx, cfg); err == nil {
		t.Error("DeleteNamespace without a namespace: no error")
	}
	cfg.Namespace = "bad/name"
	if _, err := bus.NewKafka(cfg, nil); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("namespace with '/': %v, want an error naming the namespace", err)
	}
}

// runConformance is the behaviour every Bus must show.
func runConformance(t *testing.T, f fixture) {
	t.Run("roundtrip", func(t *testing.T) { testRoundtrip(t, f) })
	t.Run("per-key order", func(t *testing.T) { testPerKeyOrder(t, f) })
	t.Run("handler error redelivers", func(t *testing.T) { testRedelivery(t, f) })
	t.Run("every group gets every message", func(t *testing.T) { testGroups(t, f) })
	t.Run("members of a group share the messages", func(t *testing.T) { testCompetingMembers(t, f) })
	t.Run("handler publishes to its own topic", func(t *testing.T) { testPublishFromHandler(t, f) })
	t.Run("subscription ends with its context", func(t *testing.T) { testSubscriptionContext(t, f) })
	t.Run("close stops goroutines", func(t *testing.T) { testClose(t, f) })
	t.Run("rejects invalid input", func(t *testing.T) { testInvalid(t, f) })
	t.Run("a message that keeps failing is poisoned and replayed", func(t *testing.T) { testPoison(t, f) })
	t.Run("a message whose subscription ends is not poisoned", func(t *testing.T) { testNotPoisonedOnStop(t, f) })
	t.Run("a dependency outage outlasting the retries poisons nothing", func(t *testing.T) { testUnavailableNotPoisoned(t, f) })
	t.Run("an oversize message is refused whole and can be set aside", func(t *testing.T) { testTooLarge(t, f) })
	t.Run("the trace context travels in the metadata", func(t *testing.T) { testTraceContext(t, f) })
}

func testUnavailableNotPoisoned(t *testing.T, f fixture) {
	b, topic, ctx := f.newBus(t), f.topic(t), testContext(t)
	rec := newRecorder()
	var mu sync.Mutex
	attempts := 0
	// The database is down for three times the retries' budget, then back.
	h := func(ctx context.Context, m bus.Message) error {
		if m.ID == "first" {
			mu.Lock()
			attempts++
			n := attempts
			mu.Unlock()
			if n <= 3*(testRetry.MaxRetries+1) {
				return bus.Unavailable(errors.New("dial tcp 127.0.0.1:54329: connect: connection refused"))
			}
		}
		return rec.handler(ctx, m)
	}
	if err := b.Subscribe(ctx, topic, "unavailable-group", h); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, topic, bus.Message{ID: "first", Key: "k", Type: "t"}, bus.Message{ID: "second", Key: "k", Type: "t"}); err != nil {
		t.Fatal(err)
	}
	if ids := idsOf(rec.waitCount(t, 2)); !reflect.DeepEqual(ids, []string{"first", "second"}) {
		t.Fatalf("handled %v, want first, second: in order, after the outage", ids)
	}
	if got, err := b.Poison().List(ctx, topic, 0); err != nil || len(got) != 0 {
		t.Fatalf("poisoned %v (%v), want nothing", poisonIDs(got), err)
	}
}

func testRoundtrip(t *testing.T, f fixture) {
	b, topic, ctx := f.newBus(t), f.topic(t), testContext(t)
	rec := newRecorder()
	if err := b.Subscribe(ctx, topic, "roundtrip", rec.handler); err != nil {
		t.Fatal(err)
	}
	want := bus.Message{
		ID:       "evt-1",
		Key:      "run-1",
		Type:     "simpleci.run.v1.RunQueued",
		Payload:  []byte{0, 1, 2, 0xff},
		Metadata: map[string]string{"org_id": "org-1", "traceparent": "00-abc-def-01"},
	}
	if err := b.Publish(ctx, topic, want); err != nil {
		t.Fatal(err)
	}
	got := rec.waitCount(t, 1)[0]
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// No metadata, no key: arrives with nil metadata and empty key.
	plain := bus.Message{ID: "evt-2", Type: "t", Payload: []byte("x")}
	if err := b.Publish(ctx, topic, plain); err != nil {
		t.Fatal(err)
	}
	if got := rec.waitCount(t, 2)[1]; !reflect.DeepEqual(got, plain) {
		t.Fatalf("got %+v, want %+v", got, plain)
	}
}

func testPerKeyOrder(t *testing.T, f fixture) {
	b, topic, ctx := f.newBus(t), f.topic(t), testContext(t)
	rec := newRecorder()
	if err := b.Subscribe(ctx, topic, "order", rec.handler); err != nil {
		t.Fatal(err)
	}
	const n, keys = 500, 7
	msgs := make([]bus.Message, n)
	for i := range msgs {
		key := fmt.Sprintf("run-%d", i%keys)
		msgs[i] = bus.Message{ID: fmt.Sprintf("m-%d", i), Key: key, Type: "seq", Payload: []byte(strconv.Itoa(i / keys))}
	}
	// In a few batches, as an outbox forwarder would.
	for start := 0; start < n; start += 100 {
		if err := b.Publish(ctx, topic, msgs[start:min(start+100, n)]...); err != nil {
			t.Fatal(err)
		}
	}
	got := rec.waitCount(t, n)
	next := map[string]int{}
	for _, m := range got {
		seq, err := strconv.Atoi(string(m.Payload))
		if err != nil {
			t.Fatal(err)
		}
		if seq != next[m.Key] {
			t.Fatalf("key %s: got seq %d, want %d (message %s)", m.Key, seq, next[m.Key], m.ID)
		}
		next[m.Key]++
	}
	if len(next) != keys {
		t.Fatalf("got %d keys, want %d", len(next), keys)
	}
}

func testRedelivery(t *testing.T, f fixture) {
	b, topic, ctx := f.newBus(t), f.topic(t), testContext(t)
	rec := newRecorder()
	var mu sync.Mutex
	attempts := map[string]int{}
	failing := func(ctx context.Context, m bus.Message) error {
		mu.Lock()
		attempts[m.ID]++
		a := attempts[m.ID]
		mu.Unlock()
		switch {
		case m.ID == "bad" && a <= 2:
			return errors.New("transient failure")
		case m.ID == "panics" && a == 1:
			panic("handler bug")
		}
		return rec.handler(ctx, m)
	}
	if err := b.Subscribe(ctx, topic, "redelivery", failing); err != nil {
		t.Fatal(err)
	}
	err := b.Publish(ctx, topic,
		bus.Message{ID: "bad", Key: "k", Type: "t"},
		bus.Message{ID: "after-bad", Key: "k", Type: "t"},
		bus.Message{ID: "panics", Key: "k", Type: "t"},
		bus.Message{ID: "after-panic", Key: "k", Type: "t"},
	)
	if err != nil {
		t.Fatal(err)
	}
	got := rec.waitCount(t, 4)
	if ids := idsOf(got); !reflect.DeepEqual(ids, []string{"bad", "after-bad", "panics", "after-panic"}) {
		t.Fatalf("handled %v: a nacked message must be redelivered before the ones behind it", ids)
	}
	mu.Lock()
	defer mu.Unlock()
	if attempts["bad"] != 3 || attempts["panics"] != 2 || attempts["after-bad"] != 1 {
		t.Fatalf("attempts %v, want bad:3 panics:2 after-bad:1", attempts)
	}
}

func testGroups(t *testing.T, f fixture) {
	b, topic, ctx := f.newBus(t), f.topic(t), testContext(t)
	a, c := newRecorder(), newRecorder()
	if err := b.Subscribe(ctx, topic, "group-a", a.handler); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe(ctx, topic, "group-b", c.handler); err != nil {
		t.Fatal(err)
	}
	want := publishN(t, ctx, b, topic, 50, "g")
	for name, r := range map[string]*recorder{"group-a": a, "group-b": c} {
		if got := sortedIDs(r.waitCount(t, len(want))); !reflect.DeepEqual(got, sortedIDs(want)) {
			t.Fatalf("%s got %v, want %v", name, got, sortedIDs(want))
		}
	}
}

func testCompetingMembers(t *testing.T, f fixture) {
	b, topic, ctx := f.newBus(t), f.topic(t), testContext(t)
	rec := newRecorder()
	perMember := [2]int{}
	var mu sync.Mutex
	for i := range 2 {
		h := func(ctx context.Context, m bus.Message) error {
			mu.Lock()
			perMember[i]++
			mu.Unlock()
			return rec.handler(ctx, m)
		}
		if err := b.Subscribe(ctx, topic, "shared", h); err != nil {
			t.Fatal(err)
		}
	}
	want := publishN(t, ctx, b, topic, 100, "c")
	got := rec.waitCount(t, len(want))
	if !reflect.DeepEqual(sortedIDs(got), sortedIDs(want)) {
		t.Fatalf("got %v, want each of %v once", sortedIDs(got), sortedIDs(want))
	}
	rec.assertNoMoreThan(t, len(want))
	t.Logf("messages per member: %v", perMember)
}

func testPublishFromHandler(t *testing.T, f fixture) {
	b, topic, ctx := f.newBus(t), f.topic(t), testContext(t)
	rec := newRecorder()
	const last = 20
	chain := func(ctx context.Context, m bus.Message) error {
		n, _ := strconv.Atoi(string(m.Payload))
		if n < last {
			next := bus.Message{ID: fmt.Sprintf("chain-%d", n+1), Key: m.Key, Type: "chain", Payload: []byte(strconv.Itoa(n + 1))}
			if err := b.Publish(ctx, topic, next); err != nil {
				return err
			}
		}
		return rec.handler(ctx, m)
	}
	if err := b.Subscribe(ctx, topic, "chain", chain); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, topic, bus.Message{ID: "chain-0", Key: "k", Type: "chain", Payload: []byte("0")}); err != nil {
		t.Fatal(err)
	}
	rec.waitCount(t, last+1)
}

func testSubscriptionContext(t *testing.T, f fixture) {
	b, topic, ctx := f.newBus(t), f.topic(t), testContext(t)
	first, second := newRecorder(), newRecorder()
	subCtx, cancel := context.WithCancel(ctx)
	if err := b.Subscribe(subCtx, topic, "ctx", first.handler); err != nil {
		t.Fatal(err)
	}
	publishN(t, ctx, b, topic, 1, "before")
	first.waitCount(t, 1)
	cancel()
	// The group lives on: a new member gets what is published after the first one left.
	if err := b.Subscribe(ctx, topic, "ctx", second.handler); err != nil {
		t.Fatal(err)
	}
	publishN(t, ctx, b, topic, 1, "after")
	// At least once: on Kafka, "before-0" comes again if the first member's ack had not
	// reached the consumer when its context ended (the offset was never marked).
	got := second.waitCount(t, 1)
	if got[0].ID == "before-0" {
		got = second.waitCount(t, 2)[1:]
	}
	if got[0].ID != "after-0" {
		t.Fatalf("new member got %v, want after-0", idsOf(got))
	}
	first.assertNoMoreThan(t, 1)

	if err := b.Subscribe(subCtx, topic, "ctx", first.handler); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe with a cancelled context: got %v, want context.Canceled", err)
	}
}

func testClose(t *testing.T, f fixture) {
	ctx := testContext(t)
	// Warm up: package-level goroutines (Sarama's metrics) start once and stay.
	warm := f.newBus(t)
	if err := warm.Subscribe(ctx, f.topic(t), "warm", newRecorder().handler); err != nil {
		t.Fatal(err)
	}
	if err := warm.Close(); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()

	b, topic := f.newBus(t), f.topic(t)
	rec := newRecorder()
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	blocking := func(ctx context.Context, m bus.Message) error {
		if m.ID == "block-0" {
			once.Do(func() { close(started) })
			select { // a handler that runs until its context ends
			case <-ctx.Done():
			case <-release:
			}
			return ctx.Err()
		}
		return rec.handler(ctx, m)
	}
	for _, g := range []string{"close-a", "close-b"} {
		if err := b.Subscribe(ctx, topic, g, blocking); err != nil {
			t.Fatal(err)
		}
	}
	publishN(t, ctx, b, topic, 1, "block")
	waitClosed(t, started)

	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		close(release)
		t.Fatal("Close did not return within 30 s with a handler running: it must cancel the handler's context")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Publish(ctx, topic, bus.Message{ID: "x"}); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Publish after Close: got %v, want ErrClosed", err)
	}
	if err := b.Subscribe(ctx, topic, "late", rec.handler); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Subscribe after Close: got %v, want ErrClosed", err)
	}

	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%d goroutines after Close, %d before the bus: leaked\n%s", runtime.NumGoroutine(), before, buf.String())
		}
		<-tick.C
	}
}

func testInvalid(t *testing.T, f fixture) {
	b, topic, ctx := f.newBus(t), f.topic(t), testContext(t)
	h := newRecorder().handler
	cases := []struct {
		name string
		err  error
	}{
		{"publish without ID", b.Publish(ctx, topic, bus.Message{Type: "t"})},
		{"publish without topic", b.Publish(ctx, "", bus.Message{ID: "x"})},
		{"publish reserved metadata", b.Publish(ctx, topic, bus.Message{ID: "x", Metadata: map[string]string{"simpleci_key": "k"}})},
		{"subscribe without group", b.Subscribe(ctx, topic, "", h)},
		{"subscribe without topic", b.Subscribe(ctx, "", "g", h)},
		{"subscribe without handler", b.Subscribe(ctx, topic, "g", nil)},
	}
	for _, c := range cases {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

// testTooLarge: a batch with a message over MaxMessageBytes is refused before anything is
// sent (so an outbox can set the message aside and publish the rest), with a permanent
// ErrTooLarge; the message set aside is listed with its topic, producer and reason, without
// the payload the poison queue could not hold either.
func testTooLarge(t *testing.T, f fixture) {
	b, topic, ctx := f.newBus(t), f.topic(t), testContext(t)
	rec := newRecorder()
	if err := b.Subscribe(ctx, topic, "g", rec.handler); err != nil {
		t.Fatal(err)
	}
	big := bus.Message{ID: "big", Key: "k", Type: "t", Payload: make([]byte, bus.MaxMessageBytes)}
	err := b.Publish(ctx, topic, bus.Message{ID: "small-1", Key: "k", Type: "t"}, big)
	if !errors.Is(err, bus.ErrTooLarge) || !bus.IsPermanent(err) {
		t.Fatalf("publish oversize: %v, want a permanent ErrTooLarge", err)
	}
	if err := bus.SetAside(ctx, b, topic, "outbox:test", big, err); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, topic, bus.Message{ID: "small-2", Key: "k", Type: "t"}); err != nil {
		t.Fatal(err)
	}
	if got := idsOf(rec.waitCount(t, 1)); !slices.Equal(got, []string{"small-2"}) {
		t.Fatalf("delivered %v, want only small-2 (small-1 was in the refused batch)", got)
	}
	var ps []bus.Poisoned
	waitFor(t, "the record set aside", func() bool {
		ps, err = b.Poison().List(ctx, topic, 0)
		return err == nil && len(ps) == 1
	})
	p := ps[0]
	if p.Message.ID != "big" || p.Group != "outbox:test" || p.Topic != topic || len(p.Message.Payload) != 0 ||
		!strings.Contains(p.Error, "larger than the bus takes") || !strings.Contains(p.Error, "not kept") {
		t.Fatalf("record %+v", p)
	}
}

func testPoison(t *testing.T, f fixture) {
	b, topic, ctx := f.newBus(t), f.topic(t), testContext(t)
	rec := newRecorder()
	var mu sync.Mutex
	attempts := map[string]int{}
	healed := false // once set, "fails" succeeds: a message failing at the time, replayed later
	h := func(ctx context.Context, m bus.Message) error {
		mu.Lock()
		attempts[m.ID]++
		ok := healed
		mu.Unlock()
		switch {
		case m.ID == "fails" && !ok:
			return errors.New("database on fire")
		case m.ID == "undecodable":
			return bus.Permanent(errors.New("cannot parse payload"))
		case m.ID == "panics" && !ok:
			panic("handler bug")
		}
		return rec.handler(ctx, m)
	}
	if err := b.Subscribe(ctx, topic, "poison-group", h); err != nil {
		t.Fatal(err)
	}
	fails := bus.Message{ID: "fails", Key: "k", Type: "simpleci.run.v1.RunRequested", Payload: []byte{1, 2, 3},
		Metadata: map[string]string{"org_id": "org-1"}}
	err := b.Publish(ctx, topic, fails,
		bus.Message{ID: "after-fails", Key: "k", Type: "t"},
		bus.Message{ID: "undecodable", Key: "k", Type: "t", Payload: []byte("garbage")},
		bus.Message{ID: "panics", Key: "k", Type: "t"},
		bus.Message{ID: "after-all", Key: "k", Type: "t"},
	)
	if err != nil {
		t.Fatal(err)
	}
	// The partition goes on past the poisoned messages, in order.
	if ids := idsOf(rec.waitCount(t, 2)); !reflect.DeepEqual(ids, []string{"after-fails", "after-all"}) {
		t.Fatalf("handled %v, want after-fails, after-all", ids)
	}
	mu.Lock()
	want := map[string]int{"fails": testRetry.MaxRetries + 1, "undecodable": 1, "panics": testRetry.MaxRetries + 1}
	for id, n := range want {
		if attempts[id] != n {
			t.Errorf("%s handled %d times, want %d (bounded retries; a permanent error is not retried)", id, attempts[id], n)
		}
	}
	mu.Unlock()

	q := b.Poison()
	var got []bus.Poisoned
	waitFor(t, "the poison queue to hold 3 messages", func() bool {
		all, err := q.List(ctx, topic, 0)
		if err != nil {
			t.Fatal(err)
		}
		got = all
		return len(all) >= 3
	})
	if len(got) != 3 {
		t.Fatalf("poisoned %v, want 3", poisonIDs(got))
	}
	byMsg := map[string]bus.Poisoned{}
	ids := map[string]bool{}
	for _, p := range got {
		byMsg[p.Message.ID] = p
		ids[p.ID] = true
		if p.Topic != topic || p.Group != "poison-group" || p.ID == "" || time.Since(p.At) > time.Minute || time.Since(p.At) < 0 {
			t.Errorf("record %+v: want topic %s, group poison-group, an id and the time it was poisoned", p, topic)
		}
	}
	if len(ids) != 3 {
		t.Errorf("record ids %v are not unique", poisonIDs(got))
	}
	if p := byMsg["fails"]; !reflect.DeepEqual(p.Message, fails) || !strings.Contains(p.Error, "database on fire") {
		t.Errorf("poisoned %+v, want the original %+v and its error", p, fails)
	}
	if p := byMsg["undecodable"]; string(p.Message.Payload) != "garbage" || !strings.Contains(p.Error, "cannot parse payload") {
		t.Errorf("poisoned %+v, want the payload and the error", p)
	}
	if p := byMsg["panics"]; !strings.Contains(p.Error, "handler bug") {
		t.Errorf("poisoned %+v, want the panic as the error", p)
	}
	if last, err := q.List(ctx, topic, 1); err != nil || len(last) != 1 || last[0].ID != got[2].ID {
		t.Errorf("List limit 1: %v %v, want the newest %s", poisonIDs(last), err, got[2].ID)
	}
	if other, err := q.List(ctx, "another-topic", 0); err != nil || len(other) != 0 {
		t.Errorf("List of another topic: %v %v, want none", poisonIDs(other), err)
	}

	// Replay: the cause is gone, so the message now succeeds.
	mu.Lock()
	healed = true
	mu.Unlock()
	if err := q.Replay(ctx, byMsg["fails"]); err != nil {
		t.Fatal(err)
	}
	if m := rec.waitCount(t, 3)[2]; !reflect.DeepEqual(m, fails) {
		t.Fatalf("replayed %+v, want %+v", m, fails)
	}
	if err := q.Replay(ctx, bus.Poisoned{ID: "x", Message: bus.Message{ID: "y"}}); err == nil {
		t.Error("Replay of a record without its topic: no error")
	}
}

func testNotPoisonedOnStop(t *testing.T, f fixture) {
	b, topic, ctx := f.newBus(t), f.topic(t), testContext(t)
	// Two members of one group; the first delivery blocks until its member leaves. The
	// group lives on (on GoChannel a group that loses its last member mid-message loses the
	// message: it keeps nothing), so the other member must get it, and nothing is poisoned.
	rec := newRecorder()
	var mu sync.Mutex
	blocked := ""
	started := make(chan struct{})
	cancels := map[string]context.CancelFunc{}
	for _, member := range []string{"a", "b"} {
		mctx, cancel := context.WithCancel(ctx)
		cancels[member] = cancel
		h := func(ctx context.Context, m bus.Message) error {
			mu.Lock()
			first := blocked == ""
			if first {
				blocked = member
			}
			mu.Unlock()
			if first {
				close(started)
				<-ctx.Done()
				return ctx.Err()
			}
			return rec.handler(ctx, m)
		}
		if err := b.Subscribe(mctx, topic, "stop", h); err != nil {
			t.Fatal(err)
		}
	}
	publishN(t, ctx, b, topic, 1, "stop")
	waitClosed(t, started)
	mu.Lock()
	cancels[blocked]()
	mu.Unlock()
	if got := rec.waitCount(t, 1); got[0].ID != "stop-0" {
		t.Fatalf("the group's other member got %v, want stop-0", idsOf(got))
	}
	if p, err := b.Poison().List(ctx, topic, 0); err != nil || len(p) != 0 {
		t.Fatalf("poisoned %v (%v): a message whose handler was stopped is not poisoned", poisonIDs(p), err)
	}
}

func poisonIDs(ps []bus.Poisoned) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID + ":" + p.Message.ID
	}
	return out
}

// waitFor polls cond until it holds, failing after 60 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 60 s waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestKafkaConfigErrors(t *testing.T) {
	_, err := bus.NewKafka(bus.KafkaConfig{Brokers: []string{"nohost"}, Version: "x.y"}, nil)
	if err == nil || !strings.Contains(err.Error(), `broker "nohost"`) || !strings.Contains(err.Error(), `version "x.y"`) {
		t.Fatalf("got %v, want one error naming every problem", err)
	}
	if _, err := bus.NewKafka(bus.KafkaConfig{}, nil); err == nil {
		t.Fatal("no brokers: no error")
	}
}

// recorder collects handled messages and lets a test wait for a count without sleeping.
type recorder struct {
	mu     sync.Mutex
	msgs   []bus.Message
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) handler(_ context.Context, m bus.Message) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) snapshot() []bus.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bus.Message(nil), r.msgs...)
}

// waitCount waits until n messages were handled and returns them in handling order.
func (r *recorder) waitCount(t testing.TB, n int) []bus.Message {
	t.Helper()
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for {
		if got := r.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-r.notify:
		case <-timeout.C:
			got := r.snapshot()
			t.Fatalf("handled %d messages within 60 s, want %d: %v", len(got), n, idsOf(got))
		}
	}
}

// assertNoMoreThan fails if more than n messages were handled so far (it cannot wait for
// a delivery that should not happen; duplicates delivered with the originals show up).
func (r *recorder) assertNoMoreThan(t testing.TB, n int) {
	t.Helper()
	if got := r.snapshot(); len(got) > n {
		t.Fatalf("handled %d messages, want %d: %v", len(got), n, idsOf(got))
	}
}

func publishN(t testing.TB, ctx context.Context, b bus.Bus, topic string, n int, prefix string) []bus.Message {
	t.Helper()
	msgs := make([]bus.Message, n)
	for i := range msgs {
		msgs[i] = bus.Message{ID: fmt.Sprintf("%s-%d", prefix, i), Key: fmt.Sprintf("run-%d", i%10), Type: "t"}
	}
	if err := b.Publish(ctx, topic, msgs...); err != nil {
		t.Fatal(err)
	}
	return msgs
}

func idsOf(msgs []bus.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func sortedIDs(msgs []bus.Message) []string {
	ids := idsOf(msgs)
	slices.Sort(ids)
	return ids
}

func waitClosed(t testing.TB, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(60 * time.Second):
		t.Fatal("timed out after 60 s")
	}
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func uniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("simpleci-bus-test-%s-%d-%s", prefix, time.Now().UnixNano(), hex.EncodeToString(b[:]))
}

// testLogger logs Warn and above through t.Log (visible with -v or on failure).
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("SIMPLECI_TEST_BUS_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
