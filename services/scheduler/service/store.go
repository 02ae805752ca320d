package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/event"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func (s *Service) migrate(ctx context.Context) error {
	_, err := s.db.ApplyMigrations(ctx, Schema)
	return err
}

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func ts(n int64) *timestamppb.Timestamp {
	if n == 0 {
		return nil
	}
	return timestamppb.New(time.Unix(0, n))
}

func tsOf(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// lastNumber returns the last run number taken in a project (0 before its first run).
// It only reads: the decision that records the next run advances it (applyJobs).
func (s *Service) lastNumber(ctx context.Context, tx *sql.Tx, projectID string) (int64, error) {
	var n int64
	err := tx.QueryRowContext(ctx, s.db.Q(`SELECT last FROM sched_run_numbers WHERE project_id = ?`), projectID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last run number: %w", err)
	}
	return n, nil
}

// extend renews a lease; false means the lease is gone (expired or the job ended).
func (s *Service) extend(ctx context.Context, runID, lease, runner string) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.db.Q(`UPDATE sched_jobs SET lease_expires = ? WHERE run_id = ? AND lease_id = ? AND runner_id = ? AND state = 'running'`),
		time.Now().Add(s.cfg.LeaseDuration).UnixNano(), runID, lease, runner)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// leaseHeldByOther reports whether the running job's current lease is lease, given to a
// runner other than runner.
func (s *Service) leaseHeldByOther(ctx context.Context, runID, lease, runner string) (bool, error) {
	if lease == "" {
		return false, nil
	}
	var holder string
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT runner_id FROM sched_jobs WHERE run_id = ? AND lease_id = ? AND state = 'running'`), runID, lease).Scan(&holder)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil && holder != runner, err
}

// lapsed is a running job one of whose times passed: its lease or its deadline.
type lapsed struct{ runID, lease string }

// runningPast lists the running jobs whose column (lease_expires: no heartbeat came;
// deadline: the run's timeout and a grace) is set and lies before now.
func (s *Service) runningPast(ctx context.Context, column string) ([]lapsed, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT run_id, lease_id FROM sched_jobs WHERE state = 'running' AND `+
		column+` > 0 AND `+column+` < ?`), time.Now().UnixNano())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []lapsed
	for rows.Next() {
		var j lapsed
		if err := rows.Scan(&j.runID, &j.lease); err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// queuedBefore lists the queued runs of tier first queued before t.
func (s *Service) queuedBefore(ctx context.Context, tier string, t time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT run_id FROM sched_jobs WHERE state = 'queued' AND tier = ? AND created_at < ?
		ORDER BY created_at, run_id`), tier, t.UnixNano())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func (s *Service) cancelRequested(ctx context.Context, runID string) (bool, error) {
	var c bool
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT cancel_requested FROM sched_jobs WHERE run_id = ?`), runID).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return c, err
}

// seen records that a runner serving tiers is connected.
func (s *Service) seen(ctx context.Context, runner string, tiers []string) error {
	_, err := s.db.ExecContext(ctx, s.db.Q(`INSERT INTO sched_runners (runner_id, tiers, last_seen) VALUES (?, ?, ?)
		ON CONFLICT (runner_id) DO UPDATE SET tiers = excluded.tiers, last_seen = excluded.last_seen`),
		runner, ","+strings.Join(tiers, ",")+",", time.Now().UnixNano())
	return err
}

// runnerGone is how long after its last claim call a runner counts as disconnected
// (a claim call waits up to maxClaimWait).
const runnerGone = maxClaimWait + 15*time.Second

// waitReason says why a queued run of tier waits, and where it is in the tier's queue
// (runners take a tier's runs in creation order).
func (s *Service) waitReason(ctx context.Context, runID, tier string) string {
	var n int
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM sched_runners WHERE tiers LIKE ? AND last_seen > ?`),
		"%,"+tier+",%", time.Now().Add(-runnerGone).UnixNano()).Scan(&n)
	if err != nil {
		return ""
	}
	why := fmt.Sprintf("waiting for a free runner of tier %s", tier)
	if n == 0 {
		why = fmt.Sprintf("waiting: no runner for tier %s is connected", tier)
	}
	var ahead, queued int
	err = s.db.QueryRowContext(ctx, s.db.Q(`SELECT
			COALESCE(SUM(CASE WHEN j.created_at < me.created_at OR (j.created_at = me.created_at AND j.run_id < me.run_id) THEN 1 ELSE 0 END), 0),
			COUNT(*)
		FROM sched_jobs j, sched_jobs me
		WHERE me.run_id = ? AND j.state = 'queued' AND j.tier = me.tier`), runID).Scan(&ahead, &queued)
	if err != nil || queued == 0 {
		return why
	}
	return fmt.Sprintf("%s; %d of %d in the tier's queue", why, ahead+1, queued)
}

// runContext is the context a run's pipeline sees (trust: its domain.TrustName).
func runContext(q *eventsv1.RunQueued, trust string) map[string]string {
	ctx := map[string]string{}
	for k, v := range q.GetContext() {
		ctx[k] = v
	}
	// The repository as shown to the pipeline: without credentials (projects made before
	// they were refused may still hold some; the runner's checkout gets Job.Repository).
	for k, v := range map[string]string{"event": q.Event, "provider": q.Provider, "repository": forge.Redact(q.Repository),
		"branch": q.Branch, "ref": q.Ref, "sha": q.Sha, "actor": q.Actor, "run_id": q.RunId,
		"run_number": strconv.FormatInt(q.Number, 10), "trust": trust} {
		ctx[k] = v
	}
	return ctx
}

// queuedReason says why a queued run waits: for its concurrency key when that holds it,
// else for a runner of its tier.
func (s *Service) queuedReason(ctx context.Context, runID, tier string) string {
	if why := s.keyWaitReason(ctx, runID); why != "" {
		return why
	}
	return s.waitReason(ctx, runID, tier)
}

// jobFor builds the runner's view of a run.
func jobFor(r *domain.Run, lease string, leaseDur time.Duration, tier Tier) *runnerv1.Job {
	q := r.Queued
	ctx := runContext(q, domain.TrustName(r.Trust()))
	return &runnerv1.Job{RunId: r.ID, OrgId: r.OrgID, ProjectId: r.ProjectID, LeaseId: lease, Provider: q.Provider,
		Repository: q.Repository, Sha: q.Sha, PipelinePath: q.PipelinePath, Pipeline: q.Pipeline, Context: ctx,
		Env: map[string]string{}, Timeout: q.Timeout, Tier: q.Tier, LeaseDuration: durationpb.New(leaseDur), Attempt: r.Attempt,
		MemoryBytes: tier.Memory, PidsLimit: tier.Pids, Cpus: tier.CPUs,
		StepLogBytes: tier.StepLog, RunLogBytes: tier.RunLog,
		Network: network(q.Network, r.Trusted()), ReusedSteps: q.ReusedSteps, Inputs: q.Inputs}
}

// network applies a project's network setting to a run: "off" never; "default" and "on"
// only for a run of the project's own code (r.Trusted), never for a pull request from a
// fork or one the forge did not vouch for, whose code nobody on the project reviewed yet
// (docs/security.md). The trust comes from the forge, never from the run's context.
func network(setting string, trusted bool) bool {
	return setting != "off" && trusted
}

// triggerRerun is the trigger of a re-run; any other run's trigger is its event.
const triggerRerun = "rerun"

// trigger is what started a run: "rerun" for a re-run (whose event stays the
// original's), else its event.
func trigger(event, rerunOf string) string {
	if rerunOf != "" {
		return triggerRerun
	}
	return event
}

// toAPI converts a run; steps only when asked (the list leaves them out).
func toAPI(r *domain.Run, steps bool) *apiv1.Run {
	out := &apiv1.Run{Id: r.ID, Number: r.Number, ProjectId: r.ProjectID, OrgId: r.OrgID, Status: r.Status, Reason: r.Reason,
		Event: r.Event, Ref: r.Ref, Branch: r.Branch, Sha: r.SHA, Actor: r.Actor, Tier: r.Tier,
		CreatedAt: tsOf(r.Created), StartedAt: tsOf(r.Started), FinishedAt: tsOf(r.Finished), Attempt: r.Attempt,
		Isolation: r.Isolation, Trust: domain.TrustName(r.Trust()),
		RerunOf: r.Queued.GetRerunOf(), RerunOfNumber: r.Queued.GetRerunOfNumber(), Inputs: r.Queued.GetInputs(),
		Trigger: trigger(r.Event, r.Queued.GetRerunOf()), CommitMessage: r.CommitMessage}
	if steps {
		for _, st := range r.Steps {
			out.Steps = append(out.Steps, &apiv1.Step{Index: st.Index, Name: st.Name, Status: st.Status, ExitCode: st.ExitCode,
				StartedAt: tsOf(st.Started), FinishedAt: tsOf(st.Finished), Reason: st.Reason})
		}
	}
	return out
}

func requireOrg(ctx context.Context) (string, error) { return auth.RequireOrg(ctx) }

func actor(ctx context.Context) string {
	if p, ok := auth.PrincipalFrom(ctx); ok {
		return p.GetLogin()
	}
	return ""
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func cutPrefix(s, p string) (string, bool) { return strings.CutPrefix(s, p) }
func hasPrefix(s, p string) bool           { return strings.HasPrefix(s, p) }

// GetRun returns a run with its steps, folded from its events.
func (s *Service) GetRun(ctx context.Context, req *apiv1.GetRunRequest) (*apiv1.Run, error) {
	org, err := requireOrg(ctx)
	if err != nil {
		return nil, err
	}
	r, err := load(ctx, s.store, req.GetRun())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if r.Version == 0 || r.OrgID != org {
		return nil, status.Errorf(codes.NotFound, "run %q not found", req.GetRun())
	}
	out := toAPI(r, true)
	if r.Status == domain.RunQueued {
		out.Reason = s.queuedReason(ctx, r.ID, r.Tier)
	}
	return out, nil
}

// pageToken is the keyset position after the last run of a page.
type pageToken struct {
	created int64
	id      string
}

// encode writes the position as "<created>.<run id>": plain, so that the API document
// can state its exact form (a pattern) and refuse anything else before it gets here.
func (p pageToken) encode() string {
	return strconv.FormatInt(p.created, 10) + "." + p.id
}

func decodeToken(s string) (pageToken, error) {
	c, id, ok := strings.Cut(s, ".")
	if !ok || id == "" {
		return pageToken{}, errors.New("malformed")
	}
	n, err := strconv.ParseInt(c, 10, 64)
	return pageToken{n, id}, err
}

// ListRuns lists a project's runs newest first, filtered, a page at a time.
func (s *Service) ListRuns(ctx context.Context, req *apiv1.ListRunsRequest) (*apiv1.ListRunsResponse, error) {
	org, proj, err := s.callersProject(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	where := []string{"org_id = ?", "project_id = ?"}
	args := []any{org, proj.GetProject().GetId()}
	for col, v := range map[string]string{"event": req.GetEvent(), "status": req.GetStatus(), "branch": req.GetBranch()} {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	switch tr := req.GetTrigger(); tr {
	case "":
	case triggerRerun:
		where = append(where, "rerun_of <> ''")
	case "manual", "push", "pull_request", "tag", "schedule":
		where = append(where, "event = ?", "rerun_of = ''")
		args = append(args, tr)
	default:
		return nil, invalid("trigger %q: use push, pull_request, tag, manual, schedule or rerun", tr)
	}
	for _, b := range []struct {
		v, op, name string
	}{{req.GetSince(), ">=", "since"}, {req.GetUntil(), "<", "until"}} {
		if b.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, b.v)
		if err != nil {
			return nil, invalid("%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", b.name, b.v)
		}
		where = append(where, "created_at "+b.op+" ?")
		args = append(args, t.UnixNano())
	}
	if req.GetPageToken() != "" {
		tok, err := decodeToken(req.GetPageToken())
		if err != nil {
			return nil, invalid("page_token: not a token this server issued")
		}
		where = append(where, "(created_at < ? OR (created_at = ? AND run_id < ?))")
		args = append(args, tok.created, tok.created, tok.id)
	}
	size := int(req.GetPageSize())
	if size <= 0 || size > 200 {
		size = 50
	}
	args = append(args, size+1)
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT run_id, org_id, project_id, number, status, reason, event, ref, branch, sha, actor, tier, created_at, started_at, finished_at, rerun_of, rerun_of_number, commit_message
		FROM sched_runs WHERE `+strings.Join(where, " AND ")+` ORDER BY created_at DESC, run_id DESC LIMIT ?`), args...)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list runs: %v", err)
	}
	defer rows.Close()
	resp := &apiv1.ListRunsResponse{}
	var created []int64
	for rows.Next() {
		var r apiv1.Run
		var c, st, fin int64
		if err := rows.Scan(&r.Id, &r.OrgId, &r.ProjectId, &r.Number, &r.Status, &r.Reason, &r.Event, &r.Ref, &r.Branch, &r.Sha, &r.Actor, &r.Tier, &c, &st, &fin, &r.RerunOf, &r.RerunOfNumber, &r.CommitMessage); err != nil {
			return nil, status.Errorf(codes.Internal, "list runs: %v", err)
		}
		r.CreatedAt, r.StartedAt, r.FinishedAt = ts(c), ts(st), ts(fin)
		r.Trigger = trigger(r.Event, r.RerunOf)
		resp.Runs = append(resp.Runs, &r)
		created = append(created, c)
	}
	if err := rows.Err(); err != nil {
		return nil, status.Errorf(codes.Internal, "list runs: %v", err)
	}
	if len(resp.Runs) > size {
		resp.Runs = resp.Runs[:size]
		resp.NextPageToken = pageToken{created[size-1], resp.Runs[size-1].Id}.encode()
	}
	return resp, nil
}

// ListRunEvents returns a run's recorded events in order, payloads as JSON.
func (s *Service) ListRunEvents(ctx context.Context, req *apiv1.ListRunEventsRequest) (*apiv1.ListRunEventsResponse, error) {
	org, err := requireOrg(ctx)
	if err != nil {
		return nil, err
	}
	evs, err := s.store.ReadStream(ctx, domain.StreamID(req.GetRun()), 1)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "read run events: %v", err)
	}
	if len(evs) == 0 || evs[0].Metadata["org_id"] != org {
		return nil, status.Errorf(codes.NotFound, "run %q not found", req.GetRun())
	}
	resp := &apiv1.ListRunEventsResponse{}
	for _, e := range evs {
		m, err := event.Decode(e.Type, e.Payload)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "run event %d: %v", e.Version, err)
		}
		b, err := protojson.Marshal(m)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "run event %d: %v", e.Version, err)
		}
		payload := &structpb.Struct{}
		if err := payload.UnmarshalJSON(b); err != nil {
			return nil, status.Errorf(codes.Internal, "run event %d: %v", e.Version, err)
		}
		resp.Events = append(resp.Events, &apiv1.RunEvent{Id: e.ID, Version: e.Version, Type: e.Type,
			Time: timestamppb.New(e.RecordedAt), Position: e.Position, Payload: payload})
	}
	return resp, nil
}

// callersProject resolves a project of the caller's organisation through the project
// service.
func (s *Service) callersProject(ctx context.Context, project string) (string, *apiv1.ResolvedProject, error) {
	org, err := requireOrg(ctx)
	if err != nil {
		return "", nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	proj, err := s.cfg.Projects.ResolveProject(pctx, &apiv1.ResolveProjectRequest{OrgId: org, Project: project})
	return org, proj, err
}
