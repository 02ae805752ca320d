package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/simpleci/simpleci/libs/eventstore"
	"github.com/simpleci/simpleci/libs/eventstore/eventstoretest"
	"github.com/simpleci/simpleci/libs/eventstore/pgtest"
	"github.com/simpleci/simpleci/libs/eventstore/postgres"
)

func newStore(t testing.TB) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.NewPool(t)
	s := postgres.New(pool)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A connection that kept the append lock would block every later append.
		var held int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&held)
		if err != nil {
			t.Errorf("count advisory locks: %v", err)
		} else if held != 0 {
			t.Errorf("%d advisory locks still held after the test", held)
		}
	})
	return s, pool
}

func TestConformance(t *testing.T) {
	pgtest.AdminURL(t) // skip once, not in every subtest
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		s, _ := newStore(t)
		return s
	})
}

func TestConformanceTx(t *testing.T) {
	pgtest.AdminURL(t)
	eventstoretest.RunTx(t, func(t *testing.T) (eventstore.TxStore, *sql.DB) {
		s, pool := newStore(t)
		db := stdlib.OpenDBFromPool(pool)
		t.Cleanup(func() { _ = db.Close() })
		return s, db
	})
}

// TestTxAppendMustBeFirstWrite: an append after another write of the same
// transaction is refused (its transaction id was not taken inside the append
// lock, which ReadAll's ordering needs), leaves no lock behind and the
// transaction usable.
func TestTxAppendMustBeFirstWrite(t *testing.T) {
	s, pool := newStore(t)
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE side (id text PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO side VALUES ('x')`); err != nil {
		t.Fatal(err)
	}
	_, err = s.WithTx(tx).Append(ctx, "run-1", eventstore.ExpectNoStream, eventstore.Event{ID: "e1", Type: "A"})
	if !errors.Is(err, eventstore.ErrNotFirstWrite) {
		t.Fatalf("append after a write = %v, want ErrNotFirstWrite", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO side VALUES ('y')`); err != nil {
		t.Fatalf("transaction unusable after the refused append: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.StreamVersion(ctx, "run-1"); v != 0 {
		t.Fatalf("version = %d, want 0", v)
	}
	if _, err := s.Append(ctx, "run-1", eventstore.ExpectNoStream, eventstore.Event{ID: "e1", Type: "A"}); err != nil {
		t.Fatal(err)
	}
}

func TestMigrateTwiceConcurrently(t *testing.T) {
	s, pool := newStore(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- postgres.New(pool).Migrate(context.Background()) }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(context.Background(), "run-1", eventstore.ExpectNoStream, eventstore.Event{ID: "e1", Type: "A"}); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkAppendSingle(b *testing.B) {
	s, _ := newStore(b)
	eventstoretest.AppendBenchmark(b, s, 1)
}

func BenchmarkAppendBatch100(b *testing.B) {
	s, _ := newStore(b)
	eventstoretest.AppendBenchmark(b, s, 100)
}

func BenchmarkAppendSingleParallel(b *testing.B) {
	s, _ := newStore(b)
	eventstoretest.ParallelAppendBenchmark(b, s, 1, 4)
}

func BenchmarkAppendBatch100Parallel(b *testing.B) {
	s, _ := newStore(b)
	eventstoretest.ParallelAppendBenchmark(b, s, 100, 4)
}

// TestCanceledAppends cancels appends at random points (waiting for the lock,
// mid-insert, before the commit): afterwards no lock may be left behind, and
// retrying every append with the same event ids must succeed, whether or not
// the canceled attempt was committed.
func TestCanceledAppends(t *testing.T) {
	s, pool := newStore(t)
	const (
		workers = 4
		appends = 50
	)
	var wg sync.WaitGroup
	batches := make([][]eventstore.Event, workers*appends)
	for w := range workers {
		wg.Go(func() {
			for i := range appends {
				n := w*appends + i
				batches[n] = []eventstore.Event{
					{ID: fmt.Sprintf("e%d-a", n), Type: "A"},
					{ID: fmt.Sprintf("e%d-b", n), Type: "B"},
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(3000))*time.Microsecond)
				_, _ = s.Append(ctx, fmt.Sprintf("run-%d", n%3), eventstore.ExpectAny, batches[n]...)
				cancel()
			}
		})
	}
	wg.Wait()

	ctx := context.Background()
	for n, batch := range batches {
		if _, err := s.Append(ctx, fmt.Sprintf("run-%d", n%3), eventstore.ExpectAny, batch...); err != nil {
			t.Fatalf("retry of append %d: %v", n, err)
		}
	}
	for stream := range 3 {
		events, err := s.ReadStream(ctx, fmt.Sprintf("run-%d", stream), 1)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range events {
			if e.Version != int64(i+1) {
				t.Fatalf("run-%d: event %d has version %d", stream, i, e.Version)
			}
			if i%2 == 1 && (e.Type != "B" || events[i-1].ID[:len(e.ID)-1] != e.ID[:len(e.ID)-1]) {
				t.Fatalf("run-%d: a batch was split at version %d", stream, e.Version)
			}
		}
	}
	var total int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 2*len(batches) {
		t.Fatalf("%d events stored, want %d", total, 2*len(batches))
	}
}
