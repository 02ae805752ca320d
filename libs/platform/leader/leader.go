// Package leader runs work that must happen once per deployment however many replicas
// of a service run (the scheduler's outbox and projection followers): the replica that
// holds a PostgreSQL advisory lock leads; the others wait and take over within seconds
// when the leader dies.
//
// The lock is session-level, held on a connection of its own: when the leader's process
// dies (even SIGKILL) its connection closes and PostgreSQL releases the lock at once.
// The leader checks its connection every CheckEvery; when the check fails (the database
// restarted, the network broke) it stops leading before anyone else can have taken over
// for long. Work run under a leadership must still be safe to run twice for a moment
// (at-least-once publishing, idempotent projections with positions that never move
// backwards): two leaders can overlap between a lost connection and its detection.
//
// SQLite (the embedded default) is one process: it always leads.
package leader

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/simpleci/simpleci/libs/platform/sqldb"
)

// lockClass is the first key of the advisory locks taken here ("SCIL" in ASCII); the
// second is hashtext(name). The event store uses another class.
const lockClass int32 = 0x5343494C

// Options tune Run. The zero value works.
type Options struct {
	// TryEvery is how often a follower tries to take the lock (default 1 s): a dead
	// leader is replaced within about this long.
	TryEvery time.Duration
	// CheckEvery is how often the leader checks its lock connection (default 1 s).
	CheckEvery time.Duration
	Log        *slog.Logger
}

// Run calls lead each time this process becomes the leader of name, with a context
// that is cancelled when it stops being the leader, and waits for lead to return before
// trying again. It returns when ctx ends.
func Run(ctx context.Context, db *sqldb.DB, name string, opts Options, lead func(context.Context)) {
	if opts.TryEvery <= 0 {
		opts.TryEvery = time.Second
	}
	if opts.CheckEvery <= 0 {
		opts.CheckEvery = time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	log := opts.Log.With("leadership", name)
	if db.Dialect != sqldb.Postgres {
		lead(ctx)
		return
	}
	for ctx.Err() == nil {
		conn, err := acquire(ctx, db, name)
		if err != nil {
			log.Warn("take leadership", "err", err)
		}
		if conn != nil {
			log.Info("leading")
			hold(ctx, conn, name, opts, log, lead)
			log.Info("no longer leading")
		}
		t := time.NewTimer(opts.TryEvery)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// acquire opens a connection of its own and tries the lock on it; nil: another process
// leads.
func acquire(ctx context.Context, db *sqldb.DB, name string) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, db.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(cctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, lockClass, name).Scan(&ok); err != nil || !ok {
		conn.Close(context.Background())
		if err != nil {
			return nil, fmt.Errorf("try lock: %w", err)
		}
		return nil, nil
	}
	return conn, nil
}

// hold runs lead while conn (holding the lock) answers, then closes conn, which releases
// the lock.
func hold(ctx context.Context, conn *pgx.Conn, name string, opts Options, log *slog.Logger, lead func(context.Context)) {
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); lead(lctx) }()
	t := time.NewTicker(opts.CheckEvery)
	for lctx.Err() == nil {
		select {
		case <-lctx.Done():
		case <-t.C:
			pctx, pcancel := context.WithTimeout(lctx, max(opts.CheckEvery, 2*time.Second))
			err := conn.Ping(pctx)
			pcancel()
			if err != nil && lctx.Err() == nil {
				log.Warn("lost the lock connection; stepping down", "err", err)
				cancel()
			}
		}
	}
	t.Stop()
	cancel()
	wg.Wait()
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	// Closing the session releases the lock; unlock first for a prompt hand-over when
	// the connection is still good.
	_, _ = conn.Exec(cctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, lockClass, name)
	_ = conn.Close(cctx)
}
