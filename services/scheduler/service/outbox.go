package service

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/eventstore"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	"github.com/simpleci/simpleci/libs/platform/telemetry"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
)

// The event store is the scheduler's outbox and the source of its read models. Two
// followers read it in position order from positions stored in sched_positions:
//   - "outbox" publishes every event on the bus and then stores its position, so an
//     event is published at least once even when the process dies in between, and
//     never lost when the bus is down (it is retried until it is accepted);
//   - "run-list" applies events to the run list in the same transaction that stores
//     its position, so each event is applied exactly once and the run list can be
//     rebuilt from the log at any time (RebuildRunList).

// batchSize bounds the events one follower step reads.
const batchSize = 500

// follow runs step over the log from the stored position of name until ctx ends. It is
// woken by appends in this process and polls for appends made elsewhere.
func (s *Service) follow(ctx context.Context, name string, step func(context.Context, []eventstore.Event) error) {
	log := s.log.With("follower", name)
	var pos int64
	for {
		p, err := s.loadPosition(ctx, name)
		if err == nil {
			pos = p
			break
		}
		log.Error("load position", "err", err)
		if !sleep(ctx, time.Second) {
			return
		}
	}
	log.Info("following the event log", "from_position", pos)
	eventstore.Subscribe(ctx, s.store, pos, eventstore.SubscribeOptions{BatchSize: batchSize, Wake: s.appended.Wait,
		OnError: func(p int64, err error) { log.Error("follow the event log", "position", p, "err", err) }}, step)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s *Service) loadPosition(ctx context.Context, name string) (int64, error) {
	var pos int64
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT position FROM sched_positions WHERE name = ?`), name).Scan(&pos)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	return pos, err
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// savePosition stores where a follower is. A position never moves backwards: a leader
// that lost its leadership and has not noticed yet cannot undo its successor's progress.
func (s *Service) savePosition(ctx context.Context, x execer, name string, pos int64) error {
	_, err := x.ExecContext(ctx, s.db.Q(`INSERT INTO sched_positions (name, position) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET position = excluded.position WHERE sched_positions.position < excluded.position`), name, pos)
	return err
}

// forward publishes a batch of events on the runs topic, keyed by run id, then stores
// the position after it. An event the bus can never take (over bus.MaxMessageBytes: one
// recorded before events were bounded) is set aside in the poison queue instead, with its
// position in the event store, which keeps it: it must not hold back every run's events
// behind it (docs/architecture.md, "Event size").
func (s *Service) forward(ctx context.Context, evs []eventstore.Event) error {
	msgs := make([]bus.Message, 0, len(evs))
	where := make(map[string]string, len(evs))
	for _, e := range evs {
		// With the trace context recorded with the event, not the follower's.
		msgs = append(msgs, bus.Message{ID: e.ID, Key: e.Metadata["run_id"], Type: e.Type, Payload: e.Payload, Metadata: telemetry.Carried(e.Metadata)})
		where[e.ID] = fmt.Sprintf("the event is kept in the event store at position %d (stream %s)", e.Position, e.StreamID)
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := bus.PublishOrSetAside(pctx, s.cfg.Bus, event.TopicRuns, "outbox:scheduler", msgs, func(m bus.Message) string { return where[m.ID] })
	if err != nil {
		return fmt.Errorf("publish %d run events: %w", len(msgs), err)
	}
	return s.savePosition(ctx, s.db, "outbox", evs[len(evs)-1].Position)
}

// projectBatch applies events to the run list and stores the position, atomically.
func (s *Service) projectBatch(ctx context.Context, evs []eventstore.Event) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, e := range evs {
			if err := s.applyRunList(ctx, tx, e); err != nil {
				return fmt.Errorf("project event %d (%s): %w", e.Position, e.Type, err)
			}
		}
		return s.savePosition(ctx, tx, "run-list", evs[len(evs)-1].Position)
	})
}

// applyRunList folds one event into the run list. Each update is guarded by the
// stream version, so applying an event twice changes nothing.
func (s *Service) applyRunList(ctx context.Context, tx *sql.Tx, e eventstore.Event) error {
	m, err := event.Decode(e.Type, e.Payload)
	if err != nil {
		return err
	}
	switch ev := m.(type) {
	case *eventsv1.RunQueued:
		_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO sched_runs (run_id, org_id, project_id, number, status, reason, event, ref, branch, sha, actor, tier, created_at, started_at, finished_at, version, rerun_of, rerun_of_number, commit_message)
			VALUES (?, ?, ?, ?, 'queued', '', ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING`),
			ev.RunId, ev.OrgId, ev.ProjectId, ev.Number, ev.Event, ev.Ref, ev.Branch, ev.Sha, ev.Actor, ev.Tier,
			ev.QueuedAt.AsTime().UnixNano(), e.Version, ev.RerunOf, ev.RerunOfNumber, ev.CommitMessage)
	case *eventsv1.RunStarted:
		_, err = tx.ExecContext(ctx, s.db.Q(`UPDATE sched_runs SET status = 'running', started_at = ?, version = ? WHERE run_id = ? AND version < ?`),
			ev.StartedAt.AsTime().UnixNano(), e.Version, ev.RunId, e.Version)
	case *eventsv1.RunFinished:
		_, err = tx.ExecContext(ctx, s.db.Q(`UPDATE sched_runs SET status = ?, reason = ?, finished_at = ?, version = ? WHERE run_id = ? AND version < ?`),
			ev.Status, ev.Reason, ev.FinishedAt.AsTime().UnixNano(), e.Version, ev.RunId, e.Version)
	}
	return err
}

// RebuildRunList rebuilds the job queue, the run numbers and the run list from the
// event log and returns how many events it applied to the run list. Run it while no scheduler is running against db (the live projector would
// race it); `simpleci admin rebuild-projections` does.
func RebuildRunList(ctx context.Context, db *sqldb.DB, log *slog.Logger) (int, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Service{db: db, log: log, cfg: Config{LeaseDuration: 30 * time.Second}, runs: newRunCache()}
	var err error
	if s.store, err = openStore(ctx, db); err != nil {
		return 0, err
	}
	if err := s.migrate(ctx); err != nil {
		return 0, err
	}
	// The job queue and run numbers are written with the events (jobs.go), so they
	// never need rebuilding after a crash; rebuilding them too makes this command the
	// one way to recreate every derived table from the log.
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.rebuildJobs(ctx, tx); err != nil {
			return fmt.Errorf("job queue: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sched_runs`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM sched_positions WHERE name = ?`), "run-list")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("reset derived tables: %w", err)
	}
	var pos int64
	n := 0
	for {
		evs, err := s.store.ReadAll(ctx, pos, batchSize)
		if err != nil {
			return n, err
		}
		if len(evs) == 0 {
			return n, nil
		}
		if err := s.projectBatch(ctx, evs); err != nil {
			return n, err
		}
		pos = evs[len(evs)-1].Position
		n += len(evs)
	}
}
