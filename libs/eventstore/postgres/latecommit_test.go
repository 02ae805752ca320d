package postgres

// Deterministic tests of ReadAll's late-commit safety. They drive
// transactions by hand, so they live inside the package, next to the SQL they
// reuse.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/simpleci/simpleci/libs/eventstore"
	"github.com/simpleci/simpleci/libs/eventstore/pgtest"
)

func newTestStore(t *testing.T) (*Store, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.NewPool(t)
	s := New(pool)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, pool
}

func event(id string) eventstore.Event {
	return eventstore.Event{ID: id, Type: "Test", Payload: []byte(id)}
}

// stored is where an event landed.
type stored struct {
	position int64
	xid      uint64
}

func lookupStored(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, id string) stored {
	t.Helper()
	var s stored
	err := q.QueryRow(context.Background(),
		"SELECT position, transaction_id::text::bigint FROM events WHERE event_id = $1", id).Scan(&s.position, &s.xid)
	if err != nil {
		t.Fatalf("look up %s: %v", id, err)
	}
	return s
}

// holdAppend appends e exactly as Store.Append does (same statements, same
// lock) but inside an explicit transaction that the test commits later.
func holdAppend(t *testing.T, pool *pgxpool.Pool, stream string, e eventstore.Event) (pgx.Tx, stored) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	args, err := newInsertArgs(stream, eventstore.ExpectAny, []eventstore.Event{e})
	if err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	args.queue(b)
	br := tx.SendBatch(ctx, b)
	if _, n, err := readInsertBatch(br); err != nil || n != 1 {
		t.Fatalf("held append: %d rows, %v", n, err)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	return tx, lookupStored(t, tx, e.ID)
}

// readAllUntil polls ReadAll(after) until it returns want events.
func readAllUntil(t *testing.T, s *Store, after int64, want int) []eventstore.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := s.ReadAll(context.Background(), after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) >= want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("ReadAll(after %d) = %d events after 20s, want %d", after, len(got), want)
		}
		time.Sleep(5 * time.Millisecond) // poll for a condition, bounded by deadline
	}
}

func ids(events []eventstore.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = fmt.Sprintf("%s@%d", e.ID, e.Position)
	}
	return out
}

// TestReadAllWaitsForLateCommit: an append holding a lower position commits
// after one holding a higher position. ReadAll must not return the higher one
// first, and once both are committed returns both in position order.
func TestReadAllWaitsForLateCommit(t *testing.T) {
	s, pool := newTestStore(t)
	ctx := context.Background()

	if _, err := s.Append(ctx, "run-0", eventstore.ExpectNoStream, event("e0")); err != nil {
		t.Fatal(err)
	}
	cursor := readAllUntil(t, s, 0, 1)[0].Position

	slow, slowAt := holdAppend(t, pool, "run-slow", event("slow"))
	if _, err := s.Append(ctx, "run-fast", eventstore.ExpectNoStream, event("fast")); err != nil {
		t.Fatal(err)
	}
	fastAt := lookupStored(t, pool, "fast")
	if fastAt.position <= slowAt.position {
		t.Fatalf("setup: fast position %d not above slow %d", fastAt.position, slowAt.position)
	}

	// The fast append is committed: stream reads see it at once…
	if got, err := s.ReadStream(ctx, "run-fast", 1); err != nil || len(got) != 1 {
		t.Fatalf("ReadStream(run-fast) = %v, %v", ids(got), err)
	}
	// …but ReadAll must hold it back while a lower position may still appear.
	if got, err := s.ReadAll(ctx, cursor, 100); err != nil || len(got) != 0 {
		t.Fatalf("ReadAll while the slow append is open = %v, %v; want nothing", ids(got), err)
	}

	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := readAllUntil(t, s, cursor, 2)
	if len(got) != 2 || got[0].ID != "slow" || got[1].ID != "fast" {
		t.Fatalf("ReadAll after the late commit = %v, want slow then fast", ids(got))
	}
}

// TestReadAllAfterRollback: positions of a rolled-back append are a gap that
// ReadAll passes over once the transaction is gone.
func TestReadAllAfterRollback(t *testing.T) {
	s, pool := newTestStore(t)
	ctx := context.Background()
	tx, _ := holdAppend(t, pool, "run-rolled-back", event("gone"))
	if _, err := s.Append(ctx, "run-kept", eventstore.ExpectNoStream, event("kept")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	got := readAllUntil(t, s, 0, 1)
	if len(got) != 1 || got[0].ID != "kept" {
		t.Fatalf("ReadAll = %v, want kept", ids(got))
	}
}

// TestAppendLockOrdersTransactions: while one transaction holds the append
// lock, another append waits, so it gets both a higher transaction id and a
// higher position. This ordering is what makes a single position cursor safe.
func TestAppendLockOrdersTransactions(t *testing.T) {
	s, pool := newTestStore(t)
	ctx := context.Background()

	held, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = held.Rollback(ctx) })
	if _, err := held.Exec(ctx, lockSQL, lockClass, lockAppend); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "run-waiter", eventstore.ExpectNoStream, event("waiter"))
		done <- err
	}()
	// Wait until the append is queued on the lock.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
			AND classid = $1 AND objid = $2 AND NOT granted`, lockClass, lockAppend).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Append finished while another transaction held the append lock (err %v)", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Append never waited for the append lock")
		}
		time.Sleep(2 * time.Millisecond) // poll for a condition, bounded by deadline
	}

	args, err := newInsertArgs("run-holder", eventstore.ExpectAny, []eventstore.Event{event("holder")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := held.Exec(ctx, insertSQL, args.streamID, args.expected, args.ids, args.types, args.payloads, args.metadata); err != nil {
		t.Fatal(err)
	}
	holderAt := lookupStored(t, held, "holder")
	if _, err := held.Exec(ctx, unlockSQL, lockClass, lockAppend); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waiterAt := lookupStored(t, pool, "waiter")
	if waiterAt.xid <= holderAt.xid || waiterAt.position <= holderAt.position {
		t.Fatalf("waiter (xid %d, position %d) not after holder (xid %d, position %d)",
			waiterAt.xid, waiterAt.position, holderAt.xid, holderAt.position)
	}
	if got, _ := s.ReadAll(ctx, 0, 10); len(got) != 0 {
		t.Fatalf("ReadAll before the holder committed = %v, want nothing", ids(got))
	}
	if err := held.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := readAllUntil(t, s, 0, 2)
	if got[0].ID != "holder" || got[1].ID != "waiter" {
		t.Fatalf("ReadAll = %v, want holder then waiter", ids(got))
	}
}

// TestTransactionIDsFollowPositions checks the invariant the ReadAll proof
// rests on after a burst of concurrent, partly conflicting appends: ordered by
// position, transaction ids never decrease.
func TestTransactionIDsFollowPositions(t *testing.T) {
	s, pool := newTestStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 60 {
				stream := fmt.Sprintf("run-%d", i%5)
				v, err := s.StreamVersion(ctx, stream)
				if err != nil {
					t.Error(err)
					return
				}
				batch := []eventstore.Event{event(fmt.Sprintf("g%d-%d-a", g, i))}
				if i%4 == 0 {
					batch = append(batch, event(fmt.Sprintf("g%d-%d-b", g, i)))
				}
				// Many of these lose the race (ErrConcurrency): failed inserts
				// consume positions and transaction ids too.
				_, _ = s.Append(ctx, stream, v, batch...)
			}
		})
	}
	wg.Wait()
	var rows, violations int
	err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE transaction_id < prev) FROM (
		SELECT transaction_id, lag(transaction_id) OVER (ORDER BY position) AS prev FROM events) x`).Scan(&rows, &violations)
	if err != nil {
		t.Fatal(err)
	}
	if violations != 0 {
		t.Fatalf("%d of %d events have a lower transaction id than the event before them", violations, rows)
	}
	if rows < 60 {
		t.Fatalf("only %d events appended", rows)
	}
	t.Logf("%d events, transaction ids in position order", rows)
}

// TestXminFilterAloneCanSkip documents why Append takes the append lock. It
// inserts WITHOUT the lock, as a plain INSERT with the transaction_id default
// would: a transaction that got its id early (A) takes a higher position than
// a later one (B). While B is open, ReadAll returns A; when B commits, its
// lower position is behind every cursor: skipped.
func TestXminFilterAloneCanSkip(t *testing.T) {
	s, pool := newTestStore(t)
	ctx := context.Background()
	begin := func() pgx.Tx {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(ctx) })
		return tx
	}
	insert := func(tx pgx.Tx, id string) {
		if _, err := tx.Exec(ctx, `INSERT INTO events (stream_id, stream_version, event_id, type, payload)
			VALUES ($1, 1, $1, 'Test', '\x')`, id); err != nil {
			t.Fatal(err)
		}
	}

	a, b := begin(), begin()
	if _, err := a.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil { // A's id is assigned first
		t.Fatal(err)
	}
	insert(b, "b") // lower position, higher transaction id
	insert(a, "a")
	if err := a.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	first := readAllUntil(t, s, 0, 1)
	if len(first) != 1 || first[0].ID != "a" {
		t.Fatalf("ReadAll = %v, want a", ids(first))
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if lookupStored(t, pool, "b").position >= first[0].Position {
		t.Fatal("setup: b did not get the lower position")
	}
	if got, err := s.ReadAll(ctx, first[0].Position, 10); err != nil || len(got) != 0 {
		t.Fatalf("ReadAll(after a) = %v, %v", ids(got), err)
	}
	t.Log("without the append lock, a reader resuming after a never sees b: this is why Append takes it")
}
