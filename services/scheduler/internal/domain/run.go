// Package domain holds the Run aggregate: its state is the fold of its events, and its
// commands check that a transition is allowed before an event is recorded.
package domain

import (
	"errors"
	"time"

	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"google.golang.org/protobuf/proto"
)

// Run statuses (API.md).
const (
	RunQueued    = "queued"
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
	RunCancelled = "cancelled"
	RunTimedOut  = "timed_out"
	RunErrored   = "errored"
)

// Step statuses (API.md).
const (
	StepPending = "pending"
	StepRunning = "running"
	StepSkipped = "skipped"
)

// ErrTransition is returned by a command the run's state does not allow.
var ErrTransition = errors.New("transition not allowed")

// StreamID is the event stream of run id.
func StreamID(runID string) string { return "run-" + runID }

// Step is the state of one step.
type Step struct {
	Index             int32
	Name              string
	Status            string
	ExitCode          int32
	Reason            string
	Started, Finished time.Time
}

// Run is the state of a run, folded from its events.
type Run struct {
	ID, OrgID, ProjectID                       string
	Number                                     int64
	Status, Reason                             string
	Tier, Provider, Repository                 string
	Event, Ref, Branch, SHA, Actor, DeliveryID string
	// CommitMessage is the commit's message as the forge read it (at most 1 KiB; "" when unknown).
	CommitMessage              string
	Created, Started, Finished time.Time
	Steps                      []Step
	LeaseID, RunnerID          string
	// Attempt numbers the executions of the run from 1 (a requeued run runs again).
	Attempt int32
	// Lost counts the attempts whose runner was lost (not those handed back).
	Lost int32
	// Isolation is the current attempt's isolation line, as its runner reported it.
	Isolation string
	// CancelRequested is set once someone asked to stop the run.
	CancelRequested bool
	// CancelReason is why the scheduler asked to stop it ("superseded by run N"); "" when
	// a user did. The run ends cancelled with it.
	CancelReason string
	// Queued holds the RunQueued event, which carries what a runner needs.
	Queued *eventsv1.RunQueued
	// Waiting is when the current attempt was queued (the run's queuing, or its requeue).
	Waiting time.Time
	// Version is the stream version the state reflects.
	Version int64
	// ids are the ids of the events folded with ApplyEvent.
	ids map[string]struct{}
}

// ApplyEvent folds one recorded event and remembers its id (see Has).
func (r *Run) ApplyEvent(id string, ev proto.Message, recorded time.Time) {
	if r.ids == nil {
		r.ids = map[string]struct{}{}
	}
	r.ids[id] = struct{}{}
	r.Apply(ev, recorded)
}

// Has reports whether an event with id was folded into the state: a command whose
// event is already recorded (a retried report) is answered without checking it again.
func (r *Run) Has(id string) bool {
	_, ok := r.ids[id]
	return ok
}

// Trust is whose code the run builds, as the forge said when the run was requested. A
// RunQueued recorded before the field existed carries none (TRUST_UNSPECIFIED): a pull
// request then stays unknown, which counts as a fork, while a push, tag, manual or
// scheduled run only ever built the project's own repository and is read as the same
// repository.
func (r *Run) Trust() eventsv1.Trust {
	t := r.Queued.GetTrust()
	if t == eventsv1.Trust_TRUST_UNSPECIFIED && r.Queued.GetEvent() != EventPullRequest {
		return eventsv1.Trust_TRUST_SAME_REPOSITORY
	}
	return t
}

// Trusted reports whether the run may have the project's secrets and the network: only
// when its code is positively of the project's own repository.
func (r *Run) Trusted() bool { return r.Trust() == eventsv1.Trust_TRUST_SAME_REPOSITORY }

// TrustName is the API's name of a trust: same_repository, fork or unknown.
func TrustName(t eventsv1.Trust) string {
	switch t {
	case eventsv1.Trust_TRUST_SAME_REPOSITORY:
		return "same_repository"
	case eventsv1.Trust_TRUST_FORK:
		return "fork"
	}
	return "unknown"
}

// EventPullRequest is the event of a pull request (forge.EventPullRequest).
const EventPullRequest = "pull_request"

// Done reports whether the run reached a final status.
func (r *Run) Done() bool { return finalStatus(r.Status) }

// Apply folds one event into the state.
func (r *Run) Apply(ev proto.Message, recorded time.Time) {
	switch e := ev.(type) {
	case *eventsv1.RunQueued:
		r.ID, r.OrgID, r.ProjectID, r.Number = e.RunId, e.OrgId, e.ProjectId, e.Number
		r.Status, r.Tier, r.Provider, r.Repository = RunQueued, e.Tier, e.Provider, e.Repository
		r.Event, r.Ref, r.Branch, r.SHA, r.Actor, r.DeliveryID = e.Event, e.Ref, e.Branch, e.Sha, e.Actor, e.DeliveryId
		r.CommitMessage = e.CommitMessage
		r.Created = e.QueuedAt.AsTime()
		r.Steps = make([]Step, len(e.StepNames))
		for i, n := range e.StepNames {
			r.Steps[i] = Step{Index: int32(i), Name: n, Status: StepPending}
		}
		r.Queued = e
		r.Attempt = 1
		r.Waiting = r.Created
	case *eventsv1.RunRequeued:
		r.Status, r.Attempt, r.LeaseID, r.RunnerID, r.Started = RunQueued, e.Attempt, "", "", time.Time{}
		r.Waiting = recorded
		if e.At != nil {
			r.Waiting = e.At.AsTime()
		}
		if !e.HandedBack {
			r.Lost++
		}
		r.Isolation = ""
		for i := range r.Steps {
			r.Steps[i] = Step{Index: r.Steps[i].Index, Name: r.Steps[i].Name, Status: StepPending}
		}
	case *eventsv1.RunCancelRequested:
		r.CancelRequested, r.CancelReason = true, e.Reason
	case *eventsv1.RunStarted:
		r.Status, r.Started, r.LeaseID, r.RunnerID = RunRunning, e.StartedAt.AsTime(), e.LeaseId, e.RunnerId
	case *eventsv1.RunIsolation:
		r.Isolation = e.Isolation
	case *eventsv1.StepStarted:
		if s := r.step(e.StepIndex); s != nil {
			s.Status, s.Started = StepRunning, e.StartedAt.AsTime()
		}
	case *eventsv1.StepSkipped:
		if s := r.step(e.StepIndex); s != nil {
			s.Status, s.Reason = StepSkipped, e.Reason
		}
	case *eventsv1.StepFinished:
		if s := r.step(e.StepIndex); s != nil {
			s.Status, s.ExitCode, s.Reason, s.Finished = e.Status, e.ExitCode, e.Reason, e.FinishedAt.AsTime()
			if e.StartedAt != nil && s.Started.IsZero() {
				s.Started = e.StartedAt.AsTime()
			}
		}
	case *eventsv1.RunFinished:
		r.Status, r.Reason, r.Finished = e.Status, e.Reason, e.FinishedAt.AsTime()
		if r.ID == "" {
			r.ID, r.OrgID, r.ProjectID = e.RunId, e.OrgId, e.ProjectId
		}
		// Steps that never ran end with the run.
		for i := range r.Steps {
			switch r.Steps[i].Status {
			case StepPending:
				r.Steps[i].Status = StepSkipped
				if r.Steps[i].Reason == "" {
					r.Steps[i].Reason = "run ended: " + e.Status
				}
			case StepRunning:
				r.Steps[i].Status = e.Status
				if e.Status == RunErrored || e.Status == RunFailed {
					r.Steps[i].Status = RunFailed
				}
				r.Steps[i].Reason = e.Reason
				r.Steps[i].Finished = r.Finished
			}
		}
	}
	r.Version++
}

func (r *Run) step(i int32) *Step {
	if i < 0 || int(i) >= len(r.Steps) {
		return nil
	}
	return &r.Steps[i]
}

// Clone returns a copy of the state that later decisions on r do not change (the ids of
// folded events are left out: Has answers false on the copy).
func (r *Run) Clone() *Run {
	c := *r
	c.Steps = append([]Step(nil), r.Steps...)
	c.ids = nil
	return &c
}
