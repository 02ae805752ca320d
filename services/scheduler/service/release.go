package service

import (
	"context"
	"time"

	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
)

// ReleaseJob takes a job back from a runner that must stop at once (domain.Run.Release):
// the run is requeued for another runner in the same decision, where a lost runner
// would make it wait for its lease to lapse.
func (s *Service) ReleaseJob(ctx context.Context, req *runnerv1.ReleaseJobRequest) (*runnerv1.ReleaseJobResponse, error) {
	runner, err := requireRunner(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetRunId() == "" || req.GetLeaseId() == "" {
		return nil, invalid("run_id and lease_id are required")
	}
	r, err := s.decide(ctx, req.RunId, func(r *domain.Run) ([]recorded, error) {
		if err := r.CheckHolder(runner, req.LeaseId); err != nil {
			return nil, err
		}
		ev, err := r.Release(req.LeaseId, req.GetReason(), time.Now())
		if err != nil {
			return nil, err
		}
		return []recorded{{id: newID(), msg: ev}}, nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("job handed back", "run", r.ID, "status", r.Status, "attempt", r.Attempt, "reason", req.GetReason())
	return &runnerv1.ReleaseJobResponse{}, nil
}
