package domain

import (
	"fmt"
	"time"

	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Release takes the run back from the runner holding lease, which stopped it unfinished
// (it had to stop at once): the run goes back to the queue for another runner, as the
// next attempt. A hand-back is not a failure of the run, so it does not count against
// the retries of a lost runner. A run being cancelled ends cancelled instead. A lease
// that is not the run's current one is refused (ErrLeaseLost).
func (r *Run) Release(lease, why string, now time.Time) (proto.Message, error) {
	if r.Version == 0 {
		return nil, fmt.Errorf("run %s: %w", r.ID, ErrNotFound)
	}
	if r.Status != RunRunning || r.LeaseID != lease {
		return nil, fmt.Errorf("run %s: lease %s: %w", r.ID, lease, ErrLeaseLost)
	}
	if why == "" {
		why = "the runner stopped"
	}
	if r.CancelRequested {
		return &eventsv1.RunFinished{RunId: r.ID, OrgId: r.OrgID, ProjectId: r.ProjectID, Status: RunCancelled,
			Reason: r.cancelledBecause("the runner stopped (" + why + ")"), FinishedAt: timestamppb.New(now), Attempt: r.Attempt}, nil
	}
	next := r.Attempt + 1
	return &eventsv1.RunRequeued{RunId: r.ID, OrgId: r.OrgID, ProjectId: r.ProjectID,
		Reason:  fmt.Sprintf("handed back by runner %s (%s); attempt %d on another runner", r.RunnerID, why, next),
		Attempt: next, At: timestamppb.New(now), HandedBack: true}, nil
}
