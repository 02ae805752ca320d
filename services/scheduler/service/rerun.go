package service

import (
	"context"
	"fmt"
	"time"

	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RerunRun starts a new run that runs a finished one again (domain.Run.Rerun): the same
// commit, context, trust and pipeline snapshot, linked to the original by rerun_of. The
// original's stream is only read. The new run takes the next number of the project; a
// run of a deleted project is not re-run.
func (s *Service) RerunRun(ctx context.Context, req *apiv1.RerunRunRequest) (*apiv1.Run, error) {
	org, err := requireOrg(ctx)
	if err != nil {
		return nil, err
	}
	orig, err := load(ctx, s.store, req.GetRun())
	if err != nil {
		return nil, err
	}
	if orig.Version == 0 || orig.OrgID != org {
		return nil, fmt.Errorf("run %q: %w", req.GetRun(), domain.ErrNotFound)
	}
	q, err := orig.Rerun(newID(), actor(ctx), req.GetFromFailed(), time.Now())
	if err != nil {
		return nil, err
	}
	// A deleted project's runs stay readable, but run no more.
	if _, _, err := s.callersProject(ctx, orig.ProjectID); status.Code(err) == codes.NotFound {
		return nil, status.Errorf(codes.FailedPrecondition, "run %d: its project was deleted; it cannot be re-run", orig.Number)
	} else if err != nil {
		return nil, status.Errorf(codes.Unavailable, "re-run: resolve the project: %v", err)
	}
	r, err := s.enqueue(ctx, q, nil, "")
	if err != nil {
		return nil, err
	}
	s.log.Info("run re-run queued", "run", r.ID, "number", r.Number, "rerun_of", orig.ID, "from_failed", req.GetFromFailed(),
		"reused_steps", len(q.ReusedSteps))
	return toAPI(r, true), nil
}
