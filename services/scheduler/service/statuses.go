package service

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/simpleci/simpleci/libs/eventstore"
	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/platform/event"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
)

// Commit statuses: a third follower of the event log ("statuses", on the leader like
// the others) shows each run on its commit through a forge that can
// (forge.StatusReporter, the github forge): pending when the run is queued and
// when it starts, then success, failure or error when it finishes. It never holds
// up a run: it reads the log after the fact, tries each status a few times with
// backoff and a deadline, logs a status it could not deliver and goes on. Posting
// a status twice (a restart before the position was stored) shows the same.

// Bounds of one status delivery.
const (
	statusAttempts = 3
	statusTimeout  = 15 * time.Second
	statusBackoff  = time.Second
)

// StatusContext names SimpleCI's statuses on a commit.
const StatusContext = "simpleci"

// reportsStatuses reports whether any registered forge can show statuses.
func (s *Service) reportsStatuses() bool {
	for _, name := range s.cfg.Forges.Names() {
		if f, err := s.cfg.Forges.Lookup(name); err == nil {
			if _, ok := f.(forge.StatusReporter); ok {
				return true
			}
		}
	}
	return false
}

// followStatuses starts where the outbox is the first time it runs, so that a
// deployment that enables a forge later does not post a status for every old run.
func (s *Service) followStatuses(ctx context.Context) {
	for {
		_, err := s.db.ExecContext(ctx, s.db.Q(`INSERT INTO sched_positions (name, position)
			SELECT 'statuses', COALESCE((SELECT position FROM sched_positions WHERE name = 'outbox'), 0)
			WHERE NOT EXISTS (SELECT 1 FROM sched_positions WHERE name = 'statuses')`))
		if err == nil {
			break
		}
		s.log.Error("statuses: initial position", "err", err)
		if !sleep(ctx, time.Second) {
			return
		}
	}
	s.follow(ctx, "statuses", s.reportStatuses)
}

// reportStatuses posts the statuses of a batch of events and stores the position.
func (s *Service) reportStatuses(ctx context.Context, evs []eventstore.Event) error {
	for _, e := range evs {
		if err := s.reportStatus(ctx, e); err != nil {
			if ctx.Err() != nil {
				return err
			}
			s.log.Warn("commit status not delivered", "run", e.Metadata["run_id"], "event", e.Type, "err", err)
		}
	}
	return s.savePosition(ctx, s.db, "statuses", evs[len(evs)-1].Position)
}

// reportStatus posts the status one event means, if any, and the check run
// where the forge can show one.
func (s *Service) reportStatus(ctx context.Context, e eventstore.Event) error {
	var runID string
	var st forge.Status
	switch e.Type {
	case event.TypeOf(&eventsv1.RunQueued{}), event.TypeOf(&eventsv1.RunStarted{}), event.TypeOf(&eventsv1.RunFinished{}):
	default:
		return nil // decoding only the events that matter keeps the follower cheap
	}
	m, err := event.Decode(e.Type, e.Payload)
	if err != nil {
		return err
	}
	switch ev := m.(type) {
	case *eventsv1.RunQueued:
		runID, st = ev.RunId, forge.Status{State: forge.StatusPending, Description: "queued"}
	case *eventsv1.RunStarted:
		runID, st = ev.RunId, forge.Status{State: forge.StatusPending, Description: "running"}
	case *eventsv1.RunFinished:
		runID, st = ev.RunId, finishedStatus(ev.Status, ev.Reason)
	default:
		return nil
	}
	q, err := s.queuedEvent(ctx, runID)
	if err != nil || q == nil {
		return err // a run that ended before it was queued has no commit to show
	}
	f, err := s.cfg.Forges.Lookup(q.Provider)
	if err != nil {
		return nil
	}
	var errs []error
	if reporter, ok := f.(forge.StatusReporter); ok {
		st.Context = StatusContext
		st.TargetURL = s.runURL(runID)
		st.Description = fmt.Sprintf("run #%d %s", q.Number, st.Description)
		errs = append(errs, retry(ctx, func(ctx context.Context) error { return reporter.SetStatus(ctx, q.Repository, q.Sha, st) }))
	}
	if checks, ok := f.(forge.CheckReporter); ok && checks.ReportsChecks() {
		errs = append(errs, s.reportCheck(ctx, checks, q, m))
	}
	return errors.Join(errs...)
}

// finishedStatus maps a run's final status to a commit status.
func finishedStatus(status, reason string) forge.Status {
	switch status {
	case domain.RunSucceeded:
		return forge.Status{State: forge.StatusSuccess, Description: "succeeded"}
	case "failed", "timed_out":
		return forge.Status{State: forge.StatusFailure, Description: status + ": " + reason}
	}
	return forge.Status{State: forge.StatusError, Description: status + ": " + reason}
}

// queuedEvent returns the run's RunQueued, or nil when it has none.
func (s *Service) queuedEvent(ctx context.Context, runID string) (*eventsv1.RunQueued, error) {
	evs, err := s.store.ReadStream(ctx, domain.StreamID(runID), 1)
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		if e.Type != event.TypeOf(&eventsv1.RunQueued{}) {
			continue
		}
		m, err := event.Decode(e.Type, e.Payload)
		if err != nil {
			return nil, err
		}
		if q, ok := m.(*eventsv1.RunQueued); ok {
			return q, nil
		}
	}
	return nil, nil
}

// runURL is the run's API address under Config.PublicURL ("" without one).
func (s *Service) runURL(runID string) string {
	if s.cfg.PublicURL == "" {
		return ""
	}
	u, err := url.Parse(s.cfg.PublicURL)
	if err != nil {
		return ""
	}
	return u.JoinPath("api", "v1", "runs", runID).String()
}

// retry tries deliver statusAttempts times, each under statusTimeout, doubling
// the pause between tries; refusals that retrying cannot mend stop early.
func retry(ctx context.Context, deliver func(context.Context) error) error {
	pause := statusBackoff
	var err error
	for attempt := 1; attempt <= statusAttempts; attempt++ {
		actx, cancel := context.WithTimeout(ctx, statusTimeout)
		err = deliver(actx)
		cancel()
		if err == nil || errors.Is(err, forge.ErrInvalid) || errors.Is(err, forge.ErrNotFound) || errors.Is(err, forge.ErrNotAllowed) {
			return err
		}
		if attempt < statusAttempts && !sleep(ctx, pause) {
			return ctx.Err()
		}
		pause *= 2
	}
	return err
}
