package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/simpleci/simpleci/libs/eventstore"
	"github.com/simpleci/simpleci/libs/eventstore/eventstoretest"
	"github.com/simpleci/simpleci/libs/eventstore/sqlite"
)

func newStore(t testing.TB) *sqlite.Store {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	s := sqlite.New(db)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store { return newStore(t) })
}

func TestConformanceTx(t *testing.T) {
	eventstoretest.RunTx(t, func(t *testing.T) (eventstore.TxStore, *sql.DB) {
		db, err := sqlite.Open(filepath.Join(t.TempDir(), "events.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		s := sqlite.New(db)
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s, db
	})
}

// TestConformanceTwoHandles runs the suite with every call going, in turn,
// to one of two Stores on two *sql.DB over the same file, as two processes
// would: the SQLite write lock (BEGIN IMMEDIATE), not the Store's mutex, must
// then keep one winner per version.
func TestConformanceTwoHandles(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		path := filepath.Join(t.TempDir(), "events.db")
		var a alternating
		for i := range a.stores {
			db, err := sqlite.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			s := sqlite.New(db)
			if err := s.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			a.stores[i] = s
		}
		return &a
	})
}

// alternating sends each call to the next of two stores.
type alternating struct {
	stores [2]eventstore.Store
	n      atomic.Uint64
}

func (a *alternating) next() eventstore.Store { return a.stores[a.n.Add(1)%2] }

func (a *alternating) Append(ctx context.Context, streamID string, expected int64, events ...eventstore.Event) (int64, error) {
	return a.next().Append(ctx, streamID, expected, events...)
}

func (a *alternating) ReadStream(ctx context.Context, streamID string, fromVersion int64) ([]eventstore.Event, error) {
	return a.next().ReadStream(ctx, streamID, fromVersion)
}

func (a *alternating) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	return a.next().ReadAll(ctx, after, limit)
}

func (a *alternating) StreamVersion(ctx context.Context, streamID string) (int64, error) {
	return a.next().StreamVersion(ctx, streamID)
}

func TestOpenRejectsMemory(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file::memory:?cache=shared"} {
		if db, err := sqlite.Open(path); err == nil {
			_ = db.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}

func TestOpenPathWithSpecialCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a dir?x=1#frag", "events 100%.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := sqlite.New(db).Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not created at the given path: %v", err)
	}
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "1", "foreign_keys": "1", "busy_timeout": "10000"} {
		var got string
		if err := db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

func BenchmarkAppendSingle(b *testing.B) {
	eventstoretest.AppendBenchmark(b, newStore(b), 1)
}

func BenchmarkAppendBatch100(b *testing.B) {
	eventstoretest.AppendBenchmark(b, newStore(b), 100)
}

func BenchmarkAppendSingleParallel(b *testing.B) {
	eventstoretest.ParallelAppendBenchmark(b, newStore(b), 1, 4)
}
