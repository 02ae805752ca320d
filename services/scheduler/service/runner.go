package service

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/simpleci/simpleci/libs/eventstore"
	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	"github.com/simpleci/simpleci/libs/platform/telemetry"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// requireRunner returns the calling runner's name: the runner protocol is for runners
// (their own tokens), and each acts only on the jobs it holds.
func requireRunner(ctx context.Context) (string, error) {
	name, ok := auth.Runner(ctx)
	if !ok {
		return "", status.Error(codes.PermissionDenied, "only runners may call the runner protocol, with their runner token")
	}
	return name, nil
}

// maxClaimWait bounds one long poll.
const maxClaimWait = 30 * time.Second

// ClaimJob waits for a queued job of the runner's tiers. A runner waiting here is
// woken the moment a job is queued in this process; a 1 s poll covers jobs queued by
// other scheduler replicas.
func (s *Service) ClaimJob(ctx context.Context, req *runnerv1.ClaimJobRequest) (*runnerv1.ClaimJobResponse, error) {
	runner, err := requireRunner(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetRunnerId() == "" || len(req.GetTiers()) == 0 {
		return nil, invalid("runner_id and at least one tier are required")
	}
	if req.GetRunnerId() != runner {
		return nil, status.Errorf(codes.PermissionDenied, "runner %s may not claim jobs as runner %q: its token names it %s", runner, req.GetRunnerId(), runner)
	}
	for _, t := range req.GetTiers() {
		if _, ok := s.cfg.Tiers[t]; !ok {
			return nil, invalid("tier %q is not served by this deployment (served: %s): fix the runner's --runner-tiers", t, strings.Join(s.tierNames(), ", "))
		}
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
		r, lease, rctx, err := s.claim(ctx, req.RunnerId, req.Tiers)
		if err != nil {
			return nil, sqldb.Status(ctx, "claim job", err)
		}
		if r != nil {
			job, err := s.start(rctx, r, lease, req.RunnerId)
			trace.SpanFromContext(rctx).End() // the claim's span in the run's trace (runTrace)
			if job != nil {
				telemetry.SendTrace(ctx, rctx) // the runner continues the run's trace
			}
			if err != nil {
				s.log.ErrorContext(rctx, "start claimed job", "run", r.ID, "err", err)
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

// claim starts the oldest queued run of tiers on runner under a new lease (nil: no
// queued run). The job queue only says which run is oldest; domain.Run.Start decides,
// and the run's stream version settles a race between schedulers: the loser's append
// fails and it tries the next job.
//
// It returns the context the run's start was decided in: while tracing is on, a span of
// the run's trace (runTrace) that the caller ends.
func (s *Service) claim(ctx context.Context, runner string, tiers []string) (*domain.Run, string, context.Context, error) {
	// Claims of one process go one at a time, so that the runners it wakes together do
	// not all race for the same job.
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	for range maxDecisionAttempts {
		runID, err := s.oldestQueued(ctx, tiers)
		if err != nil || runID == "" {
			return nil, "", nil, err
		}
		lease := newID()
		rctx, span := s.runTrace(ctx, runID, "claim job")
		r, err := s.decideTx(rctx, runID, func(tx *sql.Tx, r *domain.Run) ([]recorded, error) {
			ev, err := r.Start(runner, lease, time.Now())
			if err != nil {
				return nil, err
			}
			if key, _ := r.Concurrency(); key != "" { // concurrency.go
				before, err := s.countBefore(ctx, tx, runID)
				if err != nil {
					return nil, err
				}
				if err := r.CheckKey(before); err != nil {
					return nil, err
				}
			}
			return []recorded{{id: newID(), msg: ev}}, nil
		})
		if errors.Is(err, domain.ErrTransition) || errors.Is(err, eventstore.ErrConcurrency) || errors.Is(err, domain.ErrKeyHeld) {
			span.SetAttributes(attribute.String("simpleci.claim.lost", err.Error()))
			span.End()
			continue // started or ended by another scheduler meanwhile, or its key filled up
		}
		if err != nil {
			telemetry.End(span, err)
			return nil, "", nil, err
		}
		s.log.InfoContext(rctx, "job claimed", "run", runID, "runner", runner)
		return r, lease, rctx, nil
	}
	return nil, "", nil, nil
}

// runTrace returns ctx in a new span named name of the trace runID was queued in (the
// trace context recorded with its first event), linked to ctx's own span (the runner's
// polling call); ctx and a no-op span while tracing is off or the run has none.
func (s *Service) runTrace(ctx context.Context, runID, name string) (context.Context, trace.Span) {
	noop := trace.SpanFromContext(context.Background())
	if !telemetry.Enabled() {
		return ctx, noop
	}
	evs, err := s.store.ReadStream(ctx, domain.StreamID(runID), 1)
	if err != nil || len(evs) == 0 {
		return ctx, noop
	}
	parent := telemetry.Extract(context.Background(), evs[0].Metadata)
	if !trace.SpanContextFromContext(parent).IsValid() {
		return ctx, noop
	}
	// Keep ctx's deadline and values; take the run's trace as the parent.
	rctx := trace.ContextWithRemoteSpanContext(ctx, trace.SpanContextFromContext(parent))
	rctx, span := telemetry.Start(rctx, name, trace.WithLinks(trace.LinkFromContext(ctx)),
		trace.WithAttributes(attribute.String("simpleci.run_id", runID)))
	return rctx, span
}

// start builds the job of a run just claimed (nil: the run could not be handed over and
// was ended).
func (s *Service) start(ctx context.Context, r *domain.Run, lease, runner string) (*runnerv1.Job, error) {
	tier, ok := s.cfg.Tiers[r.Tier]
	if !ok {
		return nil, s.finish(context.WithoutCancel(ctx), r.ID, "", "", "", domain.RunErrored,
			fmt.Sprintf("tier %q is not served by this deployment", r.Tier), 0)
	}
	job := jobFor(r, lease, s.cfg.LeaseDuration, tier)
	if err := s.grantLog(job, runner); err != nil {
		return nil, err
	}
	if err := s.grantFiles(job, runner, tier); err != nil {
		return nil, err
	}
	if key := r.Queued.GetPipelineSha256(); key != "" { // stored by reference (blobs.go)
		data, err := s.blob(ctx, key)
		if err != nil {
			s.log.ErrorContext(ctx, "read the run's pipeline file", "run", r.ID, "err", err)
			return nil, s.finish(context.WithoutCancel(ctx), r.ID, "", "", "", domain.RunErrored,
				fmt.Sprintf("cannot read the pipeline file (sha256 %s) from the scheduler's store", key), 0)
		}
		job.Pipeline = data
	}
	// Secrets travel only here, to the runner holding the lease: never on the bus or
	// in the event store. A pull request gets them only when the forge said it is of the
	// project's own repository (a fork or an unknown head gets none).
	if r.Trusted() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		sec, err := s.cfg.Projects.JobSecrets(sctx, &apiv1.JobSecretsRequest{ProjectId: r.ProjectID})
		cancel()
		if err != nil {
			reason := "cannot read the project's secrets: " + status.Convert(err).Message()
			return nil, s.finish(context.WithoutCancel(ctx), r.ID, "", "", "", domain.RunErrored, reason, 0)
		}
		job.Secrets = sec.GetSecrets()
	}
	return job, nil
}

// logGrantSlack is how long a log grant outlives its job's timeout, which counts from
// the pipeline's start: the checkout before it (at most 5 minutes), the time the
// runner's log queue keeps retrying a log service that is away after it (10 minutes),
// and a margin for clocks and the sandbox.
const logGrantSlack = 30 * time.Minute

// grantLog gives job the log grant of its runner: the log service accepts the run's
// log chunks of this attempt from runner alone, until the job's timeout (a day without
// one) and logGrantSlack have passed. A lost lease does not revoke it, but the run's
// next attempt has another number, which the grant does not cover.
func (s *Service) grantLog(job *runnerv1.Job, runner string) error {
	life := job.GetTimeout().AsDuration()
	if life <= 0 {
		life = 24 * time.Hour
	}
	job.LogGrant = &runnerv1.LogGrant{RunId: job.RunId, Attempt: max(job.Attempt, 1), Runner: runner, OrgId: job.OrgId,
		ProjectId: job.ProjectId, RunLogBytes: job.RunLogBytes, ExpiresAt: timestamppb.New(time.Now().Add(life + logGrantSlack))}
	if err := auth.SignLogGrant(s.cfg.Secret, job.LogGrant); err != nil {
		return fmt.Errorf("run %s: %w", job.RunId, err)
	}
	return nil
}

// grantFiles gives job the files grant of its runner: the run's caches and artifacts, in
// the cache scopes of its branch (CacheScopes), for as long as its log grant.
func (s *Service) grantFiles(job *runnerv1.Job, runner string, tier Tier) error {
	write, read := CacheScopes(job.GetContext())
	job.FilesGrant = &runnerv1.FilesGrant{RunId: job.RunId, Attempt: job.LogGrant.GetAttempt(), Runner: runner, OrgId: job.OrgId,
		ProjectId: job.ProjectId, WriteScope: write, ReadScopes: read, MaxEntryBytes: cmp.Or(tier.FilesBytes, DefaultFilesBytes),
		ExpiresAt: job.LogGrant.GetExpiresAt()}
	if err := auth.SignFilesGrant(s.cfg.Secret, job.FilesGrant); err != nil {
		return fmt.Errorf("run %s: %w", job.RunId, err)
	}
	return nil
}

// CacheScopes are the cache scopes of a run, from its context (which the scheduler
// builds from the forge's delivery): a pull request's runs write "pr:N" (N from
// refs/pull/N/head, else its head branch) and read it and then their base branch's
// ("branch:main"), so a pull request, a fork's included, never writes the caches the
// default branch reads; any other run reads and writes its branch's ("branch:NAME"), or
// its ref's without a branch ("ref:refs/tags/v1").
func CacheScopes(ctx map[string]string) (write string, read []string) {
	switch {
	case ctx["event"] == "pull_request":
		n, ok := strings.CutPrefix(ctx["ref"], "refs/pull/")
		n, ok2 := strings.CutSuffix(n, "/head")
		if !ok || !ok2 || n == "" {
			n = cmp.Or(ctx["branch"], ctx["ref"])
		}
		write = "pr:" + n
		read = []string{write}
		if b := ctx["base_branch"]; b != "" {
			read = append(read, "branch:"+b)
		}
		return write, read
	case ctx["branch"] != "":
		write = "branch:" + ctx["branch"]
	default:
		write = "ref:" + ctx["ref"]
	}
	return write, []string{write}
}

// maxHeartbeatWait bounds how long one heartbeat waits for a cancellation.
const maxHeartbeatWait = 10 * time.Second

// Heartbeat extends the lease of a running job, then waits up to req.wait for the run to
// be cancelled: a runner that heartbeats in a loop learns of a cancel at once (in this
// process) or within a quarter second (requested through another scheduler replica).
func (s *Service) Heartbeat(ctx context.Context, req *runnerv1.HeartbeatRequest) (*runnerv1.HeartbeatResponse, error) {
	runner, err := requireRunner(ctx)
	if err != nil {
		return nil, err
	}
	ok, err := s.extend(ctx, req.GetRunId(), req.GetLeaseId(), runner)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "heartbeat: %v", err)
	}
	if !ok {
		if held, err := s.leaseHeldByOther(ctx, req.GetRunId(), req.GetLeaseId(), runner); err == nil && held {
			return nil, status.Errorf(codes.PermissionDenied, "run %s: its lease was given to another runner, not %s", req.GetRunId(), runner)
		}
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
// its runner learns it from its heartbeat and stops the job (domain.Run.Cancel).
func (s *Service) CancelRun(ctx context.Context, req *apiv1.CancelRunRequest) (*apiv1.Run, error) {
	org, err := requireOrg(ctx)
	if err != nil {
		return nil, err
	}
	who := actor(ctx)
	r, err := s.decide(ctx, req.GetRun(), func(r *domain.Run) ([]recorded, error) {
		if r.OrgID != org {
			return nil, fmt.Errorf("run %q: %w", req.GetRun(), domain.ErrNotFound)
		}
		msgs, err := r.Cancel(who, time.Now())
		return withIDs(msgs...), err
	})
	if err != nil {
		return nil, err
	}
	if r.Status == domain.RunRunning && r.CancelRequested {
		s.log.InfoContext(ctx, "run cancel requested", "run", r.ID, "by", who)
	}
	return toAPI(r, true), nil
}

// withIDs gives each event a fresh id.
func withIDs(msgs ...proto.Message) []recorded {
	out := make([]recorded, 0, len(msgs))
	for _, m := range msgs {
		if m != nil {
			out = append(out, recorded{id: newID(), msg: m})
		}
	}
	return out
}

// Report records what a runner observed, under its lease (domain.Run.Observe and
// Finish hold the rules). A retried report (same event id) is recorded once and answered
// as a success.
func (s *Service) Report(ctx context.Context, req *runnerv1.ReportRequest) (*runnerv1.ReportResponse, error) {
	runner, err := requireRunner(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetEventId() == "" || req.GetRunId() == "" {
		return nil, invalid("run_id and event_id are required")
	}
	// What a runner sends is bounded here, at the scheduler's edge, so that the events it
	// becomes stay small (event.MaxEventBytes): reasons and the isolation line are cut with
	// a marker.
	var ev proto.Message
	switch e := req.GetEvent().(type) {
	case *runnerv1.ReportRequest_StepStarted:
		ev = e.StepStarted
		e.StepStarted.StepName = event.Bound(e.StepStarted.GetStepName(), maxRequestField)
	case *runnerv1.ReportRequest_StepSkipped:
		ev = e.StepSkipped
		e.StepSkipped.Reason = boundReason(e.StepSkipped.GetReason())
		e.StepSkipped.StepName = event.Bound(e.StepSkipped.GetStepName(), maxRequestField)
	case *runnerv1.ReportRequest_StepFinished:
		ev = e.StepFinished
		e.StepFinished.Reason = boundReason(e.StepFinished.GetReason())
		e.StepFinished.StepName = event.Bound(e.StepFinished.GetStepName(), maxRequestField)
	case *runnerv1.ReportRequest_RunIsolation:
		ev = e.RunIsolation
		e.RunIsolation.Isolation = boundReason(e.RunIsolation.GetIsolation())
	case *runnerv1.ReportRequest_RunFinished:
		f := e.RunFinished
		if err := s.finish(ctx, req.RunId, runner, req.LeaseId, req.EventId, f.Status, f.Reason, f.LastLogSequence); err != nil {
			return nil, err
		}
		return &runnerv1.ReportResponse{}, nil
	default:
		return nil, invalid("report carries no event")
	}
	_, err = s.decide(ctx, req.RunId, func(r *domain.Run) ([]recorded, error) {
		if err := r.CheckHolder(runner, req.LeaseId); err != nil {
			return nil, err
		}
		if r.Has(req.EventId) {
			return nil, nil
		}
		if err := r.Observe(req.LeaseId, ev); err != nil {
			return nil, err
		}
		return []recorded{{id: req.EventId, msg: ev}}, nil
	})
	if err != nil {
		return nil, err
	}
	return &runnerv1.ReportResponse{}, nil
}

// finish records a run's end: reported by its runner under lease, or decided by the
// scheduler itself (runner and lease ""). eventID "" generates one.
func (s *Service) finish(ctx context.Context, runID, runner, lease, eventID, st, reason string, lastSeq int64) error {
	if eventID == "" {
		eventID = newID()
	}
	r, err := s.decide(ctx, runID, func(r *domain.Run) ([]recorded, error) {
		if err := r.CheckHolder(runner, lease); err != nil {
			return nil, err
		}
		if r.Has(eventID) {
			return nil, nil
		}
		ev, err := r.Finish(lease, st, boundReason(reason), lastSeq, time.Now())
		if err != nil || ev == nil {
			return nil, err
		}
		return []recorded{{id: eventID, msg: ev}}, nil
	})
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "run finished", "run", runID, "status", r.Status, "reason", r.Reason)
	return nil
}
