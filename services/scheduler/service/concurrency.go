package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/simpleci/simpleci/libs/pipeline"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
)

// Concurrency groups (docs/adr/0028-concurrency-groups.md). The job queue holds each
// job's project, number and key; the rules are domain.Run's (CheckKey, Supersede).
//
// A run may start when fewer than its limit of runs of its key count before it: the
// running ones and the queued ones with a smaller number. Run numbers of a project are
// committed in order (the guarded upsert of sched_run_numbers), so whenever a run is
// visible every older run of its project is too, and starting an older run moves it from
// "queued before" to "running" in every newer run's count: two schedulers deciding on two
// runs of one key at once cannot both start over the limit, whichever snapshot each read
// (PostgreSQL, read committed) or when the transactions serialise (SQLite).

// keyBefore is the part of a query that counts, for the job me, the jobs of its key that
// count before it.
const keyBefore = `(SELECT COUNT(*) FROM sched_jobs o WHERE o.project_id = me.project_id AND o.concurrency_key = me.concurrency_key
	AND o.run_id <> me.run_id AND (o.state = 'running' OR o.number < me.number))`

// countBefore returns how many runs of run's key count before it (0 when it has no job
// or no key), read through q.
func (s *Service) countBefore(ctx context.Context, q querier, runID string) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, s.db.Q(`SELECT CASE WHEN me.concurrency_key = '' THEN 0 ELSE `+keyBefore+` END
		FROM sched_jobs me WHERE me.run_id = ?`), runID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

// querier reads through a transaction or the database.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// keyWaiting counts the queued runs of a project's key, read through tx.
func (s *Service) keyWaiting(ctx context.Context, tx querier, project, key string) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM sched_jobs WHERE project_id = ? AND concurrency_key = ? AND state = 'queued'`),
		project, key).Scan(&n)
	return n, err
}

// renderKey fills q's concurrency from the pipeline: the key rendered over the run's
// context (what its steps see, without run_number, which is taken later and would make
// every key unique) and the job's variables. It returns why the run cannot start when
// the key does not render.
func renderKey(pl *pipeline.Pipeline, q *eventsv1.RunQueued) string {
	c := pl.Concurrency
	if c == nil {
		return ""
	}
	ctx := map[string]any{}
	for k, v := range runContext(q, domain.TrustName((&domain.Run{Queued: q}).Trust())) {
		if k != "run_number" {
			ctx[k] = v
		}
	}
	ctx["inputs"] = pl.InputValues(q.Inputs)
	key, err := c.RenderKey(pipeline.Vars{Context: ctx, Env: map[string]string{}})
	if err != nil {
		return fmt.Sprintf("invalid pipeline: %s:%d:%d: %v", q.PipelinePath, c.Pos.Line, c.Pos.Col, err)
	}
	q.ConcurrencyKey, q.ConcurrencyLimit, q.CancelInProgress = key, int32(c.Limit), c.CancelInProgress
	return ""
}

// keyFull returns why a run of q's key cannot be queued (the key's queue is full), read in
// the transaction that would queue it: a run that supersedes the older ones never finds
// it full.
func (s *Service) keyFull(ctx context.Context, tx querier, q *eventsv1.RunQueued) (string, error) {
	if q.ConcurrencyKey == "" || q.CancelInProgress {
		return "", nil
	}
	n, err := s.keyWaiting(ctx, tx, q.ProjectId, q.ConcurrencyKey)
	if err != nil || n < domain.MaxKeyQueue {
		return "", err
	}
	return domain.KeyQueueFull(q.ConcurrencyKey, n), nil
}

// supersession is a run to cancel because a newer run of its key, with cancelInProgress,
// replaces it.
type supersession struct {
	runID string
	by    int64
}

// supersede cancels the runs superseded by newer runs of their key
// (domain.Run.Supersede), of one project and key, or of all ("", ""). Each is its own
// decision (one append per transaction): a newer run is queued first, and its
// supersessions follow, right after it from the scheduler that queued it, and from every
// scheduler's sweep should that one have stopped in between.
func (s *Service) supersede(ctx context.Context, project, key string) error {
	where, args := "", []any{}
	if project != "" {
		where, args = " AND o.project_id = ? AND o.concurrency_key = ?", []any{project, key}
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT o.run_id, MAX(j.number) FROM sched_jobs o
		JOIN sched_jobs j ON j.project_id = o.project_id AND j.concurrency_key = o.concurrency_key AND j.number > o.number
		WHERE j.cancel_in_progress AND o.concurrency_key <> '' AND NOT o.cancel_requested`+where+`
		GROUP BY o.run_id`), args...)
	if err != nil {
		return fmt.Errorf("find superseded runs: %w", err)
	}
	var todo []supersession
	for rows.Next() {
		var x supersession
		if err := rows.Scan(&x.runID, &x.by); err != nil {
			rows.Close()
			return err
		}
		todo = append(todo, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var errs []error
	for _, x := range todo {
		r, err := s.decide(ctx, x.runID, func(r *domain.Run) ([]recorded, error) {
			msgs, err := r.Supersede(x.by, time.Now())
			return withIDs(msgs...), err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("supersede run %s: %w", x.runID, err))
			continue
		}
		s.log.Info("run superseded", "run", r.ID, "number", r.Number, "by", x.by, "status", r.Status)
	}
	return errors.Join(errs...)
}

// keyWaitReason says why a queued run waits on its concurrency key, naming the runs that
// hold it ("" when it has no key or the key does not hold it).
func (s *Service) keyWaitReason(ctx context.Context, runID string) string {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT o.number, o.state, me.concurrency_key, me.concurrency_limit FROM sched_jobs o, sched_jobs me
		WHERE me.run_id = ? AND me.concurrency_key <> '' AND o.project_id = me.project_id AND o.concurrency_key = me.concurrency_key
		AND o.run_id <> me.run_id AND (o.state = 'running' OR o.number < me.number) ORDER BY o.number`), runID)
	if err != nil {
		return ""
	}
	defer rows.Close()
	var running, ahead []int64
	var key string
	var limit int
	for rows.Next() {
		var n int64
		var st string
		if rows.Scan(&n, &st, &key, &limit) != nil {
			return ""
		}
		if st == "running" {
			running = append(running, n)
		} else {
			ahead = append(ahead, n)
		}
	}
	if rows.Err() != nil || key == "" {
		return ""
	}
	return domain.KeyWaitReason(key, limit, running, ahead)
}
