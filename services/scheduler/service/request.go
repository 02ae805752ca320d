package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/pipeline"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// requestRun turns a RunRequested into a queued run (or an errored one when the
// pipeline cannot be read or is invalid, or the project's tier is not served). A request
// whose run already exists records nothing, so redelivered requests are harmless: the
// run's job was queued in the transaction that recorded the run.
func (s *Service) requestRun(ctx context.Context, req *eventsv1.RunRequested) (*domain.Run, error) {
	log := s.log.With("run", req.GetRunId(), "project", req.GetProjectId())
	if req.GetRunId() == "" || req.GetProjectId() == "" {
		log.Error("drop run request without run or project id")
		return nil, nil
	}
	if v, err := s.store.StreamVersion(ctx, domain.StreamID(req.RunId)); err != nil {
		return nil, err
	} else if v > 0 {
		return load(ctx, s.store, req.RunId)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	proj, err := s.cfg.Projects.ResolveProject(pctx, &apiv1.ResolveProjectRequest{OrgId: req.OrgId, Project: req.ProjectId})
	cancel()
	if status.Code(err) == codes.NotFound {
		// A project deleted after the request was published: nothing to run, and
		// retrying would block the requests behind this one.
		log.Warn("drop run request for unknown project")
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resolve project %s: %w", req.ProjectId, err)
	}
	p := proj.GetProject()
	q := &eventsv1.RunQueued{
		RunId: req.RunId, OrgId: p.GetOrgId(), ProjectId: p.GetId(), Tier: p.GetTier(),
		Provider: p.GetProvider(), Repository: p.GetRepository(), Ref: req.Ref, Branch: req.Branch, Sha: req.Sha,
		Event: req.Event, Actor: req.Actor, Context: req.Context, QueuedAt: timestamppb.Now(),
		PipelinePath: s.cfg.PipelinePath, DeliveryId: req.DeliveryId, Network: p.GetNetwork(),
	}
	var reason string
	if tier, ok := s.cfg.Tiers[p.GetTier()]; ok {
		q.Timeout = durationpb.New(tier.Timeout)
		reason = s.readPipeline(ctx, p.GetProvider(), p.GetRepository(), tier, q)
	} else {
		reason = fmt.Sprintf("tier %q is not served by this deployment (served: %s)", p.GetTier(), strings.Join(s.tierNames(), ", "))
	}
	// Runs of one project take consecutive numbers: this process queues them one at a
	// time, so that only other scheduler replicas can race for a number.
	mu, _ := s.numbering.LoadOrStore(p.GetId(), &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	r, err := s.decideTx(ctx, req.RunId, func(tx *sql.Tx, r *domain.Run) ([]recorded, error) {
		if r.Version > 0 { // recorded meanwhile (a concurrent redelivery)
			return nil, nil
		}
		n, err := s.lastNumber(ctx, tx, p.GetId())
		if err != nil {
			return nil, err
		}
		q := proto.Clone(q).(*eventsv1.RunQueued)
		q.Number = n + 1
		evs := []recorded{{newID(), q}}
		if reason != "" {
			evs = append(evs, recorded{newID(), &eventsv1.RunFinished{RunId: q.RunId, OrgId: q.OrgId, ProjectId: q.ProjectId,
				Status: domain.RunErrored, Reason: reason, FinishedAt: timestamppb.Now(), Attempt: 1}})
		}
		return evs, nil
	})
	if err != nil {
		return nil, err
	}
	if reason != "" {
		log.Info("run errored before start", "reason", reason)
	} else {
		log.Info("run queued", "number", r.Number, "tier", r.Tier)
	}
	return r, nil
}

// pipelineFiles are read in this order at the commit: JSON first, then YAML.
var pipelineFiles = []string{".simpleci/pipeline.json", ".simpleci/pipeline.yaml", ".simpleci/pipeline.yml"}

// readPipeline fills q's sha, pipeline and step names, or returns why the run cannot start.
func (s *Service) readPipeline(ctx context.Context, provider, repo string, tier Tier, q *eventsv1.RunQueued) string {
	f, err := s.cfg.Forges.Lookup(provider)
	if err != nil {
		return err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if q.Sha == "" {
		ref := q.Ref
		if ref == "" {
			ref = "HEAD"
		}
		sha, err := f.ResolveRef(ctx, repo, ref)
		if err != nil {
			return fmt.Sprintf("cannot resolve ref %q: %v", ref, err)
		}
		q.Sha = sha
	}
	paths := []string{s.cfg.PipelinePath}
	if s.cfg.PipelinePath == pipelineFiles[0] {
		paths = pipelineFiles
	}
	var data []byte
	for _, p := range paths {
		data, err = f.ReadFile(ctx, repo, q.Sha, p)
		if errors.Is(err, forge.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Sprintf("cannot read %s at commit %s: %v", p, q.Sha, err)
		}
		q.PipelinePath = p
		break
	}
	if errors.Is(err, forge.ErrNotFound) {
		return fmt.Sprintf("%s: not found at commit %s", strings.Join(paths, " or "), q.Sha)
	}
	pl, err := pipeline.ParseWithOptions(q.PipelinePath, data, pipeline.Options{MaxTimeout: tier.Timeout, Tier: tier.Name, MaxSteps: tier.Steps})
	if err != nil {
		return "invalid pipeline: " + err.Error()
	}
	q.Pipeline = data
	for _, st := range pl.Steps {
		q.StepNames = append(q.StepNames, st.Name)
	}
	return ""
}

// TriggerRun is the manual trigger: it records the request and returns the run.
func (s *Service) TriggerRun(ctx context.Context, req *apiv1.TriggerRunRequest) (*apiv1.Run, error) {
	org, proj, err := s.callersProject(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	ev := req.GetEvent()
	if ev == "" {
		ev = "manual"
	}
	ref := req.GetRef()
	if ref != "" {
		if err := forge.ValidateRef(ref); err != nil && forge.ValidateSHA(ref) != nil {
			return nil, invalid("ref %q: %v", ref, err)
		}
	}
	rr := &eventsv1.RunRequested{RunId: newID(), OrgId: org, ProjectId: proj.GetProject().GetId(),
		Provider: proj.GetProject().GetProvider(), Repository: proj.GetProject().GetRepository(),
		Ref: ref, Event: ev, Actor: actor(ctx), RequestedAt: timestamppb.Now()}
	if forge.ValidateSHA(ref) == nil {
		rr.Sha, rr.Ref = ref, ""
	} else if b, ok := cutPrefix(ref, "refs/heads/"); ok {
		rr.Branch = b
	} else if ref != "" && !hasPrefix(ref, "refs/") {
		rr.Branch = ref
	}
	r, err := s.requestRun(ctx, rr)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "start run: %v", err)
	}
	if r == nil {
		return nil, status.Errorf(codes.NotFound, "project %q not found", req.GetProject())
	}
	return toAPI(r, true), nil
}
