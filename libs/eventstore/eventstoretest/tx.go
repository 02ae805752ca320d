package eventstoretest

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/simpleci/simpleci/libs/eventstore"
)

// RunTx runs the conformance suite through TxStore.WithTx, every call in a
// transaction of its own that commits when the call succeeds, and then the
// checks that only transactions can fail: a rolled-back append leaves nothing,
// a committed one takes the caller's own writes with it, and a transaction
// reads its own appends. newStore returns a fresh, empty, migrated store and
// the database it lives in (for PostgreSQL, a *sql.DB over pgx's stdlib
// driver).
func RunTx(t *testing.T, newStore func(t *testing.T) (eventstore.TxStore, *sql.DB)) {
	t.Run("EachCallInATransaction", func(t *testing.T) {
		Run(t, func(t *testing.T) eventstore.Store {
			s, db := newStore(t)
			return &txEach{s: s, db: db}
		})
	})
	tests := []struct {
		name string
		fn   func(t *testing.T, s eventstore.TxStore, db *sql.DB)
	}{
		{"RollbackLeavesNothing", testTxRollback},
		{"CommitsWithTheCallersRows", testTxCommitsTogether},
		{"ReadsItsOwnAppends", testTxReadsOwnAppends},
		{"ConflictLeavesTheTransactionUsable", testTxConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, db := newStore(t)
			tc.fn(t, s, db)
		})
	}
}

// txEach runs each call of the Store interface in its own transaction.
type txEach struct {
	s  eventstore.TxStore
	db *sql.DB
}

func inTx[T any](ctx context.Context, x *txEach, fn func(eventstore.Store) (T, error)) (T, error) {
	var zero T
	tx, err := x.db.BeginTx(ctx, nil)
	if err != nil {
		return zero, err
	}
	v, err := fn(x.s.WithTx(tx))
	if err != nil {
		_ = tx.Rollback()
		return zero, err
	}
	if err := tx.Commit(); err != nil {
		// A commit can lose a race too (PostgreSQL: a unique violation deferred
		// to commit does not happen with these constraints, but a cancelled
		// context does).
		return zero, err
	}
	return v, nil
}

func (x *txEach) Append(ctx context.Context, streamID string, expected int64, events ...eventstore.Event) (int64, error) {
	for {
		v, err := inTx(ctx, x, func(s eventstore.Store) (int64, error) { return s.Append(ctx, streamID, expected, events...) })
		// Inside a transaction a lost race is ErrConcurrency even with ExpectAny
		// (the TxStore contract): the caller retries the transaction.
		if expected == eventstore.ExpectAny && errors.Is(err, eventstore.ErrConcurrency) {
			continue
		}
		return v, err
	}
}

func (x *txEach) ReadStream(ctx context.Context, streamID string, fromVersion int64) ([]eventstore.Event, error) {
	return inTx(ctx, x, func(s eventstore.Store) ([]eventstore.Event, error) { return s.ReadStream(ctx, streamID, fromVersion) })
}

func (x *txEach) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	return inTx(ctx, x, func(s eventstore.Store) ([]eventstore.Event, error) { return s.ReadAll(ctx, after, limit) })
}

func (x *txEach) StreamVersion(ctx context.Context, streamID string) (int64, error) {
	return inTx(ctx, x, func(s eventstore.Store) (int64, error) { return s.StreamVersion(ctx, streamID) })
}

func begin(t *testing.T, db *sql.DB) *sql.Tx {
	t.Helper()
	tx, err := db.BeginTx(testContext(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	return tx
}

func testTxRollback(t *testing.T, s eventstore.TxStore, db *sql.DB) {
	ctx := testContext(t)
	tx := begin(t, db)
	if _, err := s.WithTx(tx).Append(ctx, "run-1", eventstore.ExpectNoStream, newEvent("A", "a"), newEvent("B", "b")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if v := mustVersion(t, s, "run-1"); v != 0 {
		t.Fatalf("version after rollback = %d, want 0", v)
	}
	// The store is still usable (PostgreSQL: no append lock left behind).
	mustAppend(t, s, "run-1", eventstore.ExpectNoStream, newEvent("C", "c"))
	evs := readAllUntil(t, s, 0, 10, 1)
	if len(evs) != 1 || evs[0].Type != "C" {
		t.Fatalf("ReadAll after rollback and append = %d events (%v), want only C", len(evs), evs)
	}
}

func testTxCommitsTogether(t *testing.T, s eventstore.TxStore, db *sql.DB) {
	ctx := testContext(t)
	if _, err := db.ExecContext(ctx, `CREATE TABLE side (id TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	tx := begin(t, db)
	e := newEvent("A", "a")
	if v, err := s.WithTx(tx).Append(ctx, "run-1", eventstore.ExpectNoStream, e); err != nil || v != 1 {
		t.Fatalf("Append = %d, %v; want 1, nil", v, err)
	}
	// The caller's own write, after the append (the append must come first).
	if _, err := tx.ExecContext(ctx, `INSERT INTO side (id) VALUES ('x')`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM side`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("side rows = %d, %v; want 1", n, err)
	}
	got := readAllUntil(t, s, 0, 10, 1)
	checkEvent(t, got[0], e, "run-1", 1)
}

func testTxReadsOwnAppends(t *testing.T, s eventstore.TxStore, db *sql.DB) {
	ctx := testContext(t)
	mustAppend(t, s, "run-1", eventstore.ExpectNoStream, newEvent("A", "a"))
	tx := begin(t, db)
	in := s.WithTx(tx)
	if _, err := in.Append(ctx, "run-1", 1, newEvent("B", "b")); err != nil {
		t.Fatal(err)
	}
	evs, err := in.ReadStream(ctx, "run-1", 1)
	if err != nil || len(evs) != 2 || evs[1].Type != "B" {
		t.Fatalf("ReadStream in tx = %d events, %v; want A, B", len(evs), err)
	}
	if v, err := in.StreamVersion(ctx, "run-1"); err != nil || v != 2 {
		t.Fatalf("StreamVersion in tx = %d, %v; want 2", v, err)
	}
}

func testTxConflict(t *testing.T, s eventstore.TxStore, db *sql.DB) {
	ctx := testContext(t)
	first := newEvent("A", "a")
	mustAppend(t, s, "run-1", eventstore.ExpectNoStream, first)
	tx := begin(t, db)
	in := s.WithTx(tx)
	_, err := in.Append(ctx, "run-1", eventstore.ExpectNoStream, newEvent("B", "b"))
	if !errors.Is(err, eventstore.ErrConcurrency) {
		t.Fatalf("Append with a stale version = %v, want ErrConcurrency", err)
	}
	// A redelivery inside a transaction is a no-op success.
	if v, err := in.Append(ctx, "run-1", eventstore.ExpectNoStream, first); err != nil || v != 1 {
		t.Fatalf("redelivered Append in tx = %d, %v; want 1, nil", v, err)
	}
	if v, err := in.StreamVersion(ctx, "run-1"); err != nil || v != 1 {
		t.Fatalf("StreamVersion in tx after the conflict = %d, %v; want 1", v, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "run-1", 1, newEvent("C", "c"))
}
