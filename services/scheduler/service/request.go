package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/pipeline"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/ratelimit"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// requestRun turns a RunRequested into a queued run (or an errored one when the
// pipeline cannot be read or is invalid, or the project's tier is not served). manual
// (TriggerRun) checks the inputs strictly: required inputs must be given, and inputs
// that do not fit the pipeline's declarations are an error wrapping domain.ErrInvalid,
// with nothing recorded; other requests get an errored run saying so. A request
// whose run already exists records nothing, so redelivered requests are harmless: the
// run's job was queued in the transaction that recorded the run.
func (s *Service) requestRun(ctx context.Context, req *eventsv1.RunRequested, manual bool) (*domain.Run, error) {
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
		PipelinePath: s.cfg.PipelinePath, DeliveryId: req.DeliveryId, Network: p.GetNetwork(), Trust: req.GetTrust(),
		Inputs: req.GetInputs(),
	}
	var data []byte
	reason := boundRequest(q)
	if tier, ok := s.cfg.Tiers[p.GetTier()]; !ok {
		reason = fmt.Sprintf("tier %q is not served by this deployment (served: %s)", p.GetTier(), strings.Join(s.tierNames(), ", "))
	} else if reason == "" {
		q.Timeout = durationpb.New(tier.Timeout)
		var inputsErr error
		data, reason, inputsErr = s.readPipeline(ctx, p.GetProvider(), p.GetRepository(), tier, q, manual)
		if inputsErr != nil && manual {
			return nil, fmt.Errorf("%w: %v", domain.ErrInvalid, inputsErr)
		}
	}
	if _, err := event.Marshal(q); err != nil && reason == "" {
		reason = fmt.Sprintf("the run cannot be recorded: %v; its %d step names are too long together", err, len(q.StepNames))
	}
	if reason != "" { // recorded without steps or pipeline: RunQueued + RunFinished{errored}
		q.StepNames, q.PipelineSha256, q.PipelineSize, data = nil, "", 0, nil
	}
	r, err := s.enqueue(ctx, q, data, reason)
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

// enqueue records run q.RunId, numbered next in its project: RunQueued (with the pipeline
// file data, stored by reference; nil when q refers to a stored one or has none), and
// RunFinished{errored} when reason says why it cannot start. A run already recorded is
// returned as it is.
//
// A run with a concurrency key is refused (errored) when its key's queue is full; one with
// cancelInProgress then supersedes the older runs of its key (supersede).
func (s *Service) enqueue(ctx context.Context, q *eventsv1.RunQueued, data []byte, reason string) (*domain.Run, error) {
	r, err := s.enqueueRun(ctx, q, data, reason)
	if err == nil && r.Status == domain.RunQueued && r.Queued.GetCancelInProgress() {
		if err := s.supersede(ctx, r.ProjectID, r.Queued.GetConcurrencyKey()); err != nil {
			s.log.ErrorContext(ctx, "supersede the older runs of the key; the sweep tries again", "run", r.ID, "err", err)
		}
	}
	return r, err
}

func (s *Service) enqueueRun(ctx context.Context, q *eventsv1.RunQueued, data []byte, reason string) (*domain.Run, error) {
	// Runs of one project take consecutive numbers: this process queues them one at a
	// time, so that only other scheduler replicas can race for a number.
	mu, _ := s.numbering.LoadOrStore(q.ProjectId, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	return s.decideTx(ctx, q.RunId, func(tx *sql.Tx, r *domain.Run) ([]recorded, error) {
		if r.Version > 0 { // recorded meanwhile (a concurrent redelivery)
			return nil, nil
		}
		n, err := s.lastNumber(ctx, tx, q.ProjectId)
		if err != nil {
			return nil, err
		}
		reason := reason
		if reason == "" {
			if reason, err = s.keyFull(ctx, tx, q); err != nil {
				return nil, err
			}
		}
		q := proto.Clone(q).(*eventsv1.RunQueued)
		q.Number = n + 1
		evs := []recorded{{id: newID(), msg: q}}
		if data != nil {
			evs[0].blobs = [][]byte{data}
		}
		if reason != "" {
			evs = append(evs, recorded{id: newID(), msg: &eventsv1.RunFinished{RunId: q.RunId, OrgId: q.OrgId, ProjectId: q.ProjectId,
				Status: domain.RunErrored, Reason: boundReason(reason), FinishedAt: timestamppb.Now(), Attempt: 1}})
		}
		return evs, nil
	})
}

// Bounds of what a run request carries into RunQueued, so that the event stays far below
// event.MaxEventBytes whatever a forge or a user sent.
const (
	maxRequestField = 1 << 10 // ref, branch, sha, event, actor, delivery id, repository
	maxContextKeys  = 64
	maxContextKey   = 128
	maxContextValue = 1 << 10
	maxReason       = 8 << 10 // a run's or step's reason
)

// boundRequest cuts q's request fields and context to their bounds and returns why the run
// cannot start if anything had to be cut ("" when all was within bounds).
func boundRequest(q *eventsv1.RunQueued) string {
	var over []string
	for _, f := range []struct {
		name string
		v    *string
	}{{"ref", &q.Ref}, {"branch", &q.Branch}, {"sha", &q.Sha}, {"event", &q.Event}, {"actor", &q.Actor},
		{"delivery id", &q.DeliveryId}, {"repository", &q.Repository}} {
		if len(*f.v) > maxRequestField {
			over = append(over, fmt.Sprintf("%s is %d bytes (at most %d)", f.name, len(*f.v), maxRequestField))
			*f.v = event.Bound(*f.v, maxRequestField)
		}
	}
	if len(q.Context) > maxContextKeys {
		over = append(over, fmt.Sprintf("context has %d keys (at most %d)", len(q.Context), maxContextKeys))
	}
	if len(q.Context) > 0 {
		ctx := make(map[string]string, min(len(q.Context), maxContextKeys))
		for _, k := range slices.Sorted(maps.Keys(q.Context)) {
			v := q.Context[k]
			if len(k) > maxContextKey || len(v) > maxContextValue {
				over = append(over, fmt.Sprintf("context key %.40q... is %d bytes with a value of %d (at most %d and %d)", k, len(k), len(v), maxContextKey, maxContextValue))
				k, v = event.Bound(k, maxContextKey), event.Bound(v, maxContextValue)
			}
			if len(ctx) < maxContextKeys {
				ctx[k] = v
			}
		}
		q.Context = ctx
	}
	if len(over) == 0 {
		return ""
	}
	return "run request too large: " + strings.Join(over, "; ")
}

// boundReason cuts a reason to maxReason bytes, with a marker.
func boundReason(r string) string { return event.Bound(r, maxReason) }

// pipelineFiles are read in this order at the commit: JSON first, then YAML.
var pipelineFiles = []string{".simpleci/pipeline.json", ".simpleci/pipeline.yaml", ".simpleci/pipeline.yml"}

// readPipeline fills q's sha, pipeline reference, step names and resolved inputs
// (pipeline.ResolveInputs; required ones only when manual) and returns the pipeline file,
// or returns why the run cannot start (with inputsErr when the inputs are why). A reason made from a forge error is bounded
// (forge.Bound, 512 bytes): the forge's errors are already scrubbed of credentials and
// server paths, and a reason is shown through the API.
func (s *Service) readPipeline(ctx context.Context, provider, repo string, tier Tier, q *eventsv1.RunQueued, manual bool) (data []byte, reason string, inputsErr error) {
	f, err := s.cfg.Forges.Lookup(provider)
	if err != nil {
		return nil, err.Error(), nil
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
			return nil, forge.Bound(fmt.Sprintf("cannot resolve ref %q: %v", ref, err)), nil
		}
		q.Sha = sha
	}
	s.readCommitMessage(ctx, f, repo, q)
	paths := []string{s.cfg.PipelinePath}
	if s.cfg.PipelinePath == pipelineFiles[0] {
		paths = pipelineFiles
	}
	for _, p := range paths {
		data, err = f.ReadFile(ctx, repo, q.Sha, p)
		if errors.Is(err, forge.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, forge.Bound(fmt.Sprintf("cannot read %s at commit %s: %v", p, q.Sha, err)), nil
		}
		q.PipelinePath = p
		break
	}
	if errors.Is(err, forge.ErrNotFound) {
		return nil, fmt.Sprintf("%s: not found at commit %s", strings.Join(paths, " or "), q.Sha), nil
	}
	pl, err := pipeline.ParseWithOptions(q.PipelinePath, data, pipeline.Options{MaxTimeout: tier.Timeout, Tier: tier.Name, MaxSteps: tier.Steps})
	if err != nil {
		return nil, "invalid pipeline: " + err.Error(), nil
	}
	if q.Inputs, err = pl.ResolveInputs(q.Inputs, manual); err != nil {
		return nil, "inputs: " + err.Error(), err
	}
	if why := renderKey(pl, q); why != "" {
		return nil, why, nil
	}
	q.PipelineSha256, q.PipelineSize = blobKey(data), int64(len(data))
	for _, st := range pl.Steps {
		q.StepNames = append(q.StepNames, st.Name)
	}
	return data, "", nil
}

// readCommitMessage fills q's commit message when the forge can read it (a
// forge.CommitReader, bounded to forge.MaxCommitMessage). The message is for people
// reading the run list: a forge that cannot tell it leaves it empty, and the run is
// queued all the same.
func (s *Service) readCommitMessage(ctx context.Context, f forge.Forge, repo string, q *eventsv1.RunQueued) {
	cr, ok := f.(forge.CommitReader)
	if !ok {
		return
	}
	msg, err := cr.CommitMessage(ctx, repo, q.Sha)
	if err != nil {
		s.log.WarnContext(ctx, "cannot read the commit message", "run", q.RunId, "sha", q.Sha, "err", forge.Bound(err.Error()))
		return
	}
	q.CommitMessage = forge.BoundCommitMessage(msg)
}

// TriggerRun is the manual trigger: it records the request and returns the run.
func (s *Service) TriggerRun(ctx context.Context, req *apiv1.TriggerRunRequest) (*apiv1.Run, error) {
	org, proj, err := s.callersProject(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	if ok, after := s.triggers.Allow(proj.GetProject().GetId()); !ok {
		st, err := status.New(codes.ResourceExhausted, fmt.Sprintf("too many manual triggers for project %s (limit %s): retry after %s s",
			proj.GetProject().GetName(), s.cfg.TriggerLimits, ratelimit.RetryAfter(after))).
			WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(after)})
		if err != nil {
			return nil, status.Error(codes.ResourceExhausted, "too many manual triggers")
		}
		return nil, st.Err()
	}
	ev := req.GetEvent()
	switch ev {
	case "":
		ev = "manual"
	case "manual", "push", "pull_request", "tag", "schedule":
	default: // the API document's enum; gRPC callers get the same answer as REST ones
		return nil, invalid("event %q: use manual, push, pull_request, tag or schedule", ev)
	}
	if err := checkInputs(req.GetInputs()); err != nil {
		return nil, err
	}
	ref := req.GetRef()
	if ref != "" {
		if err := forge.ValidateRef(ref); err != nil && forge.ValidateSHA(ref) != nil {
			return nil, invalid("ref %q: %v", ref, err)
		}
	}
	rr := &eventsv1.RunRequested{RunId: newID(), OrgId: org, ProjectId: proj.GetProject().GetId(),
		Provider: proj.GetProject().GetProvider(), Repository: proj.GetProject().GetRepository(),
		Ref: ref, Event: ev, Actor: actor(ctx), RequestedAt: timestamppb.Now(),
		// A member of the project's organisation asked for a run of the project's own
		// repository, whatever event they name: same repository.
		Trust: eventsv1.Trust_TRUST_SAME_REPOSITORY, Inputs: req.GetInputs()}
	if forge.ValidateSHA(ref) == nil {
		rr.Sha, rr.Ref = ref, ""
	} else if b, ok := cutPrefix(ref, "refs/heads/"); ok {
		rr.Branch = b
	} else if ref != "" && !hasPrefix(ref, "refs/") {
		rr.Branch = ref
	}
	r, err := s.requestRun(ctx, rr, true)
	if errors.Is(err, domain.ErrInvalid) {
		return nil, err
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "start run: %v", err)
	}
	if r == nil {
		return nil, status.Errorf(codes.NotFound, "project %q not found", req.GetProject())
	}
	return toAPI(r, true), nil
}

// checkInputs bounds the inputs of a manual trigger before the pipeline is read: their
// number, and each name and value (the pipeline's declarations check the rest).
func checkInputs(in map[string]string) error {
	if len(in) > pipeline.MaxInputs {
		return invalid("%d inputs: at most %d", len(in), pipeline.MaxInputs)
	}
	for k, v := range in {
		if len(k) > maxContextKey {
			return invalid("input name %.40q... is %d bytes (at most %d)", k, len(k), maxContextKey)
		}
		if len(v) > pipeline.MaxInputValue {
			return invalid("input %q is %d bytes (at most %d)", k, len(v), pipeline.MaxInputValue)
		}
	}
	return nil
}
