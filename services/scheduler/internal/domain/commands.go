package domain

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The domain's errors. Commands wrap one of them; the scheduler's gRPC interceptor maps
// each to one status code (NotFound, FailedPrecondition, InvalidArgument,
// PermissionDenied), so handlers never choose codes for rule violations themselves.
var (
	// ErrNotFound: the run does not exist (or belongs to another organisation).
	ErrNotFound = errors.New("not found")
	// ErrLeaseLost: the caller's lease is not the run's current one (it lapsed, the run
	// was requeued or it ended).
	ErrLeaseLost = errors.New("lease no longer held")
	// ErrInvalid: the command itself is malformed (e.g. a status that is not final).
	ErrInvalid = errors.New("invalid")
	// ErrNotHolder: the caller presents the run's current lease but is not the runner
	// it was given to (a lease id that leaked to another runner).
	ErrNotHolder = errors.New("not the lease's holder")
)

// CheckHolder refuses runner when it presents the run's current lease that was given to
// another runner. Any other lease is the commands' business (ErrLeaseLost).
func (r *Run) CheckHolder(runner, lease string) error {
	if lease != "" && lease == r.LeaseID && runner != r.RunnerID {
		return fmt.Errorf("run %s: its lease was given to another runner, not %s: %w", r.ID, runner, ErrNotHolder)
	}
	return nil
}

// Start hands a queued run to runner under lease.
func (r *Run) Start(runner, lease string, now time.Time) (*eventsv1.RunStarted, error) {
	if r.Version == 0 {
		return nil, fmt.Errorf("run %s: %w", r.ID, ErrNotFound)
	}
	if r.Status != RunQueued || r.CancelRequested {
		return nil, fmt.Errorf("run %s is %s, not queued: %w", r.ID, r.Status, ErrTransition)
	}
	return &eventsv1.RunStarted{RunId: r.ID, OrgId: r.OrgID, ProjectId: r.ProjectID,
		RunnerId: runner, LeaseId: lease, StartedAt: timestamppb.New(now)}, nil
}

// Observe checks a runner's observation (StepStarted, StepSkipped, StepFinished,
// RunIsolation) against the run and stamps the run's identity on it, so that a runner
// cannot write into another tenant's run. The run must be running under lease; steps
// are reported in order: a step starts or is skipped only once every step before it is
// decided and none is running, and only a running step finishes.
func (r *Run) Observe(lease string, ev proto.Message) error {
	if r.Version == 0 {
		return fmt.Errorf("run %s: %w", r.ID, ErrNotFound)
	}
	if lease == "" || lease != r.LeaseID || r.Status != RunRunning {
		return fmt.Errorf("lease %s of run %s (now %s): %w", lease, r.ID, r.Status, ErrLeaseLost)
	}
	switch e := ev.(type) {
	case *eventsv1.StepStarted:
		if err := r.canBegin(e.StepIndex); err != nil {
			return err
		}
		e.RunId, e.OrgId, e.ProjectId = r.ID, r.OrgID, r.ProjectID
	case *eventsv1.StepSkipped:
		if err := r.canBegin(e.StepIndex); err != nil {
			return err
		}
		e.RunId, e.OrgId, e.ProjectId = r.ID, r.OrgID, r.ProjectID
	case *eventsv1.StepFinished:
		s := r.step(e.StepIndex)
		if s == nil {
			return fmt.Errorf("run %s has no step %d: %w", r.ID, e.StepIndex, ErrTransition)
		}
		if s.Status != StepRunning {
			return fmt.Errorf("step %d of run %s is %s, not running: %w", e.StepIndex, r.ID, s.Status, ErrTransition)
		}
		e.RunId, e.OrgId, e.ProjectId = r.ID, r.OrgID, r.ProjectID
	case *eventsv1.RunIsolation:
		e.RunId, e.OrgId, e.ProjectId, e.Attempt = r.ID, r.OrgID, r.ProjectID, r.Attempt
	default:
		return fmt.Errorf("unexpected report %T: %w", ev, ErrInvalid)
	}
	return nil
}

// canBegin says whether step i may start or be skipped now.
func (r *Run) canBegin(i int32) error {
	s := r.step(i)
	if s == nil {
		return fmt.Errorf("run %s has no step %d: %w", r.ID, i, ErrTransition)
	}
	if s.Status != StepPending {
		return fmt.Errorf("step %d of run %s is already %s: %w", i, r.ID, s.Status, ErrTransition)
	}
	for _, before := range r.Steps[:i] {
		if before.Status == StepPending || before.Status == StepRunning {
			return fmt.Errorf("step %d of run %s reported before step %d (%s) ended: %w", i, r.ID, before.Index, before.Status, ErrTransition)
		}
	}
	return nil
}

// finalStatus reports whether st ends a run.
func finalStatus(st string) bool {
	switch st {
	case RunSucceeded, RunFailed, RunCancelled, RunTimedOut, RunErrored:
		return true
	}
	return false
}

// Finish ends the run. lease is the reporting runner's ("" when the scheduler itself
// ends it: a lost runner, a failure to hand the job over). Finishing a run that already
// ended returns no event and no error, so a retried end report changes nothing.
func (r *Run) Finish(lease, st, reason string, lastLogSeq int64, now time.Time) (*eventsv1.RunFinished, error) {
	if !finalStatus(st) {
		return nil, fmt.Errorf("run status %q is not a final status: %w", st, ErrInvalid)
	}
	if r.Version == 0 {
		return nil, fmt.Errorf("run %s: %w", r.ID, ErrNotFound)
	}
	if r.Done() {
		if lease != "" && lease != r.LeaseID {
			return nil, fmt.Errorf("lease %s of run %s (now %s): %w", lease, r.ID, r.Status, ErrLeaseLost)
		}
		return nil, nil
	}
	if lease != "" && (lease != r.LeaseID || r.Status != RunRunning) {
		return nil, fmt.Errorf("lease %s of run %s (now %s): %w", lease, r.ID, r.Status, ErrLeaseLost)
	}
	if st == RunCancelled && r.CancelReason != "" { // the runner only knows it was told to stop
		reason = r.CancelReason
	}
	// The attempt says whose output last_log_sequence counts: the log service judges the
	// completeness of that attempt's log (a requeued run's log starts again).
	return &eventsv1.RunFinished{RunId: r.ID, OrgId: r.OrgID, ProjectId: r.ProjectID, Status: st, Reason: reason,
		FinishedAt: timestamppb.New(now), LastLogSequence: lastLogSeq, Attempt: r.Attempt}, nil
}

// Cancel asks the run to stop: a queued run ends cancelled at once; a running one is
// marked, and its runner stops it. Cancelling an ended run, or one already being
// cancelled, records nothing.
func (r *Run) Cancel(actor string, now time.Time) ([]proto.Message, error) {
	return r.cancel(actor, "", "cancelled by "+actor+" before it started", now)
}

// Supersede cancels the run because run number by (a newer run of its concurrency key,
// with cancelInProgress) replaces it: as Cancel, and the run ends cancelled with reason
// "superseded by run N" whether it was queued or its runner stops it.
func (r *Run) Supersede(by int64, now time.Time) ([]proto.Message, error) {
	why := fmt.Sprintf("superseded by run %d", by)
	return r.cancel("", why, why, now)
}

// cancel records that the run is to stop (reason: why the scheduler asks, "" for a user),
// and ends a queued run cancelled with queuedReason.
func (r *Run) cancel(actor, reason, queuedReason string, now time.Time) ([]proto.Message, error) {
	if r.Version == 0 {
		return nil, fmt.Errorf("run %s: %w", r.ID, ErrNotFound)
	}
	if r.Done() || r.CancelRequested {
		return nil, nil
	}
	evs := []proto.Message{&eventsv1.RunCancelRequested{RunId: r.ID, OrgId: r.OrgID, ProjectId: r.ProjectID, Actor: actor,
		At: timestamppb.New(now), Reason: reason}}
	if r.Status == RunQueued {
		evs = append(evs, &eventsv1.RunFinished{RunId: r.ID, OrgId: r.OrgID, ProjectId: r.ProjectID, Status: RunCancelled,
			Reason: queuedReason, FinishedAt: timestamppb.New(now), Attempt: r.Attempt})
	}
	return evs, nil
}

// cancelledBecause is the reason of a run that ends cancelled because detail happened
// after it was asked to stop.
func (r *Run) cancelledBecause(detail string) string {
	return cmp.Or(r.CancelReason, "cancelled") + "; " + detail
}

// LoseRunner handles a lease that lapsed (lease is the lapsed one): the run goes back to
// the queue for another runner while it has retries left (fewer than retries runners were
// lost before; hand-backs do not count), else it
// fails with reason "runner lost"; a run being cancelled ends cancelled. A run no longer
// running under that lease records nothing.
func (r *Run) LoseRunner(lease string, retries int, leaseDuration time.Duration, now time.Time) proto.Message {
	if r.Status != RunRunning || r.LeaseID != lease {
		return nil
	}
	lost := fmt.Sprintf("runner lost: no heartbeat for %s", leaseDuration)
	end := func(st, reason string) proto.Message {
		return &eventsv1.RunFinished{RunId: r.ID, OrgId: r.OrgID, ProjectId: r.ProjectID, Status: st, Reason: reason,
			FinishedAt: timestamppb.New(now), Attempt: r.Attempt}
	}
	switch {
	case r.CancelRequested:
		return end(RunCancelled, r.cancelledBecause("the runner stopped answering"))
	case int(r.Lost) >= retries:
		return end(RunFailed, lost)
	}
	next := r.Attempt + 1
	return &eventsv1.RunRequeued{RunId: r.ID, OrgId: r.OrgID, ProjectId: r.ProjectID,
		Reason: fmt.Sprintf("%s (runner %s); attempt %d on another runner", lost, r.RunnerID, next), Attempt: next, At: timestamppb.New(now)}
}

// Expire ends a run that its runner (holding lease) let run past its timeout and grace:
// the runner enforces the timeout itself, so this is the guard for a runner that stopped
// reporting while still heartbeating. Nothing when the run is no longer running under
// lease, or its time is not up at now.
func (r *Run) Expire(lease string, grace time.Duration, now time.Time) proto.Message {
	if r.Status != RunRunning || r.LeaseID != lease || r.Queued.GetTimeout() == nil {
		return nil
	}
	timeout := r.Queued.GetTimeout().AsDuration()
	if timeout <= 0 || now.Before(r.Started.Add(timeout+grace)) {
		return nil
	}
	return &eventsv1.RunFinished{RunId: r.ID, OrgId: r.OrgID, ProjectId: r.ProjectID, Status: RunTimedOut,
		Reason:     fmt.Sprintf("run exceeded its timeout of %s; its runner did not end it within %s", timeout, grace),
		FinishedAt: timestamppb.New(now), Attempt: r.Attempt}
}

// Rerun chooses the RunQueued of a new run (id newID, queued at now, asked for by actor)
// that runs r again: the same commit, ref, event, context, trust and pipeline snapshot
// (r's RunQueued copied, the pipeline not read again). fromFailed takes over every step
// before r's first failed, timed out or cancelled step instead of running it again. Only
// a finished run can be re-run, and only one that had a pipeline (a run that errored
// before it started has none); fromFailed only one that did not succeed. The number is
// left for the caller to assign.
func (r *Run) Rerun(newID, actor string, fromFailed bool, now time.Time) (*eventsv1.RunQueued, error) {
	if r.Version == 0 || r.Queued == nil {
		return nil, fmt.Errorf("run %s: %w", r.ID, ErrNotFound)
	}
	if !r.Done() {
		return nil, fmt.Errorf("run %d is %s: only a finished run can be re-run (cancel it or wait): %w", r.Number, r.Status, ErrTransition)
	}
	if r.Queued.GetPipelineSha256() == "" && len(r.Queued.GetPipeline()) == 0 {
		return nil, fmt.Errorf("run %d errored before it started (%s): it has no pipeline to re-run; trigger a new run: %w", r.Number, r.Reason, ErrTransition)
	}
	q := proto.Clone(r.Queued).(*eventsv1.RunQueued)
	q.RunId, q.Number, q.Actor, q.QueuedAt, q.DeliveryId = newID, 0, actor, timestamppb.New(now), ""
	q.RerunOf, q.RerunOfNumber, q.ReusedSteps = r.ID, r.Number, nil
	if !fromFailed {
		return q, nil
	}
	if r.Status == RunSucceeded {
		return nil, fmt.Errorf("run %d succeeded: there is no failed step to re-run from; re-run the whole run: %w", r.Number, ErrTransition)
	}
	first := -1
	for i, s := range r.Steps {
		if s.Status == RunFailed || s.Status == RunTimedOut || s.Status == RunCancelled {
			first = i
			break
		}
	}
	if first < 0 {
		return nil, fmt.Errorf("run %d (%s) has no failed, timed out or cancelled step: re-run the whole run: %w", r.Number, r.Status, ErrTransition)
	}
	for _, s := range r.Steps[:first] {
		code := s.ExitCode
		if s.Status == StepSkipped {
			code = -1 // as the engine gives a skipped step in steps.<id>.exit_code
		}
		q.ReusedSteps = append(q.ReusedSteps, &eventsv1.ReusedStep{StepIndex: s.Index, Status: s.Status, ExitCode: code,
			Reason: fmt.Sprintf("%s in run %d", s.Status, r.Number)})
	}
	return q, nil
}

// ExpireQueue ends a run that has waited in its tier's queue (since it was queued, or
// requeued) for limit or longer without a runner taking it: errored, with why it
// waited (why, e.g. that no runner of its tier is connected). Nothing for a run that is
// not queued, a limit of 0, or a wait not that long yet at now.
func (r *Run) ExpireQueue(limit time.Duration, why string, now time.Time) proto.Message {
	if r.Status != RunQueued || limit <= 0 || now.Sub(r.Waiting) < limit {
		return nil
	}
	reason := fmt.Sprintf("queued for more than %s without starting", limit)
	if why != "" {
		reason += " (" + why + ")"
	}
	return &eventsv1.RunFinished{RunId: r.ID, OrgId: r.OrgID, ProjectId: r.ProjectID, Status: RunErrored,
		Reason: reason, FinishedAt: timestamppb.New(now), Attempt: r.Attempt}
}
