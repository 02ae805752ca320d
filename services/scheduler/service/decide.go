package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/simpleci/simpleci/libs/eventstore"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/telemetry"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
	"google.golang.org/protobuf/proto"
)

// A decision is one unit of work (docs/adr/0006-one-transaction-per-decision.md): in one
// database transaction the run is loaded, a method of domain.Run chooses the events, the
// events are appended (the transaction's first write), and every row derived from them
// (the job queue, leases, run numbers) is written; then it commits. A crash at any
// point leaves either all of it or none of it. The run list is the one read model that
// follows the log asynchronously (outbox.go), from a position stored with it.

// recorded is an event to append with its id, and the blobs it refers to (blobs.go),
// stored in the same transaction.
type recorded struct {
	id    string
	msg   proto.Message
	blobs [][]byte
}

// errRetry makes decide run the decision again from a fresh load: another writer
// changed what the decision read (a concurrent append, a run number taken).
var errRetry = errors.New("retry the decision")

// maxDecisionAttempts bounds the retries of one decision on conflicts. Each conflict
// means another decision committed, so running out means heavy contention on one run.
const maxDecisionAttempts = 10

// decide runs one decision on run runID. choose gets the run as stored (Version 0 when
// it does not exist) and returns the events to record (none: nothing to write); it may
// be called again after a conflict, so it must not have side effects. decide returns
// the run with the events folded in.
func (s *Service) decide(ctx context.Context, runID string, choose func(r *domain.Run) ([]recorded, error)) (*domain.Run, error) {
	return s.decideTx(ctx, runID, func(_ *sql.Tx, r *domain.Run) ([]recorded, error) { return choose(r) })
}

// decideTx is decide for a choice that reads more than the run: it reads through tx
// (with SQLite, the transaction holds the database's only connection).
func (s *Service) decideTx(ctx context.Context, runID string, choose func(tx *sql.Tx, r *domain.Run) ([]recorded, error)) (*domain.Run, error) {
	cached := s.runs.acquire(runID)
	defer s.runs.release(runID, cached)
	for attempt := 1; ; attempt++ {
		var out *domain.Run
		var wrote []recorded
		err := s.db.Tx(ctx, func(tx *sql.Tx) error {
			st := s.store.WithTx(tx)
			r, err := foldFrom(ctx, st, runID, cached.run)
			cached.run = nil // until the decision committed
			if err != nil {
				return err
			}
			evs, err := choose(tx, r)
			if err != nil || len(evs) == 0 {
				out = r
				return err
			}
			if err := s.appendTo(ctx, st, r, runID, evs); err != nil {
				return err
			}
			if s.afterAppend != nil { // fault injection in tests (export_test.go)
				if err := s.afterAppend(ctx, tx); err != nil {
					return err
				}
			}
			if err := s.putBlobs(ctx, tx, evs); err != nil {
				return err
			}
			if err := s.applyJobs(ctx, tx, evs); err != nil {
				return err
			}
			out, wrote = r, evs
			return nil
		})
		if err != nil {
			cached.run = nil
			if (errors.Is(err, eventstore.ErrConcurrency) || errors.Is(err, errRetry)) && attempt < maxDecisionAttempts {
				// Another decision won; let it commit before trying again, jittered so
				// that the losers do not collide again in step.
				time.Sleep(time.Duration(rand.Int64N(int64(attempt) * int64(2*time.Millisecond))))
				continue
			}
			return nil, err
		}
		cached.run = out
		if len(wrote) > 0 {
			s.committed(wrote)
			s.observeCommitted(out, wrote)
		}
		return out.Clone(), nil
	}
}

// committed wakes whoever waits for what the events changed: the followers of the log,
// runners waiting for a job, heartbeats waiting for a cancel.
func (s *Service) committed(evs []recorded) {
	s.appended.Notify()
	for _, e := range evs {
		switch e.msg.(type) {
		case *eventsv1.RunQueued, *eventsv1.RunRequeued:
			s.queued.Notify()
		case *eventsv1.RunCancelRequested:
			s.cancels.Notify()
		}
	}
}

// load folds a run's stream as st sees it.
func load(ctx context.Context, st eventstore.Store, runID string) (*domain.Run, error) {
	return foldFrom(ctx, st, runID, nil)
}

// foldFrom folds into r (nil: a new state) the events of the run's stream after r's
// version, as st sees them.
func foldFrom(ctx context.Context, st eventstore.Store, runID string, r *domain.Run) (*domain.Run, error) {
	if r == nil {
		r = &domain.Run{ID: runID}
	}
	evs, err := st.ReadStream(ctx, domain.StreamID(runID), r.Version+1)
	if err != nil {
		return nil, fmt.Errorf("read run %s: %w", runID, err)
	}
	for _, e := range evs {
		m, err := event.Decode(e.Type, e.Payload)
		if err != nil {
			return nil, fmt.Errorf("run %s version %d: %w", runID, e.Version, err)
		}
		r.ApplyEvent(e.ID, m, e.RecordedAt)
	}
	return r, nil
}

// appendTo appends evs after r's version through st and folds them into r.
func (s *Service) appendTo(ctx context.Context, st eventstore.Store, r *domain.Run, runID string, evs []recorded) error {
	stored := make([]eventstore.Event, len(evs))
	org, project := r.OrgID, r.ProjectID
	if r.Version == 0 { // the first event of a stream names the org and project itself
		if q, ok := evs[0].msg.(interface {
			GetOrgId() string
			GetProjectId() string
		}); ok {
			org, project = q.GetOrgId(), q.GetProjectId()
		}
	}
	for i, e := range evs {
		b, err := event.Marshal(e.msg) // refuses an event over event.MaxEventBytes
		if err != nil {
			return fmt.Errorf("run %s: %w", runID, err)
		}
		stored[i] = eventstore.Event{ID: e.id, Type: event.TypeOf(e.msg), Payload: b,
			Metadata: map[string]string{"run_id": runID, "org_id": org, "project_id": project}}
		// The trace context of the decision (none while tracing is off): the outbox
		// publishes the event with it, so the run stays one trace (outbox.go).
		telemetry.Inject(ctx, stored[i].Metadata)
	}
	before := r.Version
	v, err := st.Append(ctx, domain.StreamID(runID), before, stored...)
	if err != nil {
		return fmt.Errorf("append to run %s: %w", runID, err)
	}
	if v != before+int64(len(evs)) {
		// Every id was already stored (a redelivered command) yet the loaded run did
		// not hold them: only possible if the stream changed since the load.
		return errRetry
	}
	now := time.Now()
	for _, e := range evs {
		r.ApplyEvent(e.id, e.msg, now)
	}
	return nil
}
