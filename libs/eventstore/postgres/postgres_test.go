package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

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
