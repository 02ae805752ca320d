// Package eventstoretest is the conformance suite every eventstore.Store
// implementation must pass, plus shared benchmarks.
//
// An implementation's test calls Run with a constructor that returns a fresh,
// empty, migrated store for each subtest:
//
//	func TestConformance(t *testing.T) {
//		eventstoretest.Run(t, func(t *testing.T) eventstore.Store { ... })
//	}
package eventstoretest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/eventstore"
)

// visibilityTimeout bounds how long the suite waits for appended events to
// show up in ReadAll. PostgreSQL's ReadAll hides events while older
// transactions anywhere on the server are open (tests of other packages may
// share the server), so ReadAll is polled rather than read once.
const visibilityTimeout = 20 * time.Second

// Run runs the conformance suite. newStore must return a fresh, empty,
// migrated store; it is called once per subtest with the subtest's t.
func Run(t *testing.T, newStore func(t *testing.T) eventstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s eventstore.Store)
	}{
		{"AppendAndReadStream", testAppendAndReadStream},
		{"ReadStreamFromVersion", testReadStreamFromVersion},
		{"ExpectedVersion", testExpectedVersion},
		{"AppendNothing", testAppendNothing},
		{"InvalidAppend", testInvalidAppend},
		{"ConcurrentAppendersOneWinnerPerVersion", testConcurrentAppenders},
		{"ConcurrentExpectAny", testConcurrentExpectAny},
		{"ReadAllOrderAndPaging", testReadAllOrderAndPaging},
		{"ReadAllTailWhileAppending", testReadAllTailWhileAppending},
		{"SubscribeFromPosition", testSubscribeFromPosition},
		{"IdempotentAppend", testIdempotentAppend},
		{"ConcurrentRedelivery", testConcurrentRedelivery},
		{"RoundTripBytes", testRoundTripBytes},
		{"CanceledContext", testCanceledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newID returns a random event id; tests never reuse ids by accident.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newEvent(typ string, payload string) eventstore.Event {
	return eventstore.Event{
		ID:       newID(),
		Type:     typ,
		Payload:  []byte(payload),
		Metadata: map[string]string{"org_id": "org-1", "project_id": "project-1"},
	}
}

func mustAppend(t *testing.T, s eventstore.Store, stream string, expected int64, events ...eventstore.Event) int64 {
	t.Helper()
	v, err := s.Append(testContext(t), stream, expected, events...)
	if err != nil {
		t.Fatalf("Append(%s, %d, %d events): %v", stream, expected, len(events), err)
	}
	return v
}

func mustReadStream(t *testing.T, s eventstore.Store, stream string, from int64) []eventstore.Event {
	t.Helper()
	events, err := s.ReadStream(testContext(t), stream, from)
	if err != nil {
		t.Fatalf("ReadStream(%s, %d): %v", stream, from, err)
	}
	return events
}

func mustVersion(t *testing.T, s eventstore.Store, stream string) int64 {
	t.Helper()
	v, err := s.StreamVersion(testContext(t), stream)
	if err != nil {
		t.Fatalf("StreamVersion(%s): %v", stream, err)
	}
	return v
}

// readAllUntil pages through ReadAll from after with page size limit until
// it has collected want events, waiting up to visibilityTimeout.
func readAllUntil(t *testing.T, s eventstore.Store, after int64, limit, want int) []eventstore.Event {
	t.Helper()
	ctx := testContext(t)
	deadline := time.Now().Add(visibilityTimeout)
	var got []eventstore.Event
	for len(got) < want {
		page, err := s.ReadAll(ctx, after, limit)
		if err != nil {
			t.Fatalf("ReadAll(%d, %d): %v", after, limit, err)
		}
		if len(page) > limit {
			t.Fatalf("ReadAll(%d, %d) returned %d events", after, limit, len(page))
		}
		if len(page) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("ReadAll: have %d events after %v, want %d", len(got), visibilityTimeout, want)
			}
			time.Sleep(5 * time.Millisecond) // poll for a condition, bounded by deadline
			continue
		}
		got = append(got, page...)
		after = page[len(page)-1].Position
	}
	return got
}

// checkEvent compares what a store returned with what was appended.
func checkEvent(t *testing.T, got, want eventstore.Event, stream string, version int64) {
	t.Helper()
	if got.ID != want.ID || got.Type != want.Type || got.StreamID != stream || got.Version != version {
		t.Errorf("event = {ID %s Type %s Stream %s Version %d}, want {ID %s Type %s Stream %s Version %d}",
			got.ID, got.Type, got.StreamID, got.Version, want.ID, want.Type, stream, version)
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		t.Errorf("event %s payload = %x, want %x", want.ID, got.Payload, want.Payload)
	}
	if len(want.Payload) == 0 && got.Payload != nil {
		t.Errorf("event %s: empty payload read back as %#v, want nil", want.ID, got.Payload)
	}
	if !maps.Equal(got.Metadata, want.Metadata) {
		t.Errorf("event %s metadata = %q, want %q", want.ID, got.Metadata, want.Metadata)
	}
	if len(want.Metadata) == 0 && got.Metadata != nil {
		t.Errorf("event %s: empty metadata read back as %#v, want nil", want.ID, got.Metadata)
	}
	if got.Position <= 0 {
		t.Errorf("event %s position = %d, want > 0", want.ID, got.Position)
	}
	if got.RecordedAt.IsZero() || got.RecordedAt.Location() != time.UTC {
		t.Errorf("event %s RecordedAt = %v, want a UTC time", want.ID, got.RecordedAt)
	}
	if d := time.Since(got.RecordedAt); d < -time.Minute || d > 10*time.Minute {
		t.Errorf("event %s RecordedAt = %v, not around now", want.ID, got.RecordedAt)
	}
}

func testAppendAndReadStream(t *testing.T, s eventstore.Store) {
	const stream = "run-1"
	if v := mustVersion(t, s, stream); v != 0 {
		t.Fatalf("StreamVersion of a new stream = %d, want 0", v)
	}
	if got := mustReadStream(t, s, stream, 1); len(got) != 0 {
		t.Fatalf("ReadStream of a new stream = %d events, want 0", len(got))
	}

	first := []eventstore.Event{newEvent("RunRequested", "a"), newEvent("RunStarted", "b"), newEvent("StepStarted", "c")}
	first[1].Version, first[1].Position, first[1].StreamID = 99, 99, "ignored" // set by the store
	if v := mustAppend(t, s, stream, eventstore.ExpectNoStream, first...); v != 3 {
		t.Fatalf("Append to a new stream returned version %d, want 3", v)
	}
	second := []eventstore.Event{newEvent("StepFinished", "d"), newEvent("RunFinished", "e")}
	if v := mustAppend(t, s, stream, 3, second...); v != 5 {
		t.Fatalf("second Append returned version %d, want 5", v)
	}
	other := newEvent("RunRequested", "other")
	mustAppend(t, s, "run-2", eventstore.ExpectNoStream, other)

	want := append(first, second...)
	got := mustReadStream(t, s, stream, 1)
	if len(got) != len(want) {
		t.Fatalf("ReadStream = %d events, want %d", len(got), len(want))
	}
	for i := range want {
		checkEvent(t, got[i], want[i], stream, int64(i+1))
		if i > 0 && got[i].Position <= got[i-1].Position {
			t.Errorf("positions not increasing within the stream: %d then %d", got[i-1].Position, got[i].Position)
		}
	}
	if v := mustVersion(t, s, stream); v != 5 {
		t.Errorf("StreamVersion = %d, want 5", v)
	}
	if v := mustVersion(t, s, "run-2"); v != 1 {
		t.Errorf("StreamVersion(run-2) = %d, want 1", v)
	}
}

func testReadStreamFromVersion(t *testing.T, s eventstore.Store) {
	const stream = "run-from"
	var events []eventstore.Event
	for i := range 5 {
		events = append(events, newEvent("E", fmt.Sprint(i)))
	}
	mustAppend(t, s, stream, eventstore.ExpectNoStream, events...)
	for _, tc := range []struct {
		from      int64
		wantFirst int64
		wantLen   int
	}{
		{-5, 1, 5}, {0, 1, 5}, {1, 1, 5}, {3, 3, 3}, {5, 5, 1}, {6, 0, 0}, {100, 0, 0},
	} {
		t.Run(fmt.Sprintf("from=%d", tc.from), func(t *testing.T) {
			got := mustReadStream(t, s, stream, tc.from)
			if len(got) != tc.wantLen {
				t.Fatalf("ReadStream(from %d) = %d events, want %d", tc.from, len(got), tc.wantLen)
			}
			for i, e := range got {
				v := tc.wantFirst + int64(i)
				checkEvent(t, e, events[v-1], stream, v)
			}
		})
	}
}

func testExpectedVersion(t *testing.T, s eventstore.Store) {
	const stream = "run-ev"
	mustAppend(t, s, stream, eventstore.ExpectNoStream, newEvent("A", "1"), newEvent("B", "2"))

	for _, tc := range []struct {
		name     string
		expected int64
		wantErr  error
		wantV    int64
	}{
		{"NoStreamOnExistingStream", eventstore.ExpectNoStream, eventstore.ErrConcurrency, 0},
		{"TooLow", 1, eventstore.ErrConcurrency, 0},
		{"TooHigh", 3, eventstore.ErrConcurrency, 0},
		{"FarTooHigh", 1000, eventstore.ErrConcurrency, 0},
		{"Exact", 2, nil, 3},
		{"Stale", 2, eventstore.ErrConcurrency, 0},
		{"Any", eventstore.ExpectAny, nil, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := mustVersion(t, s, stream)
			v, err := s.Append(testContext(t), stream, tc.expected, newEvent("C", tc.name))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Append(expected %d) error = %v, want %v", tc.expected, err, tc.wantErr)
			}
			if v != tc.wantV {
				t.Errorf("Append(expected %d) = %d, want %d", tc.expected, v, tc.wantV)
			}
			after := mustVersion(t, s, stream)
			if tc.wantErr != nil && after != before {
				t.Errorf("failed Append changed the version from %d to %d", before, after)
			}
		})
	}

	t.Run("AnyOnNewStream", func(t *testing.T) {
		if v := mustAppend(t, s, "run-ev-any", eventstore.ExpectAny, newEvent("A", "")); v != 1 {
			t.Errorf("ExpectAny on a new stream = %d, want 1", v)
		}
	})
	t.Run("VersionOnNewStream", func(t *testing.T) {
		_, err := s.Append(testContext(t), "run-ev-new", 1, newEvent("A", ""))
		if !errors.Is(err, eventstore.ErrConcurrency) {
			t.Errorf("expected version 1 on a new stream: error = %v, want ErrConcurrency", err)
		}
		if v := mustVersion(t, s, "run-ev-new"); v != 0 {
			t.Errorf("stream version = %d, want 0", v)
		}
	})
}

func testAppendNothing(t *testing.T, s eventstore.Store) {
	const stream = "run-nothing"
	if v := mustAppend(t, s, stream, eventstore.ExpectNoStream); v != 0 {
		t.Errorf("empty Append to a new stream = %d, want 0", v)
	}
	mustAppend(t, s, stream, eventstore.ExpectNoStream, newEvent("A", ""))
	if v := mustAppend(t, s, stream, 1); v != 1 {
		t.Errorf("empty Append = %d, want 1", v)
	}
	if v := mustAppend(t, s, stream, eventstore.ExpectAny); v != 1 {
		t.Errorf("empty Append(ExpectAny) = %d, want 1", v)
	}
	if _, err := s.Append(testContext(t), stream, 7); !errors.Is(err, eventstore.ErrConcurrency) {
		t.Errorf("empty Append with a wrong expected version: error = %v, want ErrConcurrency", err)
	}
	if v := mustVersion(t, s, stream); v != 1 {
		t.Errorf("version = %d, want 1", v)
	}
}

func testInvalidAppend(t *testing.T, s eventstore.Store) {
	dup := newEvent("A", "")
	for _, tc := range []struct {
		name     string
		stream   string
		expected int64
		events   []eventstore.Event
	}{
		{"EmptyStream", "", eventstore.ExpectAny, []eventstore.Event{newEvent("A", "")}},
		{"ExpectedBelowAny", "run-x", -2, []eventstore.Event{newEvent("A", "")}},
		{"EmptyID", "run-x", eventstore.ExpectAny, []eventstore.Event{{Type: "A"}}},
		{"EmptyType", "run-x", eventstore.ExpectAny, []eventstore.Event{{ID: newID()}}},
		{"SameIDTwice", "run-x", eventstore.ExpectAny, []eventstore.Event{dup, dup}},
		{"MetadataInvalidUTF8", "run-x", eventstore.ExpectAny, []eventstore.Event{{ID: newID(), Type: "A", Metadata: map[string]string{"k": "\xff\xfe"}}}},
		{"MetadataKeyInvalidUTF8", "run-x", eventstore.ExpectAny, []eventstore.Event{{ID: newID(), Type: "A", Metadata: map[string]string{"\xc3": "v"}}}},
		{"MetadataNUL", "run-x", eventstore.ExpectAny, []eventstore.Event{{ID: newID(), Type: "A", Metadata: map[string]string{"k": "a\x00b"}}}},
		{"SecondEventInvalid", "run-x", eventstore.ExpectAny, []eventstore.Event{newEvent("A", ""), {ID: newID()}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Append(testContext(t), tc.stream, tc.expected, tc.events...)
			if !errors.Is(err, eventstore.ErrInvalidArgument) {
				t.Errorf("error = %v, want ErrInvalidArgument", err)
			}
		})
	}
	if v := mustVersion(t, s, "run-x"); v != 0 {
		t.Errorf("invalid appends wrote events: version = %d", v)
	}
	if _, err := s.ReadAll(testContext(t), 0, 0); !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Errorf("ReadAll with limit 0: error = %v, want ErrInvalidArgument", err)
	}
}

// testConcurrentAppenders races goroutines on one stream, each appending at
// the version it last read: exactly one append may win each version.
func testConcurrentAppenders(t *testing.T, s eventstore.Store) {
	const (
		stream     = "run-race"
		goroutines = 8
		attempts   = 50
	)
	ctx := testContext(t)
	var (
		mu      sync.Mutex
		winners = map[int64][]string{} // version -> ids of the winning appends
		wg      sync.WaitGroup
		errs    = make(chan error, goroutines)
	)
	for g := range goroutines {
		wg.Go(func() {
			for a := range attempts {
				v, err := s.StreamVersion(ctx, stream)
				if err != nil {
					errs <- err
					return
				}
				e := newEvent("Raced", fmt.Sprintf("g%d-a%d", g, a))
				got, err := s.Append(ctx, stream, v, e)
				switch {
				case errors.Is(err, eventstore.ErrConcurrency):
				case err != nil:
					errs <- fmt.Errorf("goroutine %d attempt %d: %w", g, a, err)
					return
				case got != v+1:
					errs <- fmt.Errorf("Append(expected %d) = %d, want %d", v, got, v+1)
					return
				default:
					mu.Lock()
					winners[got] = append(winners[got], e.ID)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	final := mustVersion(t, s, stream)
	if int64(len(winners)) != final {
		t.Fatalf("%d versions won, stream is at %d", len(winners), final)
	}
	if final < attempts {
		// Every round of attempts has at least one winner.
		t.Errorf("only %d appends succeeded out of %d rounds", final, attempts)
	}
	events := mustReadStream(t, s, stream, 1)
	if int64(len(events)) != final {
		t.Fatalf("ReadStream = %d events, version %d", len(events), final)
	}
	for i, e := range events {
		v := int64(i + 1)
		if e.Version != v {
			t.Fatalf("event %d has version %d: gap or duplicate", i, e.Version)
		}
		if ids := winners[v]; len(ids) != 1 || ids[0] != e.ID {
			t.Errorf("version %d: winners %v, stored %s", v, ids, e.ID)
		}
	}
	t.Logf("%d of %d appends won", final, goroutines*attempts)
}

func testConcurrentExpectAny(t *testing.T, s eventstore.Store) {
	const (
		stream     = "run-any"
		goroutines = 8
		appends    = 25
	)
	ctx := testContext(t)
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*appends)
	for range goroutines {
		wg.Go(func() {
			for range appends {
				if _, err := s.Append(ctx, stream, eventstore.ExpectAny, newEvent("A", ""), newEvent("B", "")); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Append(ExpectAny): %v", err)
	}
	events := mustReadStream(t, s, stream, 1)
	if len(events) != goroutines*appends*2 {
		t.Fatalf("stream has %d events, want %d", len(events), goroutines*appends*2)
	}
	for i, e := range events {
		if e.Version != int64(i+1) {
			t.Fatalf("event %d has version %d", i, e.Version)
		}
		// The two events of one append are adjacent.
		if i%2 == 1 && (e.Type != "B" || events[i-1].Type != "A") {
			t.Fatalf("events %d,%d are %s,%s: appends interleaved", i-1, i, events[i-1].Type, e.Type)
		}
	}
}

func testReadAllOrderAndPaging(t *testing.T, s eventstore.Store) {
	if got, err := s.ReadAll(testContext(t), 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("ReadAll on an empty store = %d events, %v", len(got), err)
	}
	// Interleave streams and batch sizes; remember the append order.
	type appended struct {
		e       eventstore.Event
		stream  string
		version int64
	}
	var want []appended
	for round := range 4 {
		for _, stream := range []string{"run-a", "run-b", "run-c"} {
			n := 1 + (round+len(stream))%3
			var batch []eventstore.Event
			for i := range n {
				batch = append(batch, newEvent("E", fmt.Sprintf("%s-%d-%d", stream, round, i)))
			}
			v := mustAppend(t, s, stream, eventstore.ExpectAny, batch...)
			for i, e := range batch {
				want = append(want, appended{e, stream, v - int64(n-1-i)})
			}
		}
	}

	all := readAllUntil(t, s, 0, 1000, len(want))
	if len(all) != len(want) {
		t.Fatalf("ReadAll = %d events, want %d", len(all), len(want))
	}
	for i, w := range want {
		checkEvent(t, all[i], w.e, w.stream, w.version)
		if i > 0 && all[i].Position <= all[i-1].Position {
			t.Fatalf("positions not increasing: %d then %d", all[i-1].Position, all[i].Position)
		}
	}

	for _, limit := range []int{1, 2, 3, 7, len(want), len(want) + 1} {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			paged := readAllUntil(t, s, 0, limit, len(want))
			for i := range want {
				if paged[i].ID != all[i].ID || paged[i].Position != all[i].Position {
					t.Fatalf("page read %d = %s@%d, want %s@%d", i, paged[i].ID, paged[i].Position, all[i].ID, all[i].Position)
				}
			}
			rest, err := s.ReadAll(testContext(t), paged[len(paged)-1].Position, limit)
			if err != nil || len(rest) != 0 {
				t.Fatalf("ReadAll after the last event = %d events, %v", len(rest), err)
			}
		})
	}

	t.Run("FromMiddle", func(t *testing.T) {
		mid := all[len(all)/2].Position
		got := readAllUntil(t, s, mid, 100, len(all)-len(all)/2-1)
		if got[0].ID != all[len(all)/2+1].ID {
			t.Errorf("ReadAll(after %d) starts at %s, want %s", mid, got[0].ID, all[len(all)/2+1].ID)
		}
	})
}

// testReadAllTailWhileAppending follows ReadAll from its last position while
// writers append: the follower must end up with every event exactly once, in
// increasing positions. On PostgreSQL this is the end-to-end check that a
// late-committing append is never skipped (the deterministic check lives in
// the postgres package).
func testReadAllTailWhileAppending(t *testing.T, s eventstore.Store) {
	const (
		writers = 6
		appends = 40
	)
	ctx := testContext(t)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		appended = map[string]bool{}
		errs     = make(chan error, writers)
	)
	for w := range writers {
		wg.Go(func() {
			for a := range appends {
				batch := []eventstore.Event{newEvent("E", "")}
				if a%3 == 0 {
					batch = append(batch, newEvent("E", ""), newEvent("E", ""))
				}
				if _, err := s.Append(ctx, fmt.Sprintf("run-tail-%d", (w+a)%4), eventstore.ExpectAny, batch...); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, e := range batch {
					appended[e.ID] = true
				}
				mu.Unlock()
			}
		})
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()

	seen := map[string]bool{}
	var after int64
	deadline := time.Now().Add(time.Minute + visibilityTimeout)
	for {
		done := false
		select {
		case <-writersDone:
			done = true
		default:
		}
		page, err := s.ReadAll(ctx, after, 7)
		if err != nil {
			t.Fatalf("ReadAll: %v", err)
		}
		for _, e := range page {
			if e.Position <= after {
				t.Fatalf("ReadAll(after %d) returned position %d", after, e.Position)
			}
			if seen[e.ID] {
				t.Fatalf("event %s read twice", e.ID)
			}
			seen[e.ID] = true
			after = e.Position
		}
		mu.Lock()
		total := len(appended)
		mu.Unlock()
		if done && len(seen) >= total {
			break
		}
		if len(page) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("follower saw %d of %d events", len(seen), total)
			}
			time.Sleep(time.Millisecond) // poll for a condition, bounded by deadline
		}
	}
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}
	for id := range appended {
		if !seen[id] {
			t.Errorf("follower skipped event %s", id)
		}
	}
	if len(seen) != len(appended) {
		t.Errorf("follower saw %d events, %d appended", len(seen), len(appended))
	}
}

func testIdempotentAppend(t *testing.T, s eventstore.Store) {
	const stream = "run-idem"
	e1, e2 := newEvent("A", "1"), newEvent("B", "2")
	mustAppend(t, s, stream, eventstore.ExpectNoStream, e1, e2)

	// A redelivery succeeds without writing, whatever the expected version.
	for _, tc := range []struct {
		name     string
		expected int64
		events   []eventstore.Event
	}{
		{"SameCallStaleVersion", eventstore.ExpectNoStream, []eventstore.Event{e1, e2}},
		{"SameCallCurrentVersion", 2, []eventstore.Event{e1, e2}},
		{"SameCallAny", eventstore.ExpectAny, []eventstore.Event{e1, e2}},
		{"SubsetOfStoredEvents", 1, []eventstore.Event{e2}},
		{"WrongFutureVersion", 10, []eventstore.Event{e1}},
		{"PayloadIgnored", 0, []eventstore.Event{{ID: e1.ID, Type: "Other", Payload: []byte("changed")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := s.Append(testContext(t), stream, tc.expected, tc.events...)
			if err != nil || v != 2 {
				t.Fatalf("redelivered Append = %d, %v; want 2, nil", v, err)
			}
		})
	}

	// The returned version is the stream's current one, not the one the
	// redelivered events were first appended at.
	e3 := newEvent("C", "3")
	mustAppend(t, s, stream, 2, e3)
	if v, err := s.Append(testContext(t), stream, 0, e1); err != nil || v != 3 {
		t.Fatalf("redelivery after more appends = %d, %v; want 3, nil", v, err)
	}

	// Partly stored or stored elsewhere: ErrDuplicateEvent, nothing written.
	mustAppend(t, s, "run-idem-other", eventstore.ExpectNoStream, newEvent("X", ""))
	for _, tc := range []struct {
		name     string
		stream   string
		expected int64
		events   []eventstore.Event
	}{
		{"SomeNew", stream, 3, []eventstore.Event{e3, newEvent("D", "")}},
		{"SomeNewAny", stream, eventstore.ExpectAny, []eventstore.Event{newEvent("D", ""), e1}},
		{"OtherStream", "run-idem-other", 1, []eventstore.Event{e1}},
		{"OtherStreamNew", "run-idem-new", eventstore.ExpectNoStream, []eventstore.Event{e2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := mustVersion(t, s, tc.stream)
			_, err := s.Append(testContext(t), tc.stream, tc.expected, tc.events...)
			if !errors.Is(err, eventstore.ErrDuplicateEvent) {
				t.Fatalf("error = %v, want ErrDuplicateEvent", err)
			}
			if after := mustVersion(t, s, tc.stream); after != before {
				t.Errorf("version changed from %d to %d", before, after)
			}
		})
	}

	got := mustReadStream(t, s, stream, 1)
	if len(got) != 3 {
		t.Fatalf("stream has %d events, want 3", len(got))
	}
	for i, w := range []eventstore.Event{e1, e2, e3} {
		checkEvent(t, got[i], w, stream, int64(i+1))
	}
}

// testConcurrentRedelivery appends the same events from many goroutines at
// once, as redelivered messages handled by several consumers would: every
// call succeeds and the events are stored once.
func testConcurrentRedelivery(t *testing.T, s eventstore.Store) {
	const goroutines = 8
	ctx := testContext(t)
	for round := range 5 {
		stream := fmt.Sprintf("run-redeliver-%d", round)
		events := []eventstore.Event{newEvent("A", ""), newEvent("B", "")}
		expected := eventstore.ExpectAny
		if round%2 == 1 {
			expected = eventstore.ExpectNoStream
		}
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for range goroutines {
			wg.Go(func() {
				v, err := s.Append(ctx, stream, expected, events...)
				if err == nil && v != 2 {
					err = fmt.Errorf("version %d, want 2", v)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: concurrent redelivery: %v", round, err)
		}
		if got := mustReadStream(t, s, stream, 1); len(got) != 2 {
			t.Errorf("round %d: stream has %d events, want 2", round, len(got))
		}
		// Once the winner is committed, every redelivery succeeds.
		if v, err := s.Append(ctx, stream, expected, events...); err != nil || v != 2 {
			t.Errorf("round %d: redelivery after commit = %d, %v", round, v, err)
		}
	}
}

func testRoundTripBytes(t *testing.T, s eventstore.Store) {
	every := make([]byte, 256*2)
	for i := range every {
		every[i] = byte(i)
	}
	events := []eventstore.Event{
		{ID: newID(), Type: "AllBytes", Payload: every},
		{ID: newID(), Type: "InvalidUTF8", Payload: []byte{0xff, 0xfe, 0x00, 0xc3, 0x28, 0x00}},
		{ID: newID(), Type: "Empty", Payload: []byte{}},
		{ID: newID(), Type: "Nil"},
		{ID: newID(), Type: "Big", Payload: bytes.Repeat([]byte{0, 1, 0xff}, 1<<18)},
		{ID: newID(), Type: "Metadata", Payload: []byte{0}, Metadata: map[string]string{
			"org_id":          "org-ü-日本",
			"quotes":          `"'\` + "\n\t\r",
			"empty":           "",
			"":                "empty key",
			"json":            `{"a":[1,2]}`,
			"emoji 🚀":         "✓",
			"control\u0001":   "\u001f\u007f",
			"long":            string(bytes.Repeat([]byte("x"), 10000)),
			"unicode escapes": `\u0000 is text here`,
		}},
		{ID: newID(), Type: "EmptyMetadata", Metadata: map[string]string{}},
	}
	mustAppend(t, s, "run-bytes", eventstore.ExpectNoStream, events...)
	want := events
	want[2].Payload, want[2].Metadata = nil, nil

	got := mustReadStream(t, s, "run-bytes", 1)
	if len(got) != len(want) {
		t.Fatalf("ReadStream = %d events, want %d", len(got), len(want))
	}
	all := readAllUntil(t, s, 0, 100, len(want))
	for i := range want {
		checkEvent(t, got[i], want[i], "run-bytes", int64(i+1))
		checkEvent(t, all[i], want[i], "run-bytes", int64(i+1))
	}
	// Returned slices belong to the caller.
	got[0].Payload[0] ^= 0xff
	again := mustReadStream(t, s, "run-bytes", 1)
	if !bytes.Equal(again[0].Payload, every) {
		t.Error("changing a returned payload changed the store")
	}
}

func testCanceledContext(t *testing.T, s eventstore.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, "run-cancel", eventstore.ExpectAny, newEvent("A", "")); err == nil {
		t.Error("Append with a canceled context succeeded")
	}
	if _, err := s.ReadStream(ctx, "run-cancel", 1); err == nil {
		t.Error("ReadStream with a canceled context succeeded")
	}
	if _, err := s.ReadAll(ctx, 0, 10); err == nil {
		t.Error("ReadAll with a canceled context succeeded")
	}
	// The store still works afterwards (no lock or connection left behind).
	if v := mustAppend(t, s, "run-cancel", eventstore.ExpectAny, newEvent("A", "")); v != 1 {
		t.Errorf("Append after a canceled one = %d, want 1", v)
	}
}

// testSubscribeFromPosition: a subscriber started at a position sees every later event
// exactly once, in position order, while several writers append, with a handler that
// fails now and then (the failed batch is passed again).
func testSubscribeFromPosition(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	for range 5 { // history before the subscription's position
		if _, err := s.Append(ctx, "run-before", eventstore.ExpectAny, newEvent("E", "")); err != nil {
			t.Fatal(err)
		}
	}
	var start int64
	for deadline := time.Now().Add(visibilityTimeout); ; {
		evs, err := s.ReadAll(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 5 {
			start = evs[4].Position
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the history did not become visible: %d events", len(evs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	const writers, appends = 4, 30
	want := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for a := range appends {
				e := newEvent("E", "")
				if _, err := s.Append(ctx, fmt.Sprintf("run-sub-%d", (w+a)%3), eventstore.ExpectAny, e); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want[e.ID] = true
				mu.Unlock()
			}
		})
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := map[string]int{}
	last, calls := start, 0
	done := make(chan error, 1)
	go func() {
		done <- eventstore.Subscribe(sctx, s, start, eventstore.SubscribeOptions{BatchSize: 7, Poll: 20 * time.Millisecond},
			func(_ context.Context, evs []eventstore.Event) error {
				calls++
				if calls%5 == 0 {
					return errors.New("transient") // this batch must come again
				}
				for _, e := range evs {
					if e.Position <= last {
						t.Errorf("position %d after %d: out of order or repeated", e.Position, last)
					}
					last = e.Position
					mu.Lock()
					got[e.ID]++
					n := len(got)
					mu.Unlock()
					if n == writers*appends {
						cancel()
					}
				}
				return nil
			})
	}()
	wg.Wait()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe returned %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute + visibilityTimeout):
		cancel()
		t.Fatalf("the subscriber saw %d of %d events", len(got), writers*appends)
	}
	mu.Lock()
	defer mu.Unlock()
	for id := range want {
		if got[id] != 1 {
			t.Fatalf("event %s seen %d times, want once", id, got[id])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("saw %d events, appended %d after the position", len(got), len(want))
	}
}
