package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/simpleci/simpleci/libs/eventstore"
	"github.com/simpleci/simpleci/libs/platform/event"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"google.golang.org/protobuf/proto"
)

// The job queue (sched_jobs) and the run numbers (sched_run_numbers) are projections of
// the run streams written in the transaction that appends the events (decide.go), so
// they never disagree with the log. Rules are decided by domain.Run; these rows only
// make the questions "which queued job is oldest", "whose lease lapsed" and "what is the
// next number" cheap to answer. A lease's expiry is the one column that is not derived
// from events: heartbeats move it.

// applyJobs writes what evs change in the job queue and the run numbers.
func (s *Service) applyJobs(ctx context.Context, tx execer, evs []recorded) error {
	for _, e := range evs {
		if err := s.applyJob(ctx, tx, e.msg); err != nil {
			return fmt.Errorf("job queue: %s: %w", event.TypeOf(e.msg), err)
		}
	}
	return nil
}

func (s *Service) applyJob(ctx context.Context, tx execer, m proto.Message) error {
	var err error
	switch ev := m.(type) {
	case *eventsv1.RunQueued:
		var res sql.Result
		// Numbers are taken in order per project: the decision read last = n-1; if
		// another decision took n meanwhile, nothing is updated and the decision runs
		// again with a fresh number.
		res, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO sched_run_numbers (project_id, last) VALUES (?, ?)
			ON CONFLICT (project_id) DO UPDATE SET last = excluded.last WHERE sched_run_numbers.last < excluded.last`), ev.ProjectId, ev.Number)
		if err == nil {
			if n, _ := res.RowsAffected(); n != 1 {
				return errRetry
			}
			_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO sched_jobs (run_id, tier, state, created_at, runner_id, lease_id, lease_expires, timeout_ns,
				project_id, number, concurrency_key, concurrency_limit, cancel_in_progress)
				VALUES (?, ?, 'queued', ?, '', '', 0, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING`), ev.RunId, ev.Tier, ev.QueuedAt.AsTime().UnixNano(),
				ev.GetTimeout().AsDuration().Nanoseconds(), ev.ProjectId, ev.Number, ev.ConcurrencyKey, max(ev.ConcurrencyLimit, 1), ev.CancelInProgress)
		}
	case *eventsv1.RunStarted:
		// The deadline: the run's timeout and a grace after it started, when the runner
		// should long have ended it (0 without a timeout).
		_, err = tx.ExecContext(ctx, s.db.Q(`UPDATE sched_jobs SET state = 'running', runner_id = ?, lease_id = ?, lease_expires = ?,
			deadline = CASE WHEN timeout_ns > 0 THEN ? + timeout_ns ELSE 0 END WHERE run_id = ?`),
			ev.RunnerId, ev.LeaseId, time.Now().Add(s.cfg.LeaseDuration).UnixNano(), ev.StartedAt.AsTime().Add(s.cfg.TimeoutGrace).UnixNano(), ev.RunId)
	case *eventsv1.RunRequeued:
		_, err = tx.ExecContext(ctx, s.db.Q(`UPDATE sched_jobs SET state = 'queued', runner_id = '', lease_id = '', lease_expires = 0, deadline = 0, attempt = ? WHERE run_id = ?`),
			ev.Attempt, ev.RunId)
	case *eventsv1.RunCancelRequested:
		_, err = tx.ExecContext(ctx, s.db.Q(`UPDATE sched_jobs SET cancel_requested = TRUE WHERE run_id = ?`), ev.RunId)
	case *eventsv1.RunFinished:
		_, err = tx.ExecContext(ctx, s.db.Q(`DELETE FROM sched_jobs WHERE run_id = ?`), ev.RunId)
	}
	return err
}

// oldestQueued returns the run id of the oldest queued job of tiers that its concurrency
// key lets start ("" when none).
func (s *Service) oldestQueued(ctx context.Context, tiers []string) (string, error) {
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(tiers)), ", ")
	args := make([]any, len(tiers))
	for i, t := range tiers {
		args[i] = t
	}
	var runID string
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT run_id FROM sched_jobs me WHERE state = 'queued' AND tier IN (`+marks+`)
		AND (concurrency_key = '' OR `+keyBefore+` < concurrency_limit)
		ORDER BY created_at, run_id LIMIT 1`), args...).Scan(&runID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return runID, err
}

// rebuildJobs recreates the job queue and the run numbers from the log, in tx.
func (s *Service) rebuildJobs(ctx context.Context, tx *sql.Tx) (int, error) {
	for _, t := range []string{"sched_jobs", "sched_run_numbers"} {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t); err != nil {
			return 0, err
		}
	}
	st := s.store.WithTx(tx)
	var pos int64
	n := 0
	for {
		evs, err := st.ReadAll(ctx, pos, batchSize)
		if err != nil || len(evs) == 0 {
			return n, err
		}
		for _, e := range evs {
			if err := s.applyStored(ctx, tx, e); err != nil {
				return n, err
			}
			pos = e.Position
			n++
		}
	}
}

func (s *Service) applyStored(ctx context.Context, tx execer, e eventstore.Event) error {
	m, err := event.Decode(e.Type, e.Payload)
	if err != nil {
		return fmt.Errorf("event %d: %w", e.Position, err)
	}
	// A number already passed (errRetry) changes nothing when rebuilding.
	if err := s.applyJob(ctx, tx, m); err != nil && !errors.Is(err, errRetry) {
		return fmt.Errorf("job queue: event %d (%s): %w", e.Position, e.Type, err)
	}
	return nil
}
