package service

import (
	"context"
	"time"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func requireRunner(ctx context.Context) error {
	if !auth.IsInternal(ctx) {
		return status.Error(codes.PermissionDenied, "only runners may call the runner protocol")
	}
	return nil
}

// maxClaimWait bounds one long poll.
const maxClaimWait = 30 * time.Second

// ClaimJob waits for a queued job of the runner's tiers. A runner waiting here is
// woken the moment a job is queued in this process; a 1 s poll covers jobs queued by
// other scheduler replicas.
func (s *Service) ClaimJob(ctx context.Context, req *runnerv1.ClaimJobRequest) (*runnerv1.ClaimJobResponse, error) {
	if err := requireRunner(ctx); err != nil {
		return nil, err
	}
	if req.GetRunnerId() == "" || len(req.GetTiers()) == 0 {
		return nil, invalid("runner_id and at least one tier are required")
	}
	wait := req.GetWait().AsDuration()
	if wait <= 0 || wait > maxClaimWait {
		wait = maxClaimWait
	}
	if err := s.seen(ctx, req.RunnerId, req.Tiers); err != nil {
		return nil, sqldb.Status(ctx, "claim job", err)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		signal := s.queued.Wait()
		runID, lease, err := s.claim(ctx, req.RunnerId, req.Tiers)
		if err != nil {
			return nil, sqldb.Status(ctx, "claim job", err)
		}
		if runID != "" {
			job, err := s.start(ctx, runID, lease, req.RunnerId)
			if err != nil {
				s.log.Error("start claimed job", "run", runID, "err", err)
				s.deleteJob(context.WithoutCancel(ctx), runID)
				continue
			}
			if job != nil {
				return &runnerv1.ClaimJobResponse{Job: job}, nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-deadline.C:
			return &runnerv1.ClaimJobResponse{}, nil
		case <-signal:
		case <-poll.C:
		}
	}
}

// start records RunStarted for a claimed job and returns the job (nil: the run ended
// meanwhile and the job was dropped).
func (s *Service) start(ctx context.Context, runID, lease, runner string) (*runnerv1.Job, error) {
	r, err := s.update(ctx, runID, func(r *domain.Run) ([]recorded, error) {
		if r.Status != domain.RunQueued {
			return nil, nil
		}
		return []recorded{{newID(), &eventsv1.RunStarted{RunId: runID, OrgId: r.OrgID, ProjectId: r.ProjectID,
			RunnerId: runner, LeaseId: lease, StartedAt: timestamppb.Now()}}}, nil
	})
	if err != nil {
		return nil, err
	}
	if r.Status != domain.RunRunning || r.LeaseID != lease {
		return nil, s.deleteJob(ctx, runID)
	}
	s.log.Info("job claimed", "run", runID, "runner", runner)
	tier, ok := s.cfg.Tiers[r.Tier]
	if !ok {
		tier = s.cfg.Tiers["standard"]
	}
	job := jobFor(r, lease, s.cfg.LeaseDuration, tier)
	// Secrets travel only here, to the runner holding the lease: never on the bus or
	// in the event store. A fork's pull request gets none.
	if !(job.Context["event"] == "pull_request" && job.Context["fork"] == "true") {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		sec, err := s.cfg.Projects.JobSecrets(sctx, &apiv1.JobSecretsRequest{ProjectId: r.ProjectID})
		cancel()
		if err != nil {
			reason := "cannot read the project's secrets: " + status.Convert(err).Message()
			if ferr := s.finishJob(context.WithoutCancel(ctx), runID, "", domain.RunErrored, reason, 0); ferr != nil {
				return nil, ferr
			}
			return nil, nil
		}
		job.Secrets = sec.GetSecrets()
	}
	return job, nil
}

// maxHeartbeatWait bounds how long one heartbeat waits for a cancellation.
const maxHeartbeatWait = 10 * time.Second

// Heartbeat extends the lease of a running job, then waits up to req.wait for the run to
// be cancelled: a runner that heartbeats in a loop learns of a cancel at once (in this
// process) or within a quarter second (requested through another scheduler replica).
func (s *Service) Heartbeat(ctx context.Context, req *runnerv1.HeartbeatRequest) (*runnerv1.HeartbeatResponse, error) {
	if err := requireRunner(ctx); err != nil {
		return nil, err
	}
	ok, err := s.extend(ctx, req.GetRunId(), req.GetLeaseId())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "heartbeat: %v", err)
	}
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "lease %s of run %s is no longer held", req.GetLeaseId(), req.GetRunId())
	}
	wait := min(req.GetWait().AsDuration(), maxHeartbeatWait)
	deadline := time.NewTimer(max(wait, 0))
	defer deadline.Stop()
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	for {
		wake := s.cancels.Wait()
		c, err := s.cancelRequested(ctx, req.GetRunId())
		if err != nil {
			return nil, status.Errorf(codes.Internal, "heartbeat: %v", err)
		}
		if c || wait <= 0 {
			return &runnerv1.HeartbeatResponse{Cancel: c}, nil
		}
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-deadline.C:
			return &runnerv1.HeartbeatResponse{}, nil
		case <-wake:
		case <-poll.C:
		}
	}
}

// CancelRun stops a run: a queued one ends cancelled at once; a running one is marked,
// its runner learns it from its heartbeat and stops the job.
func (s *Service) CancelRun(ctx context.Context, req *apiv1.CancelRunRequest) (*apiv1.Run, error) {
	org, err := requireOrg(ctx)
	if err != nil {
		return nil, err
	}
	who := actor(ctx)
	r, err := s.update(ctx, req.GetRun(), func(r *domain.Run) ([]recorded, error) {
		if r.Version == 0 || r.OrgID != org {
			return nil, status.Errorf(codes.NotFound, "run %q not found", req.GetRun())
		}
		if r.Done() || r.CancelRequested {
			return nil, nil
		}
		evs := []recorded{{newID(), &eventsv1.RunCancelRequested{RunId: r.ID, OrgId: r.OrgID, ProjectId: r.ProjectID, Actor: who, At: timestamppb.Now()}}}
		if r.Status == domain.RunQueued {
			evs = append(evs, recorded{newID(), &eventsv1.RunFinished{RunId: r.ID, OrgId: r.OrgID, ProjectId: r.ProjectID,
				Status: domain.RunCancelled, Reason: "cancelled by " + who + " before it started", FinishedAt: timestamppb.Now()}})
		}
		return evs, nil
	})
	if err != nil {
		return nil, reportErr(err)
	}
	switch {
	case r.Status == domain.RunCancelled:
		if err := s.deleteJob(ctx, r.ID); err != nil {
			return nil, status.Errorf(codes.Internal, "remove job: %v", err)
		}
	case r.Status == domain.RunRunning && r.CancelRequested:
		if err := s.requestCancel(ctx, r.ID); err != nil {
			return nil, status.Errorf(codes.Internal, "cancel: %v", err)
		}
		s.log.Info("run cancel requested", "run", r.ID, "by", who)
	}
	return toAPI(r, true), nil
}

// Report records what a runner observed, under its lease. A retried report (same
// event id) is recorded once.
func (s *Service) Report(ctx context.Context, req *runnerv1.ReportRequest) (*runnerv1.ReportResponse, error) {
	if err := requireRunner(ctx); err != nil {
		return nil, err
	}
	if req.GetEventId() == "" || req.GetRunId() == "" {
		return nil, invalid("run_id and event_id are required")
	}
	ok, err := s.leaseValid(ctx, req.RunId, req.LeaseId)
	if err != nil {
		return nil, sqldb.Status(ctx, "report", err)
	}
	if !ok {
		// A retried end report whose first delivery already ended the run (and removed
		// the job with its lease) is answered as a success: it changes nothing.
		if _, end := req.GetEvent().(*runnerv1.ReportRequest_RunFinished); end {
			if r, err := s.load(ctx, req.RunId); err == nil && r.Done() && r.LeaseID == req.LeaseId {
				return &runnerv1.ReportResponse{}, nil
			}
		}
		return nil, status.Errorf(codes.FailedPrecondition, "lease %s of run %s is no longer held", req.LeaseId, req.RunId)
	}
	var ev proto.Message
	switch e := req.GetEvent().(type) {
	case *runnerv1.ReportRequest_StepStarted:
		ev = e.StepStarted
	case *runnerv1.ReportRequest_StepSkipped:
		ev = e.StepSkipped
	case *runnerv1.ReportRequest_StepFinished:
		ev = e.StepFinished
	case *runnerv1.ReportRequest_RunIsolation:
		ev = e.RunIsolation
	case *runnerv1.ReportRequest_RunFinished:
		f := e.RunFinished
		if err := s.finishJob(ctx, req.RunId, req.EventId, f.Status, f.Reason, f.LastLogSequence); err != nil {
			return nil, err
		}
		return &runnerv1.ReportResponse{}, nil
	default:
		return nil, invalid("report carries no event")
	}
	_, err = s.update(ctx, req.RunId, func(r *domain.Run) ([]recorded, error) {
		if err := r.CheckReport(ev); err != nil {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
		stamp(ev, r)
		return []recorded{{req.EventId, ev}}, nil
	})
	if err != nil {
		return nil, reportErr(err)
	}
	return &runnerv1.ReportResponse{}, nil
}

// stamp sets the run's identity on a runner's event, so a runner cannot write into
// another tenant's run.
func stamp(ev proto.Message, r *domain.Run) {
	switch e := ev.(type) {
	case *eventsv1.StepStarted:
		e.RunId, e.OrgId, e.ProjectId = r.ID, r.OrgID, r.ProjectID
	case *eventsv1.StepSkipped:
		e.RunId, e.OrgId, e.ProjectId = r.ID, r.OrgID, r.ProjectID
	case *eventsv1.StepFinished:
		e.RunId, e.OrgId, e.ProjectId = r.ID, r.OrgID, r.ProjectID
	case *eventsv1.RunIsolation:
		e.RunId, e.OrgId, e.ProjectId, e.Attempt = r.ID, r.OrgID, r.ProjectID, r.Attempt
	}
}

func reportErr(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Errorf(codes.Internal, "%v", err)
}

// finishJob records a run's end (from its runner, or the reaper when the lease lapsed)
// and removes its job. eventID "" generates one.
func (s *Service) finishJob(ctx context.Context, runID, eventID, st, reason string, lastSeq int64) error {
	if eventID == "" {
		eventID = newID()
	}
	switch st {
	case domain.RunSucceeded, domain.RunFailed, domain.RunCancelled, domain.RunTimedOut, domain.RunErrored:
	default:
		return invalid("run status %q is not a final status", st)
	}
	r, err := s.update(ctx, runID, func(r *domain.Run) ([]recorded, error) {
		if r.Version == 0 {
			return nil, status.Errorf(codes.NotFound, "run %s not found", runID)
		}
		if r.Done() {
			return nil, nil
		}
		// The attempt says whose output last_log_sequence counts: the log service judges
		// the completeness of that attempt's log (a requeued run's log starts again).
		return []recorded{{eventID, &eventsv1.RunFinished{RunId: runID, OrgId: r.OrgID, ProjectId: r.ProjectID,
			Status: st, Reason: reason, FinishedAt: timestamppb.Now(), LastLogSequence: lastSeq, Attempt: r.Attempt}}}, nil
	})
	if err != nil {
		return reportErr(err)
	}
	if err := s.deleteJob(ctx, runID); err != nil {
		return status.Errorf(codes.Internal, "remove job: %v", err)
	}
	s.log.Info("run finished", "run", runID, "status", r.Status, "reason", r.Reason)
	return nil
}
