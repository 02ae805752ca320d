package service

import (
	"context"
	"fmt"

	"github.com/simpleci/simpleci/libs/platform/sqldb"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ReleaseJob takes a job back from a runner that must stop at once: the run is requeued
// for another runner now (RunRequeued, next attempt), where a lost runner would make it
// wait for its lease to lapse. A hand-back is not a failure of the run, so it does not
// count against LostRunRetries. A run whose cancel was requested ends cancelled instead.
func (s *Service) ReleaseJob(ctx context.Context, req *runnerv1.ReleaseJobRequest) (*runnerv1.ReleaseJobResponse, error) {
	if err := requireRunner(ctx); err != nil {
		return nil, err
	}
	if req.GetRunId() == "" || req.GetLeaseId() == "" {
		return nil, invalid("run_id and lease_id are required")
	}
	ok, err := s.leaseValid(ctx, req.RunId, req.LeaseId)
	if err != nil {
		return nil, sqldb.Status(ctx, "release job", err)
	}
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "lease %s of run %s is no longer held", req.LeaseId, req.RunId)
	}
	why := req.GetReason()
	if why == "" {
		why = "the runner stopped"
	}
	r, err := s.update(ctx, req.RunId, func(r *domain.Run) ([]recorded, error) {
		if r.Status != domain.RunRunning || r.LeaseID != req.LeaseId || r.CancelRequested {
			return nil, nil
		}
		next := r.Attempt + 1
		return []recorded{{newID(), &eventsv1.RunRequeued{RunId: r.ID, OrgId: r.OrgID, ProjectId: r.ProjectID,
			Reason:  fmt.Sprintf("handed back by runner %s (%s); attempt %d on another runner", r.RunnerID, why, next),
			Attempt: next, At: timestamppb.Now()}}}, nil
	})
	if err != nil {
		return nil, reportErr(err)
	}
	switch {
	case r.Status == domain.RunQueued:
		if err := s.requeueJob(ctx, r.ID, r.Attempt); err != nil {
			return nil, status.Errorf(codes.Internal, "requeue job: %v", err)
		}
		s.log.Info("job handed back; run requeued", "run", r.ID, "attempt", r.Attempt, "reason", why)
	case r.CancelRequested && !r.Done():
		if err := s.finishJob(ctx, r.ID, "", domain.RunCancelled, "cancelled; the runner stopped", 0); err != nil {
			return nil, err
		}
	}
	return &runnerv1.ReleaseJobResponse{}, nil
}
