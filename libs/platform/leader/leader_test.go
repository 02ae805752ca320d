package leader_test

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/id"
	"github.com/simpleci/simpleci/libs/platform/leader"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
)

const envURL = "SIMPLECI_TEST_POSTGRES_URL"

// replica is one process's participation in an election.
type replica struct {
	cancel  context.CancelFunc
	done    chan struct{}
	leading atomic.Bool
	terms   atomic.Int32
}

func start(t *testing.T, db *sqldb.DB, name string, overlap *atomic.Int32, active *atomic.Int32) *replica {
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		leader.Run(ctx, db, name, leader.Options{TryEvery: 100 * time.Millisecond, CheckEvery: 100 * time.Millisecond}, func(ctx context.Context) {
			if active.Add(1) > 1 {
				overlap.Add(1)
			}
			r.leading.Store(true)
			r.terms.Add(1)
			<-ctx.Done()
			r.leading.Store(false)
			active.Add(-1)
		})
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOneLeaderAndTakeover(t *testing.T) {
	url := os.Getenv(envURL)
	if url == "" {
		t.Skip(envURL + " not set: run via make test, or start deploy/local/postgres.sh")
	}
	ctx := context.Background()
	name := "test-" + id.New()
	var overlap, active atomic.Int32
	var dbs []*sqldb.DB
	for range 3 {
		db, err := sqldb.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
	}
	rs := []*replica{start(t, dbs[0], name, &overlap, &active), start(t, dbs[1], name, &overlap, &active), start(t, dbs[2], name, &overlap, &active)}
	leaderOf := func() *replica {
		for _, r := range rs {
			if r.leading.Load() {
				return r
			}
		}
		return nil
	}
	waitFor(t, "a leader", func() bool { return leaderOf() != nil })
	// The leader stops (its process ends): another takes over within the try interval.
	first := leaderOf()
	first.cancel()
	<-first.done
	waitFor(t, "a new leader", func() bool { l := leaderOf(); return l != nil && l != first })
	if n := overlap.Load(); n != 0 {
		t.Fatalf("%d times two replicas led at once", n)
	}
	// The leader's lock connection is killed (a database restart, a network cut): another
	// replica may take the lock at once, and the old leader steps down at its next check
	// (the overlap the package documents), and a leader is back within seconds.
	second := leaderOf()
	terms := second.terms.Load()
	var killed int
	err := dbs[0].QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND objsubid = 2 AND classid = $1::bigint::oid AND objid = hashtext($2)::oid AND granted`, int64(0x5343494C), name).Scan(&killed)
	if err == nil && killed != 1 {
		t.Fatalf("terminated %d lock holders, want 1", killed)
	}
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the leader to step down", func() bool { return !second.leading.Load() || second.terms.Load() > terms })
	waitFor(t, "a leader again", func() bool { return leaderOf() != nil })
	waitFor(t, "one leader", func() bool { return active.Load() == 1 })
}

// TestSQLiteAlwaysLeads: the embedded default is one process; it leads at once.
func TestSQLiteAlwaysLeads(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	db, err := sqldb.Open(ctx, filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	led := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		leader.Run(ctx, db, "x", leader.Options{}, func(ctx context.Context) { close(led); <-ctx.Done() })
	}()
	<-led
	cancel()
	<-done
}
