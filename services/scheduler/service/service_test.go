package service_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/eventstore/pgtest"
	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/local"
	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/id"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"github.com/simpleci/simpleci/services/scheduler/service"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	pipelineFile = ".simpleci/pipeline.json"
	goodPipeline = `{"steps": [{"name": "build", "run": "echo build"}, {"name": "test", "run": "echo test"}]}`
	// badPipeline has an unknown field on line 3.
	badPipeline = "{\n  \"steps\": [\n    {\"name\": \"build\", \"run\": \"make\", \"bogus\": true}\n  ]\n}\n"
	wait        = 15 * time.Second
)

// testRepo is a git repository with branches main and feature (valid pipeline), bad
// (invalid pipeline) and nopipe (no pipeline file), made for one test.
type testRepo struct {
	dir  string
	shas map[string]string
}

func makeRepo(dir string) (testRepo, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return testRepo{}, err
	}
	var failure error
	git := func(args ...string) string {
		if failure != nil {
			return ""
		}
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
		out, err := cmd.CombinedOutput()
		if err != nil {
			failure = fmt.Errorf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil && failure == nil {
			failure = err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil && failure == nil {
			failure = err
		}
	}
	shas := map[string]string{}
	git("init", "-q")
	write(pipelineFile, goodPipeline)
	git("add", "-A")
	git("commit", "-q", "-m", "main")
	shas["main"] = git("rev-parse", "HEAD")
	var long strings.Builder // 2,000 steps (BenchmarkLongRunReports)
	long.WriteString(`{"steps": [`)
	for i := range 2000 {
		if i > 0 {
			long.WriteString(",")
		}
		fmt.Fprintf(&long, `{"name": "s%d", "run": "true"}`, i)
	}
	long.WriteString("]}")
	for _, b := range []struct{ name, pipeline string }{{"feature", goodPipeline + "\n"}, {"bad", badPipeline}, {"nopipe", ""}, {"long", long.String()}, {"inputs", inputsPipeline},
		{"concq", concurrencyPipeline(false)}, {"concc", concurrencyPipeline(true)}, {"concbad", `{"concurrency": {"key": "{{ context.nope }}"}, "steps": [{"name": "a", "run": "true"}]}`}} {
		git("checkout", "-q", "-B", b.name, "main")
		if b.pipeline == "" {
			git("rm", "-q", pipelineFile)
		} else {
			write(pipelineFile, b.pipeline)
			git("add", "-A")
		}
		git("commit", "-q", "-m", b.name, "-m", featureBody)
		shas[b.name] = git("rev-parse", "HEAD")
	}
	git("checkout", "-q", "main")
	if failure != nil {
		return testRepo{}, failure
	}
	return testRepo{dir: dir, shas: shas}, nil
}

// fakeProjects implements the project service's internal client over a fixed set.
type fakeProjects struct {
	projects []*apiv1.ResolvedProject
	secrets  map[string]string // every project's secrets
}

func (f *fakeProjects) JobSecrets(context.Context, *apiv1.JobSecretsRequest, ...grpc.CallOption) (*apiv1.JobSecretsResponse, error) {
	return &apiv1.JobSecretsResponse{Secrets: f.secrets}, nil
}

func (f *fakeProjects) ResolveProject(_ context.Context, in *apiv1.ResolveProjectRequest, _ ...grpc.CallOption) (*apiv1.ResolvedProject, error) {
	for _, p := range f.projects {
		pr := p.GetProject()
		if (in.GetOrgId() == "" || in.GetOrgId() == pr.GetOrgId()) && (in.GetProject() == pr.GetId() || in.GetProject() == pr.GetName()) {
			return proto.Clone(p).(*apiv1.ResolvedProject), nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "project %q not found", in.GetProject())
}

type env struct {
	t    testing.TB
	ctx  context.Context
	db   *sqldb.DB
	bus  bus.Bus
	svc  *service.Service
	repo testRepo
}

// testDatabase is where a test's scheduler keeps its tables: a fresh database on the
// real PostgreSQL when SIMPLECI_TEST_POSTGRES_URL is set (make test always sets it, so CI
// checks the production dialect), else a SQLite file (plain go test; the embedded mode's
// dialect is also checked end to end by services/simpleci/e2e). SIMPLECI_TEST_SCHEDULER_DB=sqlite
// forces SQLite.
func testDatabase(t testing.TB) string {
	if os.Getenv(pgtest.EnvURL) != "" && os.Getenv("SIMPLECI_TEST_SCHEDULER_DB") != "sqlite" {
		return pgtest.NewDatabase(t)
	}
	return filepath.Join(t.TempDir(), "x.db")
}

// newEnv starts a scheduler over a fresh database, bus and repository; opts adjust its Config.
func newEnv(t testing.TB, opts ...func(*service.Config)) *env {
	t.Helper()
	timeout := 2 * time.Minute
	if _, ok := t.(*testing.B); ok {
		timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	r, err := makeRepo(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqldb.Open(ctx, testDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	b := bus.NewGoChannel(nil)
	// Cleanups run last-in first-out: stop the service (cancel), then the bus, then the DB.
	t.Cleanup(func() { db.Close() })
	t.Cleanup(func() { b.Close() })
	lf, err := local.New(local.Options{MirrorDir: t.TempDir(), LocalRoots: []string{os.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	forges, err := forge.NewRegistry(lf)
	if err != nil {
		t.Fatal(err)
	}
	projects := &fakeProjects{projects: []*apiv1.ResolvedProject{
		{Project: &apiv1.Project{Id: "p-app", OrgId: "org1", Name: "app", Provider: "local", Repository: r.dir, Events: []string{"push", "manual"}, Tier: "standard"}, WebhookSecret: "s"},
		{Project: &apiv1.Project{Id: "p-big", OrgId: "org1", Name: "big", Provider: "local", Repository: r.dir, Events: []string{"push", "manual"}, Tier: "large"}, WebhookSecret: "s"},
		{Project: &apiv1.Project{Id: "p-other", OrgId: "org2", Name: "other", Provider: "local", Repository: r.dir, Events: []string{"manual"}, Tier: "standard"}, WebhookSecret: "s"},
	}}
	cfg := service.Config{DB: db, Bus: b, Forges: forges, Projects: projects, Log: slog.New(slog.DiscardHandler), Secret: testSecret}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := service.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	if err := svc.Start(sctx); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, db: db, bus: b, svc: svc, repo: r}
}

func withLease(d time.Duration) func(*service.Config) {
	return func(c *service.Config) { c.LeaseDuration = d }
}

// at returns e for use in the (sub)test t: helpers fail the test they run in.
func (e *env) at(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

func (e *env) user(org string) context.Context {
	return auth.WithPrincipal(e.ctx, &authv1.Principal{UserId: "u-" + org, OrgId: org, Login: "alice"})
}

// runner returns a context authenticated as the runner named name.
func (e *env) runner(name string) context.Context {
	return auth.WithPrincipal(e.ctx, &authv1.Principal{Login: "runner:" + name, Runner: name})
}

// internal returns a context authenticated as the runner runner-1 (the one e.claim
// claims as).
func (e *env) internal() context.Context { return e.runner("runner-1") }

func (e *env) trigger(ref, ev string) *apiv1.Run {
	e.t.Helper()
	r, err := e.svc.TriggerRun(e.user("org1"), &apiv1.TriggerRunRequest{Project: "app", Ref: ref, Event: ev})
	if err != nil {
		e.t.Fatalf("TriggerRun(%q): %v", ref, err)
	}
	return r
}

func (e *env) get(runID string) *apiv1.Run {
	e.t.Helper()
	r, err := e.svc.GetRun(e.user("org1"), &apiv1.GetRunRequest{Run: runID})
	if err != nil {
		e.t.Fatalf("GetRun(%s): %v", runID, err)
	}
	return r
}

// testSecret is the deployment secret of the tests' scheduler.
const testSecret = "int_scheduler-test"

func (e *env) claim(wait time.Duration, tiers ...string) *runnerv1.Job {
	e.t.Helper()
	if len(tiers) == 0 {
		tiers = []string{"standard"}
	}
	resp, err := e.svc.ClaimJob(e.internal(), &runnerv1.ClaimJobRequest{RunnerId: "runner-1", Tiers: tiers, Wait: durationpb.New(wait)})
	if err != nil {
		e.t.Fatalf("ClaimJob: %v", err)
	}
	return resp.GetJob()
}

func (e *env) mustClaim() *runnerv1.Job {
	e.t.Helper()
	job := e.claim(wait)
	if job == nil {
		e.t.Fatal("ClaimJob returned no job")
	}
	return job
}

func (e *env) report(job *runnerv1.Job, eventID string, ev any) error {
	req := &runnerv1.ReportRequest{RunId: job.GetRunId(), LeaseId: job.GetLeaseId(), EventId: eventID}
	switch ev := ev.(type) {
	case *eventsv1.StepStarted:
		req.Event = &runnerv1.ReportRequest_StepStarted{StepStarted: ev}
	case *eventsv1.StepSkipped:
		req.Event = &runnerv1.ReportRequest_StepSkipped{StepSkipped: ev}
	case *eventsv1.StepFinished:
		req.Event = &runnerv1.ReportRequest_StepFinished{StepFinished: ev}
	case *eventsv1.RunFinished:
		req.Event = &runnerv1.ReportRequest_RunFinished{RunFinished: ev}
	case *eventsv1.RunIsolation:
		req.Event = &runnerv1.ReportRequest_RunIsolation{RunIsolation: ev}
	case nil:
	default:
		e.t.Fatalf("cannot report %T", ev)
	}
	_, err := e.svc.Report(e.internal(), req)
	return err
}

func (e *env) mustReport(job *runnerv1.Job, ev any) {
	e.t.Helper()
	if err := e.report(job, id.New(), ev); err != nil {
		e.t.Fatalf("Report %T: %v", ev, err)
	}
}

// eventually polls cond until it holds or the deadline passes.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s", wait, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) list(req *apiv1.ListRunsRequest) *apiv1.ListRunsResponse {
	e.t.Helper()
	if req.Project == "" {
		req.Project = "app"
	}
	resp, err := e.svc.ListRuns(e.user("org1"), req)
	if err != nil {
		e.t.Fatalf("ListRuns(%v): %v", req, err)
	}
	return resp
}

// listStatus returns the run's status in the run list ("" when not listed).
func (e *env) listStatus(runID string) string {
	e.t.Helper()
	for _, r := range e.list(&apiv1.ListRunsRequest{PageSize: 200}).GetRuns() {
		if r.GetId() == runID {
			return r.GetStatus()
		}
	}
	return ""
}

// storedEvents returns the types of the events in the run's stream, in order.
func (e *env) storedEvents(runID string) []proto.Message {
	e.t.Helper()
	rows, err := e.db.QueryContext(e.ctx, e.db.Q(`SELECT type, payload FROM events WHERE stream_id = ? ORDER BY stream_version`), "run-"+runID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []proto.Message
	for rows.Next() {
		var typ string
		var payload []byte
		if err := rows.Scan(&typ, &payload); err != nil {
			e.t.Fatal(err)
		}
		m, err := event.Decode(typ, payload)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func typeNames(ms []proto.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = strings.TrimPrefix(event.TypeOf(m), "simpleci.events.v1.")
	}
	return out
}

func stepStatuses(r *apiv1.Run) []string {
	var out []string
	for _, s := range r.GetSteps() {
		out = append(out, s.GetStatus())
	}
	return out
}

// featureBody is the second paragraph of the test repository's branch commits'
// messages: user-controlled text that the API returns as it is.
const featureBody = "Adds <b>bold</b> & \"quotes\""

func TestTriggerRun(t *testing.T) {
	e := newEnv(t)
	main, feature := e.repo.shas["main"], e.repo.shas["feature"]
	featureMsg := "feature\n\n" + featureBody
	tests := []struct {
		name, ref, event    string
		wantRef, wantBranch string
		wantSHA, wantEvent  string
		wantNumber          int64
		wantMessage         string
	}{
		{"default ref is HEAD", "", "", "", "", main, "manual", 1, "main"},
		{"branch name", "main", "", "main", "main", main, "manual", 2, "main"},
		{"full branch ref", "refs/heads/feature", "push", "refs/heads/feature", "feature", feature, "push", 3, featureMsg},
		{"commit sha", feature, "", "", "", feature, "manual", 4, featureMsg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.at(t)
			before := time.Now()
			r := e.trigger(tt.ref, tt.event)
			if r.GetNumber() != tt.wantNumber || r.GetStatus() != "queued" || r.GetReason() != "" {
				t.Fatalf("run #%d %s %q, want #%d queued", r.GetNumber(), r.GetStatus(), r.GetReason(), tt.wantNumber)
			}
			if r.GetId() == "" || r.GetProjectId() != "p-app" || r.GetOrgId() != "org1" || r.GetTier() != "standard" || r.GetActor() != "alice" {
				t.Errorf("identity: %v", r)
			}
			if r.GetRef() != tt.wantRef || r.GetBranch() != tt.wantBranch || r.GetSha() != tt.wantSHA || r.GetEvent() != tt.wantEvent {
				t.Errorf("ref %q branch %q sha %q event %q; want %q %q %q %q", r.GetRef(), r.GetBranch(), r.GetSha(), r.GetEvent(),
					tt.wantRef, tt.wantBranch, tt.wantSHA, tt.wantEvent)
			}
			if c := r.GetCreatedAt().AsTime(); c.Before(before.Add(-time.Second)) || r.GetStartedAt() != nil || r.GetFinishedAt() != nil {
				t.Errorf("times: created %v started %v finished %v", c, r.GetStartedAt(), r.GetFinishedAt())
			}
			if got := stepStatuses(r); !slices.Equal(got, []string{"pending", "pending"}) || r.GetSteps()[0].GetName() != "build" || r.GetSteps()[1].GetIndex() != 1 {
				t.Errorf("steps %v", r.GetSteps())
			}
			// GetRun agrees with the response.
			g := e.get(r.GetId())
			if g.GetId() != r.GetId() || g.GetNumber() != r.GetNumber() || g.GetStatus() != r.GetStatus() || g.GetSha() != r.GetSha() ||
				g.GetBranch() != r.GetBranch() || g.GetRef() != r.GetRef() || !proto.Equal(g.GetCreatedAt(), r.GetCreatedAt()) ||
				!slices.Equal(stepStatuses(g), stepStatuses(r)) {
				t.Errorf("GetRun = %v\nTriggerRun = %v", g, r)
			}
			if r.GetCommitMessage() != tt.wantMessage || g.GetCommitMessage() != tt.wantMessage {
				t.Errorf("commit message: TriggerRun %q, GetRun %q; want %q", r.GetCommitMessage(), g.GetCommitMessage(), tt.wantMessage)
			}
		})
	}
	t.Run("refusals", func(t *testing.T) {
		e := e.at(t)
		for _, tt := range []struct {
			name string
			ctx  context.Context
			req  *apiv1.TriggerRunRequest
			want codes.Code
		}{
			{"no principal", e.ctx, &apiv1.TriggerRunRequest{Project: "app"}, codes.Unauthenticated},
			{"a service's principal", auth.WithPrincipal(e.ctx, &authv1.Principal{Service: auth.Gateway}), &apiv1.TriggerRunRequest{Project: "app"}, codes.PermissionDenied},
			{"a runner's principal", e.internal(), &apiv1.TriggerRunRequest{Project: "app"}, codes.PermissionDenied},
			{"unknown project", e.user("org1"), &apiv1.TriggerRunRequest{Project: "nope"}, codes.NotFound},
			{"another org's project", e.user("org1"), &apiv1.TriggerRunRequest{Project: "other"}, codes.NotFound},
			{"malformed ref", e.user("org1"), &apiv1.TriggerRunRequest{Project: "app", Ref: "a..b"}, codes.InvalidArgument},
			{"unknown event", e.user("org1"), &apiv1.TriggerRunRequest{Project: "app", Event: "deploy"}, codes.InvalidArgument},
		} {
			t.Run(tt.name, func(t *testing.T) {
				e := e.at(t)
				if _, err := e.svc.TriggerRun(tt.ctx, tt.req); code(err) != tt.want {
					t.Fatalf("TriggerRun: %v, want %s", err, tt.want)
				}
			})
		}
		if r := e.trigger("main", ""); r.GetNumber() != 5 {
			t.Fatalf("refused triggers took run numbers: next is #%d, want #5", r.GetNumber())
		}
	})
	t.Run("numbers are per project", func(t *testing.T) {
		e := e.at(t)
		r, err := e.svc.TriggerRun(e.user("org1"), &apiv1.TriggerRunRequest{Project: "big"})
		if err != nil || r.GetNumber() != 1 || r.GetTier() != "large" {
			t.Fatalf("first run of another project: %v, %v", r, err)
		}
	})
}

var pipelinePos = regexp.MustCompile(`\.simpleci/pipeline\.json:(\d+):(\d+)`)

func TestTriggerRunErrored(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, ref string
		check     func(t *testing.T, reason string)
	}{
		{"invalid pipeline", "bad", func(t *testing.T, reason string) {
			m := pipelinePos.FindStringSubmatch(reason)
			if m == nil || m[1] != "3" || !strings.Contains(reason, "bogus") {
				t.Fatalf("reason %q: want .simpleci/pipeline.json:3:COL naming the unknown field", reason)
			}
		}},
		{"missing pipeline", "nopipe", func(t *testing.T, reason string) {
			if !strings.Contains(reason, pipelineFile) || !strings.Contains(reason, "not found") || !strings.Contains(reason, e.repo.shas["nopipe"]) {
				t.Fatalf("reason %q: want the file, 'not found' and the commit", reason)
			}
		}},
		{"unknown branch", "no-such-branch", func(t *testing.T, reason string) {
			if !strings.Contains(reason, "no-such-branch") {
				t.Fatalf("reason %q: want the ref", reason)
			}
		}},
		{"unknown commit", strings.Repeat("d", 40), func(t *testing.T, reason string) {
			if !strings.Contains(reason, pipelineFile) {
				t.Fatalf("reason %q: want the file", reason)
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.at(t)
			r := e.trigger(tt.ref, "")
			if r.GetStatus() != "errored" || r.GetNumber() != int64(i+1) {
				t.Fatalf("run #%d %s, want #%d errored", r.GetNumber(), r.GetStatus(), i+1)
			}
			tt.check(t, r.GetReason())
			if r.GetFinishedAt() == nil || r.GetStartedAt() != nil || len(r.GetSteps()) != 0 {
				t.Fatalf("errored run: finished %v started %v steps %v", r.GetFinishedAt(), r.GetStartedAt(), r.GetSteps())
			}
			if got := typeNames(e.storedEvents(r.GetId())); !slices.Equal(got, []string{"RunQueued", "RunFinished"}) {
				t.Fatalf("stored %v, want RunQueued, RunFinished", got)
			}
			e.eventually("the errored run in the run list", func() bool { return e.listStatus(r.GetId()) == "errored" })
		})
	}
	t.Run("no job queued", func(t *testing.T) {
		e := e.at(t)
		if job := e.claim(100 * time.Millisecond); job != nil {
			t.Fatalf("claimed a job of an errored run: %v", job)
		}
	})
}

func TestClaimJob(t *testing.T) {
	e := newEnv(t)
	r := e.trigger("main", "")
	job := e.mustClaim()

	t.Run("job", func(t *testing.T) {
		e := e.at(t)
		if job.GetRunId() != r.GetId() || job.GetOrgId() != "org1" || job.GetProjectId() != "p-app" || job.GetLeaseId() == "" {
			t.Fatalf("job identity: %v", job)
		}
		if string(job.GetPipeline()) != goodPipeline || job.GetPipelinePath() != pipelineFile {
			t.Fatalf("pipeline %q at %q", job.GetPipeline(), job.GetPipelinePath())
		}
		if job.GetProvider() != "local" || job.GetRepository() != e.repo.dir || job.GetSha() != e.repo.shas["main"] || job.GetTier() != "standard" {
			t.Fatalf("checkout fields: %v", job)
		}
		if job.GetTimeout().AsDuration() != 150*time.Second || job.GetLeaseDuration().AsDuration() != 30*time.Second {
			t.Fatalf("timeout %v lease %v", job.GetTimeout().AsDuration(), job.GetLeaseDuration().AsDuration())
		}
		want := map[string]string{"event": "manual", "provider": "local", "repository": e.repo.dir, "branch": "main", "ref": "main",
			"sha": e.repo.shas["main"], "actor": "alice", "run_id": r.GetId(), "run_number": "1"}
		for k, v := range want {
			if job.GetContext()[k] != v {
				t.Errorf("context[%s] = %q, want %q", k, job.GetContext()[k], v)
			}
		}
	})
	t.Run("log grant", func(t *testing.T) {
		// The claim carries the log grant of runner-1 for this attempt of the run, which
		// the log service verifies under the same deployment secret (services/log).
		g := job.GetLogGrant()
		if g.GetRunId() != r.GetId() || g.GetAttempt() != 1 || g.GetRunner() != "runner-1" || g.GetOrgId() != "org1" ||
			g.GetProjectId() != "p-app" || g.GetRunLogBytes() != job.GetRunLogBytes() {
			t.Fatalf("log grant %v for job %v", g, job)
		}
		if err := auth.VerifyLogGrant(testSecret, g, "runner-1", time.Now()); err != nil {
			t.Fatalf("the grant does not verify: %v", err)
		}
		if err := auth.VerifyLogGrant(testSecret, g, "runner-2", time.Now()); err == nil {
			t.Fatal("runner-2 may use runner-1's grant")
		}
		// It outlives the job's timeout (150 s) by the slack for the checkout and the log's retries.
		if left := time.Until(g.GetExpiresAt().AsTime()); left < 150*time.Second+25*time.Minute || left > 150*time.Second+31*time.Minute {
			t.Fatalf("the grant expires in %v", left)
		}
	})
	t.Run("files grant", func(t *testing.T) {
		// The claim carries the files grant of runner-1: the caches of the run's branch,
		// the tier's size limit per entry, as long as the log grant.
		g := job.GetFilesGrant()
		if g.GetRunId() != r.GetId() || g.GetRunner() != "runner-1" || g.GetProjectId() != "p-app" || g.GetWriteScope() != "branch:main" ||
			len(g.GetReadScopes()) != 1 || g.GetReadScopes()[0] != "branch:main" || g.GetMaxEntryBytes() != 2<<30 ||
			!g.GetExpiresAt().AsTime().Equal(job.GetLogGrant().GetExpiresAt().AsTime()) {
			t.Fatalf("files grant %v", g)
		}
		if err := auth.VerifyFilesGrant(testSecret, g, "runner-1", time.Now()); err != nil {
			t.Fatalf("the grant does not verify: %v", err)
		}
	})
	t.Run("run is running", func(t *testing.T) {
		e := e.at(t)
		g := e.get(r.GetId())
		if g.GetStatus() != "running" || g.GetStartedAt() == nil {
			t.Fatalf("after claim: %s started %v", g.GetStatus(), g.GetStartedAt())
		}
		e.eventually("running in the run list", func() bool { return e.listStatus(r.GetId()) == "running" })
	})
	t.Run("second claim gets nothing", func(t *testing.T) {
		e := e.at(t)
		start := time.Now()
		if job := e.claim(100 * time.Millisecond); job != nil {
			t.Fatalf("claimed again: %v", job)
		}
		if time.Since(start) < 100*time.Millisecond {
			t.Fatal("ClaimJob returned before its wait")
		}
	})
	t.Run("refusals", func(t *testing.T) {
		e := e.at(t)
		for _, tt := range []struct {
			name string
			ctx  context.Context
			req  *runnerv1.ClaimJobRequest
			want codes.Code
		}{
			{"user", e.user("org1"), &runnerv1.ClaimJobRequest{RunnerId: "r", Tiers: []string{"standard"}}, codes.PermissionDenied},
			{"nobody", e.ctx, &runnerv1.ClaimJobRequest{RunnerId: "r", Tiers: []string{"standard"}}, codes.PermissionDenied},
			{"no runner id", e.internal(), &runnerv1.ClaimJobRequest{Tiers: []string{"standard"}}, codes.InvalidArgument},
			{"no tiers", e.internal(), &runnerv1.ClaimJobRequest{RunnerId: "runner-1"}, codes.InvalidArgument},
			{"a service", auth.WithPrincipal(e.ctx, &authv1.Principal{Service: auth.Scheduler}), &runnerv1.ClaimJobRequest{RunnerId: "runner-1", Tiers: []string{"standard"}}, codes.PermissionDenied},
			{"as another runner", e.internal(), &runnerv1.ClaimJobRequest{RunnerId: "runner-2", Tiers: []string{"standard"}}, codes.PermissionDenied},
		} {
			t.Run(tt.name, func(t *testing.T) {
				e := e.at(t)
				if _, err := e.svc.ClaimJob(tt.ctx, tt.req); code(err) != tt.want {
					t.Fatalf("ClaimJob: %v, want %s", err, tt.want)
				}
			})
		}
	})
	t.Run("only the runner's tiers", func(t *testing.T) {
		e := e.at(t)
		big, err := e.svc.TriggerRun(e.user("org1"), &apiv1.TriggerRunRequest{Project: "big"})
		if err != nil {
			t.Fatal(err)
		}
		if job := e.claim(100*time.Millisecond, "standard", "medium"); job != nil {
			t.Fatalf("a standard runner claimed %v", job)
		}
		job := e.claim(wait, "medium", "large")
		if job.GetRunId() != big.GetId() || job.GetTimeout().AsDuration() != 540*time.Second {
			t.Fatalf("large runner claimed %v", job)
		}
	})
	t.Run("oldest first", func(t *testing.T) {
		e := e.at(t)
		a, b := e.trigger("main", ""), e.trigger("feature", "")
		if j := e.mustClaim(); j.GetRunId() != a.GetId() {
			t.Fatalf("claimed #%s first, want #%d", j.GetContext()["run_number"], a.GetNumber())
		}
		if j := e.mustClaim(); j.GetRunId() != b.GetId() {
			t.Fatalf("claimed %s second, want #%d", j.GetContext()["run_number"], b.GetNumber())
		}
	})
	t.Run("a waiting claim gets a job queued later", func(t *testing.T) {
		e := e.at(t)
		got := make(chan *runnerv1.Job, 1)
		errc := make(chan error, 1)
		go func() {
			resp, err := e.svc.ClaimJob(e.runner("r2"), &runnerv1.ClaimJobRequest{RunnerId: "r2", Tiers: []string{"standard"}, Wait: durationpb.New(wait)})
			if err != nil {
				errc <- err
				return
			}
			got <- resp.GetJob()
		}()
		later := e.trigger("main", "")
		select {
		case job := <-got:
			if job.GetRunId() != later.GetId() {
				t.Fatalf("claimed %v, want run %s", job, later.GetId())
			}
		case err := <-errc:
			t.Fatal(err)
		case <-time.After(wait):
			t.Fatal("the waiting claim did not get the job")
		}
	})
	t.Run("a cancelled claim returns", func(t *testing.T) {
		e := e.at(t)
		ctx, cancel := context.WithCancel(e.runner("r3"))
		cancel()
		_, err := e.svc.ClaimJob(ctx, &runnerv1.ClaimJobRequest{RunnerId: "r3", Tiers: []string{"standard"}, Wait: durationpb.New(wait)})
		if code(err) != codes.Canceled {
			t.Fatalf("ClaimJob with a cancelled context: %v, want Canceled", err)
		}
	})
}

func TestReportLifecycle(t *testing.T) {
	e := newEnv(t)
	finished := make(chan *eventsv1.RunFinished, 10)
	err := e.bus.Subscribe(e.ctx, event.TopicRuns, "test", func(_ context.Context, m bus.Message) error {
		ev, err := event.Decode(m.Type, m.Payload)
		if err != nil {
			return nil
		}
		if f, ok := ev.(*eventsv1.RunFinished); ok {
			if m.Key != f.GetRunId() {
				t.Errorf("RunFinished keyed %q, want the run id %q", m.Key, f.GetRunId())
			}
			finished <- f
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := e.trigger("main", "")
	job := e.mustClaim()
	t0 := time.Now().Truncate(time.Millisecond)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }

	steps := []struct {
		name       string
		ev         any
		wantSteps  []string
		wantStatus string
	}{
		{"step 0 started", &eventsv1.StepStarted{StepIndex: 0, StepName: "build", StartedAt: ts(0)}, []string{"running", "pending"}, "running"},
		{"step 0 finished", &eventsv1.StepFinished{StepIndex: 0, StepName: "build", Status: "succeeded", StartedAt: ts(0), FinishedAt: ts(time.Second)}, []string{"succeeded", "pending"}, "running"},
		{"step 1 started", &eventsv1.StepStarted{StepIndex: 1, StepName: "test", StartedAt: ts(2 * time.Second)}, []string{"succeeded", "running"}, "running"},
		{"step 1 failed", &eventsv1.StepFinished{StepIndex: 1, StepName: "test", Status: "failed", ExitCode: 2, Reason: "exit status 2",
			StartedAt: ts(2 * time.Second), FinishedAt: ts(3 * time.Second)}, []string{"succeeded", "failed"}, "running"},
		{"run finished", &eventsv1.RunFinished{Status: "failed", Reason: "step test failed", LastLogSequence: 7}, []string{"succeeded", "failed"}, "failed"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			e := e.at(t)
			if st.wantStatus == "running" {
				if _, err := e.svc.Heartbeat(e.internal(), &runnerv1.HeartbeatRequest{RunId: job.GetRunId(), LeaseId: job.GetLeaseId()}); err != nil {
					t.Fatalf("Heartbeat: %v", err)
				}
			}
			e.mustReport(job, st.ev)
			g := e.get(r.GetId())
			if g.GetStatus() != st.wantStatus || !slices.Equal(stepStatuses(g), st.wantSteps) {
				t.Fatalf("run %s steps %v, want %s %v", g.GetStatus(), stepStatuses(g), st.wantStatus, st.wantSteps)
			}
		})
	}

	g := e.get(r.GetId())
	t.Run("final state", func(t *testing.T) {
		e := e.at(t)
		if g.GetReason() != "step test failed" || g.GetFinishedAt() == nil || g.GetStartedAt() == nil {
			t.Fatalf("run: reason %q started %v finished %v", g.GetReason(), g.GetStartedAt(), g.GetFinishedAt())
		}
		s1 := g.GetSteps()[1]
		if s1.GetExitCode() != 2 || s1.GetReason() != "exit status 2" || !s1.GetStartedAt().AsTime().Equal(t0.Add(2*time.Second)) ||
			!s1.GetFinishedAt().AsTime().Equal(t0.Add(3*time.Second)) {
			t.Fatalf("step 1: %v", s1)
		}
		e.eventually("failed in the run list", func() bool { return e.listStatus(r.GetId()) == "failed" })
	})
	t.Run("RunFinished published with the last log sequence", func(t *testing.T) {
		select {
		case f := <-finished:
			if f.GetRunId() != r.GetId() || f.GetLastLogSequence() != 7 || f.GetStatus() != "failed" || f.GetOrgId() != "org1" || f.GetProjectId() != "p-app" {
				t.Fatalf("published %v", f)
			}
		case <-time.After(wait):
			t.Fatal("no RunFinished on " + event.TopicRuns)
		}
	})
	t.Run("events are stamped with the run's identity", func(t *testing.T) {
		e := e.at(t)
		for _, m := range e.storedEvents(r.GetId()) {
			v := m.(interface {
				GetRunId() string
				GetOrgId() string
				GetProjectId() string
			})
			if v.GetRunId() != r.GetId() || v.GetOrgId() != "org1" || v.GetProjectId() != "p-app" {
				t.Errorf("%s: run %q org %q project %q", event.TypeOf(m), v.GetRunId(), v.GetOrgId(), v.GetProjectId())
			}
		}
	})
	t.Run("the lease ends with the run", func(t *testing.T) {
		e := e.at(t)
		if _, err := e.svc.Heartbeat(e.internal(), &runnerv1.HeartbeatRequest{RunId: job.GetRunId(), LeaseId: job.GetLeaseId()}); code(err) != codes.FailedPrecondition {
			t.Fatalf("Heartbeat after the end: %v, want FailedPrecondition", err)
		}
		if err := e.report(job, id.New(), &eventsv1.StepStarted{StepIndex: 0}); code(err) != codes.FailedPrecondition {
			t.Fatalf("Report after the end: %v, want FailedPrecondition", err)
		}
		if got := e.get(r.GetId()); got.GetStatus() != "failed" || !slices.Equal(stepStatuses(got), []string{"succeeded", "failed"}) {
			t.Fatalf("a late report changed the run: %s %v", got.GetStatus(), stepStatuses(got))
		}
	})
}

func TestReportStampsTenant(t *testing.T) {
	e := newEnv(t)
	r := e.trigger("main", "")
	job := e.mustClaim()
	// A runner naming another tenant's run in the event body cannot write there.
	e.mustReport(job, &eventsv1.StepStarted{RunId: "someone-else", OrgId: "org2", ProjectId: "p-other", StepIndex: 0})
	evs := e.storedEvents(r.GetId())
	ss, ok := evs[len(evs)-1].(*eventsv1.StepStarted)
	if !ok || ss.GetRunId() != r.GetId() || ss.GetOrgId() != "org1" || ss.GetProjectId() != "p-app" {
		t.Fatalf("stored %v", evs[len(evs)-1])
	}
}

// TestReportIsolation: the runner's isolation line is recorded (stamped with
// the run's identity and attempt) and shown in the run detail.
func TestReportIsolation(t *testing.T) {
	e := newEnv(t)
	r := e.trigger("main", "")
	job := e.mustClaim()
	const line = "isolation: cgroup=v1+v2 memory,pids,cpu,freezer; namespaces=user,mount,pid,net,ipc,uts,cgroup; user=uid 64001; fs=bubblewrap"
	e.mustReport(job, &eventsv1.RunIsolation{RunId: "someone-else", OrgId: "org2", Isolation: line})
	if g := e.get(r.GetId()); g.GetIsolation() != line || g.GetStatus() != "running" {
		t.Fatalf("run %s isolation %q, want running with %q", g.GetStatus(), g.GetIsolation(), line)
	}
	evs := e.storedEvents(r.GetId())
	ri, ok := evs[len(evs)-1].(*eventsv1.RunIsolation)
	if !ok || ri.GetRunId() != r.GetId() || ri.GetOrgId() != "org1" || ri.GetProjectId() != "p-app" || ri.GetAttempt() != 1 {
		t.Fatalf("stored %v", evs[len(evs)-1])
	}
}

func TestReportWrongLease(t *testing.T) {
	e := newEnv(t)
	r := e.trigger("main", "")
	job := e.mustClaim()
	other := e.trigger("feature", "")
	otherJob := e.mustClaim()
	tests := []struct {
		name  string
		lease string
		ev    any
		bug   string
	}{
		{"step started", "wrong", &eventsv1.StepStarted{StepIndex: 0}, ""},
		{"step skipped", "wrong", &eventsv1.StepSkipped{StepIndex: 1, Reason: "x"}, ""},
		{"step finished", "wrong", &eventsv1.StepFinished{StepIndex: 0, Status: "succeeded"}, ""},
		{"step started, lease of another run", otherJob.GetLeaseId(), &eventsv1.StepStarted{StepIndex: 0}, ""},
		{"step started, empty lease", "", &eventsv1.StepStarted{StepIndex: 0}, ""},
		{"run finished", "wrong", &eventsv1.RunFinished{Status: "succeeded"},
			"Report(RunFinished) skips the lease check: any internal caller with a stale or wrong lease can end a run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.at(t)
			stale := proto.Clone(job).(*runnerv1.Job)
			stale.LeaseId = tt.lease
			err := e.report(stale, id.New(), tt.ev)
			if code(err) != codes.FailedPrecondition {
				t.Fatalf("Report with lease %q: %v, want FailedPrecondition", tt.lease, err)
			}
			g := e.get(r.GetId())
			if g.GetStatus() != "running" || !slices.Equal(stepStatuses(g), []string{"pending", "pending"}) {
				t.Fatalf("a refused report changed the run: %s %v", g.GetStatus(), stepStatuses(g))
			}
		})
	}
	t.Run("heartbeat with a wrong lease", func(t *testing.T) {
		e := e.at(t)
		_, err := e.svc.Heartbeat(e.internal(), &runnerv1.HeartbeatRequest{RunId: r.GetId(), LeaseId: otherJob.GetLeaseId()})
		if code(err) != codes.FailedPrecondition {
			t.Fatalf("Heartbeat: %v, want FailedPrecondition", err)
		}
	})
	if g := e.get(other.GetId()); g.GetStatus() != "running" {
		t.Fatalf("the other run is %s", g.GetStatus())
	}
}

// TestLeaseHolder: a runner that learnt another runner's lease id (run id and lease id
// of a job it does not hold) can neither report on it, heartbeat it, hand it back nor
// finish it: the scheduler checks the caller's runner identity against the lease's
// holder on every call. The holder goes on undisturbed.
func TestLeaseHolder(t *testing.T) {
	e := newEnv(t)
	r := e.trigger("main", "")
	job := e.mustClaim() // by runner-1
	thief := e.runner("runner-2")
	report := func(ctx context.Context, ev *runnerv1.ReportRequest) error {
		ev.RunId, ev.LeaseId, ev.EventId = job.GetRunId(), job.GetLeaseId(), id.New()
		_, err := e.svc.Report(ctx, ev)
		return err
	}
	for _, tt := range []struct {
		name string
		call func() error
	}{
		{"step started", func() error {
			return report(thief, &runnerv1.ReportRequest{Event: &runnerv1.ReportRequest_StepStarted{StepStarted: &eventsv1.StepStarted{StepIndex: 0}}})
		}},
		{"run finished", func() error {
			return report(thief, &runnerv1.ReportRequest{Event: &runnerv1.ReportRequest_RunFinished{RunFinished: &eventsv1.RunFinished{Status: "succeeded"}}})
		}},
		{"heartbeat", func() error {
			_, err := e.svc.Heartbeat(thief, &runnerv1.HeartbeatRequest{RunId: job.GetRunId(), LeaseId: job.GetLeaseId()})
			return err
		}},
		{"release", func() error {
			_, err := e.svc.ReleaseJob(thief, &runnerv1.ReleaseJobRequest{RunId: job.GetRunId(), LeaseId: job.GetLeaseId(), Reason: "x"})
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "another runner, not runner-2") {
				t.Fatalf("%s by runner-2 on runner-1's job: %v, want PermissionDenied", tt.name, err)
			}
			g := e.get(r.GetId())
			if g.GetStatus() != "running" || !slices.Equal(stepStatuses(g), []string{"pending", "pending"}) {
				t.Fatalf("a refused call changed the run: %s %v", g.GetStatus(), stepStatuses(g))
			}
		})
	}
	t.Run("the holder goes on", func(t *testing.T) {
		e := e.at(t)
		if _, err := e.svc.Heartbeat(e.internal(), &runnerv1.HeartbeatRequest{RunId: job.GetRunId(), LeaseId: job.GetLeaseId()}); err != nil {
			t.Fatalf("the holder's heartbeat: %v", err)
		}
		if err := e.report(job, id.New(), &eventsv1.RunFinished{Status: "succeeded"}); err != nil {
			t.Fatalf("the holder's report: %v", err)
		}
		if g := e.get(r.GetId()); g.GetStatus() != "succeeded" {
			t.Fatalf("run %s, want succeeded", g.GetStatus())
		}
	})
	t.Run("a finished run's lease is still the holder's", func(t *testing.T) {
		err := report(thief, &runnerv1.ReportRequest{Event: &runnerv1.ReportRequest_RunFinished{RunFinished: &eventsv1.RunFinished{Status: "failed"}}})
		if code(err) != codes.PermissionDenied {
			t.Fatalf("runner-2 finishing runner-1's finished run: %v, want PermissionDenied", err)
		}
	})
}

func TestReportValidation(t *testing.T) {
	e := newEnv(t)
	e.trigger("main", "")
	job := e.mustClaim()
	req := func(mod func(*runnerv1.ReportRequest)) *runnerv1.ReportRequest {
		r := &runnerv1.ReportRequest{RunId: job.GetRunId(), LeaseId: job.GetLeaseId(), EventId: id.New(),
			Event: &runnerv1.ReportRequest_StepStarted{StepStarted: &eventsv1.StepStarted{StepIndex: 0}}}
		if mod != nil {
			mod(r)
		}
		return r
	}
	tests := []struct {
		name string
		ctx  context.Context
		req  *runnerv1.ReportRequest
		want codes.Code
	}{
		{"user caller", e.user("org1"), req(nil), codes.PermissionDenied},
		{"no event id", e.internal(), req(func(r *runnerv1.ReportRequest) { r.EventId = "" }), codes.InvalidArgument},
		{"no run id", e.internal(), req(func(r *runnerv1.ReportRequest) { r.RunId = "" }), codes.InvalidArgument},
		{"no event", e.internal(), req(func(r *runnerv1.ReportRequest) { r.Event = nil }), codes.InvalidArgument},
		{"step index out of range", e.internal(), req(func(r *runnerv1.ReportRequest) {
			r.Event = &runnerv1.ReportRequest_StepStarted{StepStarted: &eventsv1.StepStarted{StepIndex: 2}}
		}), codes.FailedPrecondition},
		{"negative step index", e.internal(), req(func(r *runnerv1.ReportRequest) {
			r.Event = &runnerv1.ReportRequest_StepFinished{StepFinished: &eventsv1.StepFinished{StepIndex: -1, Status: "failed"}}
		}), codes.FailedPrecondition},
		{"run finished with a non-final status", e.internal(), req(func(r *runnerv1.ReportRequest) {
			r.Event = &runnerv1.ReportRequest_RunFinished{RunFinished: &eventsv1.RunFinished{Status: "running"}}
		}), codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.at(t)
			if _, err := e.svc.Report(tt.ctx, tt.req); code(err) != tt.want {
				t.Fatalf("Report: %v, want %s", err, tt.want)
			}
		})
	}
	if got := typeNames(e.storedEvents(job.GetRunId())); !slices.Equal(got, []string{"RunQueued", "RunStarted"}) {
		t.Fatalf("refused reports were recorded: %v", got)
	}
}

func TestReportRetried(t *testing.T) {
	e := newEnv(t)
	r := e.trigger("main", "")
	job := e.mustClaim()
	t0 := time.Now().Truncate(time.Millisecond)
	started := &eventsv1.StepStarted{StepIndex: 0, StartedAt: timestamppb.New(t0)}
	finishedEv := &eventsv1.StepFinished{StepIndex: 0, Status: "succeeded", StartedAt: timestamppb.New(t0), FinishedAt: timestamppb.New(t0.Add(time.Second))}
	runDone := &eventsv1.RunFinished{Status: "succeeded", LastLogSequence: 3}
	ids := []string{id.New(), id.New(), id.New(), id.New()}

	for _, step := range []struct {
		name string
		id   string
		ev   any
	}{
		{"step started", ids[0], started},
		{"step finished", ids[1], finishedEv},
		{"step 1 skipped", ids[2], &eventsv1.StepSkipped{StepIndex: 1, Reason: "condition false"}},
	} {
		t.Run(step.name, func(t *testing.T) {
			e := e.at(t)
			for attempt := 1; attempt <= 2; attempt++ {
				if err := e.report(job, step.id, step.ev); err != nil {
					t.Fatalf("attempt %d: %v", attempt, err)
				}
			}
		})
	}
	t.Run("a retried old report does not reopen the step", func(t *testing.T) {
		e := e.at(t)
		if err := e.report(job, ids[0], started); err != nil {
			t.Fatalf("late retry of StepStarted: %v", err)
		}
		g := e.get(r.GetId())
		if s := g.GetSteps()[0]; s.GetStatus() != "succeeded" || !s.GetStartedAt().AsTime().Equal(t0) || !s.GetFinishedAt().AsTime().Equal(t0.Add(time.Second)) {
			t.Fatalf("step 0 after retries: %v", s)
		}
		if got := typeNames(e.storedEvents(r.GetId())); !slices.Equal(got, []string{"RunQueued", "RunStarted", "StepStarted", "StepFinished", "StepSkipped"}) {
			t.Fatalf("stored %v: each report must be recorded once", got)
		}
	})
	t.Run("run finished twice", func(t *testing.T) {
		e := e.at(t)
		for attempt := 1; attempt <= 2; attempt++ {
			if err := e.report(job, ids[3], runDone); err != nil {
				t.Fatalf("attempt %d: %v", attempt, err)
			}
		}
		g := e.get(r.GetId())
		if g.GetStatus() != "succeeded" || !slices.Equal(stepStatuses(g), []string{"succeeded", "skipped"}) {
			t.Fatalf("run %s steps %v", g.GetStatus(), stepStatuses(g))
		}
		if got := typeNames(e.storedEvents(r.GetId())); len(got) != 6 || got[5] != "RunFinished" {
			t.Fatalf("stored %v", got)
		}
	})
	t.Run("the run list sees the end", func(t *testing.T) {
		e := e.at(t)
		// Before the run list was projected from the log, a redelivered append was folded
		// twice and stored a version one ahead, which hid the next real change (RunFinished).
		e.eventually("succeeded in the run list", func() bool { return e.listStatus(r.GetId()) == "succeeded" })
	})
}

func TestListRuns(t *testing.T) {
	e := newEnv(t)
	// #1 main manual (claimed: running), #2 feature push, #3 main push, #4 bad manual (errored), #5 feature manual
	runs := []*apiv1.Run{
		e.trigger("main", ""), e.trigger("feature", "push"), e.trigger("main", "push"), e.trigger("bad", ""), e.trigger("feature", ""),
	}
	if j := e.mustClaim(); j.GetRunId() != runs[0].GetId() {
		t.Fatalf("claimed %v", j)
	}
	byID := map[string]int64{}
	for _, r := range runs {
		byID[r.GetId()] = r.GetNumber()
	}
	numbers := func(rs []*apiv1.Run) []int64 {
		var out []int64
		for _, r := range rs {
			out = append(out, byID[r.GetId()])
		}
		return out
	}
	e.eventually("every run in the run list with its status", func() bool {
		got := e.list(&apiv1.ListRunsRequest{})
		want := map[int64]string{1: "running", 2: "queued", 3: "queued", 4: "errored", 5: "queued"}
		if len(got.GetRuns()) != 5 {
			return false
		}
		for _, r := range got.GetRuns() {
			if want[byID[r.GetId()]] != r.GetStatus() {
				return false
			}
		}
		return true
	})
	t.Run("commit messages", func(t *testing.T) {
		want := map[int64]string{1: "main", 2: "feature\n\n" + featureBody, 3: "main", 4: "bad\n\n" + featureBody, 5: "feature\n\n" + featureBody}
		for _, r := range e.list(&apiv1.ListRunsRequest{}).GetRuns() {
			if n := byID[r.GetId()]; r.GetCommitMessage() != want[n] {
				t.Errorf("run #%d in the list: commit message %q, want %q", n, r.GetCommitMessage(), want[n])
			}
		}
	})

	created := func(n int) string { return runs[n-1].GetCreatedAt().AsTime().Format(time.RFC3339Nano) }
	tests := []struct {
		name string
		req  *apiv1.ListRunsRequest
		want []int64
	}{
		{"all, newest first", &apiv1.ListRunsRequest{}, []int64{5, 4, 3, 2, 1}},
		{"status queued", &apiv1.ListRunsRequest{Status: "queued"}, []int64{5, 3, 2}},
		{"status running", &apiv1.ListRunsRequest{Status: "running"}, []int64{1}},
		{"status errored", &apiv1.ListRunsRequest{Status: "errored"}, []int64{4}},
		{"status succeeded", &apiv1.ListRunsRequest{Status: "succeeded"}, nil},
		{"event push", &apiv1.ListRunsRequest{Event: "push"}, []int64{3, 2}},
		{"event manual", &apiv1.ListRunsRequest{Event: "manual"}, []int64{5, 4, 1}},
		{"branch feature", &apiv1.ListRunsRequest{Branch: "feature"}, []int64{5, 2}},
		{"branch main, event push", &apiv1.ListRunsRequest{Branch: "main", Event: "push"}, []int64{3}},
		{"status, event and branch", &apiv1.ListRunsRequest{Status: "queued", Event: "manual", Branch: "feature"}, []int64{5}},
		{"since #3", &apiv1.ListRunsRequest{Since: created(3)}, []int64{5, 4, 3}},
		{"until #3", &apiv1.ListRunsRequest{Until: created(3)}, []int64{2, 1}},
		{"since #2 until #5", &apiv1.ListRunsRequest{Since: created(2), Until: created(5)}, []int64{4, 3, 2}},
		{"project by id", &apiv1.ListRunsRequest{Project: "p-app", Event: "push"}, []int64{3, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.at(t)
			resp := e.list(tt.req)
			if got := numbers(resp.GetRuns()); !slices.Equal(got, tt.want) {
				t.Fatalf("runs %v, want %v", got, tt.want)
			}
			if resp.GetNextPageToken() != "" {
				t.Fatalf("next page token %q on the only page", resp.GetNextPageToken())
			}
			for _, r := range resp.GetRuns() {
				if len(r.GetSteps()) != 0 {
					t.Fatalf("the list carries steps: %v", r)
				}
			}
		})
	}

	pages := []struct {
		name string
		req  *apiv1.ListRunsRequest
		want []int64
	}{
		{"page size 2", &apiv1.ListRunsRequest{PageSize: 2}, []int64{5, 4, 3, 2, 1}},
		{"page size 1", &apiv1.ListRunsRequest{PageSize: 1}, []int64{5, 4, 3, 2, 1}},
		{"page size 4", &apiv1.ListRunsRequest{PageSize: 4}, []int64{5, 4, 3, 2, 1}},
		{"page size 5", &apiv1.ListRunsRequest{PageSize: 5}, []int64{5, 4, 3, 2, 1}},
		{"page size 2, queued", &apiv1.ListRunsRequest{PageSize: 2, Status: "queued"}, []int64{5, 3, 2}},
	}
	for _, tt := range pages {
		t.Run(tt.name, func(t *testing.T) {
			e := e.at(t)
			var got []int64
			seen := map[string]bool{}
			req := proto.Clone(tt.req).(*apiv1.ListRunsRequest)
			for page := 0; ; page++ {
				if page > 10 {
					t.Fatal("paging does not end")
				}
				resp := e.list(req)
				if len(resp.GetRuns()) > int(tt.req.PageSize) {
					t.Fatalf("page of %d runs, size %d", len(resp.GetRuns()), tt.req.PageSize)
				}
				for _, r := range resp.GetRuns() {
					if seen[r.GetId()] {
						t.Fatalf("run #%d on two pages", byID[r.GetId()])
					}
					seen[r.GetId()] = true
				}
				got = append(got, numbers(resp.GetRuns())...)
				if resp.GetNextPageToken() == "" {
					break
				}
				req.PageToken = resp.GetNextPageToken()
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("visited %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("refusals", func(t *testing.T) {
		e := e.at(t)
		for _, tt := range []struct {
			name string
			ctx  context.Context
			req  *apiv1.ListRunsRequest
			want codes.Code
		}{
			{"bad since", e.user("org1"), &apiv1.ListRunsRequest{Project: "app", Since: "yesterday"}, codes.InvalidArgument},
			{"bad until", e.user("org1"), &apiv1.ListRunsRequest{Project: "app", Until: "2026-13-01"}, codes.InvalidArgument},
			{"bad page token", e.user("org1"), &apiv1.ListRunsRequest{Project: "app", PageToken: "!!!"}, codes.InvalidArgument},
			{"forged page token", e.user("org1"), &apiv1.ListRunsRequest{Project: "app", PageToken: "bm90LWEtdG9rZW4"}, codes.InvalidArgument},
			{"unknown project", e.user("org1"), &apiv1.ListRunsRequest{Project: "nope"}, codes.NotFound},
			{"another org's project", e.user("org2"), &apiv1.ListRunsRequest{Project: "app"}, codes.NotFound},
			{"no principal", e.ctx, &apiv1.ListRunsRequest{Project: "app"}, codes.Unauthenticated},
		} {
			t.Run(tt.name, func(t *testing.T) {
				e := e.at(t)
				if _, err := e.svc.ListRuns(tt.ctx, tt.req); code(err) != tt.want {
					t.Fatalf("ListRuns: %v, want %s", err, tt.want)
				}
			})
		}
	})
	t.Run("GetRun is organisation-scoped", func(t *testing.T) {
		e := e.at(t)
		if _, err := e.svc.GetRun(e.user("org2"), &apiv1.GetRunRequest{Run: runs[0].GetId()}); code(err) != codes.NotFound {
			t.Fatalf("GetRun by another org: %v, want NotFound", err)
		}
		if _, err := e.svc.GetRun(e.user("org1"), &apiv1.GetRunRequest{Run: "no-such-run"}); code(err) != codes.NotFound {
			t.Fatalf("GetRun of an unknown run: %v, want NotFound", err)
		}
	})
}

func TestRunRequestedFromBus(t *testing.T) {
	e := newEnv(t)
	publish := func(rr *eventsv1.RunRequested) {
		t.Helper()
		m, err := event.Encode(id.New(), rr.GetRunId(), rr)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.bus.Publish(e.ctx, event.TopicRunRequests, m); err != nil {
			t.Fatal(err)
		}
	}
	request := func(runID, project string) *eventsv1.RunRequested {
		return &eventsv1.RunRequested{RunId: runID, OrgId: "org1", ProjectId: project, Provider: "local", Repository: e.repo.dir,
			Ref: "refs/heads/main", Branch: "main", Sha: e.repo.shas["main"], Event: "push", Actor: "bob", DeliveryId: "d-" + runID,
			RequestedAt: timestamppb.Now()}
	}
	waitRun := func(runID string) *apiv1.Run {
		t.Helper()
		var r *apiv1.Run
		e.eventually("run "+runID, func() bool {
			var err error
			r, err = e.svc.GetRun(e.user("org1"), &apiv1.GetRunRequest{Run: runID})
			return err == nil
		})
		return r
	}

	x, y := id.New(), id.New()
	publish(request(x, "p-app"))
	publish(request(x, "p-app")) // redelivered
	publish(request(id.New(), "p-unknown"))
	publish(request(y, "p-app"))
	rx, ry := waitRun(x), waitRun(y)
	if rx.GetNumber() != 1 || rx.GetStatus() != "queued" || rx.GetEvent() != "push" || rx.GetActor() != "bob" || rx.GetSha() != e.repo.shas["main"] {
		t.Fatalf("run x: %v", rx)
	}
	if ry.GetNumber() != 2 {
		t.Fatalf("run y is #%d, want #2: the redelivered request took a number", ry.GetNumber())
	}
	if got := typeNames(e.storedEvents(x)); !slices.Equal(got, []string{"RunQueued"}) {
		t.Fatalf("run x stored %v", got)
	}
	if j := e.mustClaim(); j.GetRunId() != x {
		t.Fatalf("first job %s, want x", j.GetRunId())
	}
	if j := e.mustClaim(); j.GetRunId() != y {
		t.Fatalf("second job %s, want y", j.GetRunId())
	}
	if j := e.claim(100 * time.Millisecond); j != nil {
		t.Fatalf("a third job: %v (the redelivery queued another)", j)
	}
}

func TestExpiredLeaseEndsRun(t *testing.T) {
	const lease = 300 * time.Millisecond
	e := newEnv(t, withLease(lease), func(c *service.Config) { c.LostRunRetries = -1 }) // no retry
	r := e.trigger("main", "")
	job := e.mustClaim()
	if job.GetLeaseDuration().AsDuration() != lease {
		t.Fatalf("job lease %v, want %v", job.GetLeaseDuration().AsDuration(), lease)
	}
	e.mustReport(job, &eventsv1.StepStarted{StepIndex: 0, StartedAt: timestamppb.Now()})

	// The runner goes silent.
	var g *apiv1.Run
	e.eventually("the run to fail", func() bool {
		g = e.get(r.GetId())
		return g.GetStatus() != "running"
	})
	if g.GetStatus() != "failed" || !strings.Contains(g.GetReason(), "runner lost") || g.GetFinishedAt() == nil {
		t.Fatalf("run %s %q finished %v, want failed with 'runner lost'", g.GetStatus(), g.GetReason(), g.GetFinishedAt())
	}
	if s := g.GetSteps(); s[0].GetStatus() != "failed" || !strings.Contains(s[0].GetReason(), "runner lost") || s[1].GetStatus() != "skipped" {
		t.Fatalf("steps %v", s)
	}
	// The job row is removed just after RunFinished is recorded.
	e.eventually("the lost lease to be refused", func() bool {
		_, err := e.svc.Heartbeat(e.internal(), &runnerv1.HeartbeatRequest{RunId: job.GetRunId(), LeaseId: job.GetLeaseId()})
		if err != nil && code(err) != codes.FailedPrecondition {
			t.Fatalf("Heartbeat of the lost lease: %v, want FailedPrecondition", err)
		}
		return err != nil
	})
	if err := e.report(job, id.New(), &eventsv1.StepFinished{StepIndex: 0, Status: "succeeded"}); code(err) != codes.FailedPrecondition {
		t.Fatalf("Report under the lost lease: %v, want FailedPrecondition", err)
	}
	if j := e.claim(100 * time.Millisecond); j != nil {
		t.Fatalf("the lost run was queued again: %v", j)
	}
	e.eventually("failed in the run list", func() bool { return e.listStatus(r.GetId()) == "failed" })
}

// loseLease claims the run's job and lets the lease lapse; it returns the run once the
// reaper has acted on it.
func (e *env) loseLease(runID string) *apiv1.Run {
	e.t.Helper()
	job := e.mustClaim()
	if job.GetRunId() != runID {
		e.t.Fatalf("claimed %s, want %s", job.GetRunId(), runID)
	}
	var g *apiv1.Run
	e.eventually("the reaper to act on the lost lease", func() bool {
		g = e.get(runID)
		return g.GetStatus() != "running"
	})
	return g
}

func TestLostRunnerRequeues(t *testing.T) {
	e := newEnv(t, withLease(300*time.Millisecond), func(c *service.Config) { c.LostRunRetries = 1 })
	r := e.trigger("main", "")
	g := e.loseLease(r.GetId())
	if g.GetStatus() != "queued" || g.GetFinishedAt() != nil || !slices.Equal(stepStatuses(g), []string{"pending", "pending"}) {
		t.Fatalf("after the first lost runner: %s %q steps %v, want queued again", g.GetStatus(), g.GetReason(), stepStatuses(g))
	}
	// The second runner is lost too: no retries left.
	g = e.loseLease(r.GetId())
	if g.GetStatus() != "failed" || !strings.Contains(g.GetReason(), "runner lost") {
		t.Fatalf("after the second lost runner: %s %q, want failed with 'runner lost'", g.GetStatus(), g.GetReason())
	}
	if g.GetNumber() != 1 {
		t.Fatalf("the retry took a new number: #%d", g.GetNumber())
	}
}

// TestLostRunRetriesDefault: the zero Config never retries (the CLI defaults to 1).
func TestLostRunRetriesDefault(t *testing.T) {
	e := newEnv(t, withLease(300*time.Millisecond))
	r := e.trigger("main", "")
	if g := e.loseLease(r.GetId()); g.GetStatus() != "failed" || !strings.Contains(g.GetReason(), "runner lost") {
		t.Fatalf("with the zero Config a lost runner gives %s %q, want failed: runner lost", g.GetStatus(), g.GetReason())
	}
}

func TestHeartbeatKeepsLease(t *testing.T) {
	const lease = time.Second
	e := newEnv(t, withLease(lease))
	r := e.trigger("main", "")
	job := e.mustClaim()
	// Heartbeat for well over two lease durations; the run must stay running.
	tick := time.NewTicker(lease / 10)
	defer tick.Stop()
	end := time.Now().Add(5 * lease / 2)
	for time.Now().Before(end) {
		<-tick.C
		if _, err := e.svc.Heartbeat(e.internal(), &runnerv1.HeartbeatRequest{RunId: job.GetRunId(), LeaseId: job.GetLeaseId()}); err != nil {
			t.Fatalf("Heartbeat: %v", err)
		}
	}
	if g := e.get(r.GetId()); g.GetStatus() != "running" {
		t.Fatalf("run %s %q while heartbeating", g.GetStatus(), g.GetReason())
	}
	e.mustReport(job, &eventsv1.RunFinished{Status: "succeeded"})
	if g := e.get(r.GetId()); g.GetStatus() != "succeeded" {
		t.Fatalf("run %s", g.GetStatus())
	}
}

func TestNewRequiresDependencies(t *testing.T) {
	_, err := service.New(context.Background(), service.Config{})
	if err == nil {
		t.Fatal("New with an empty config succeeded")
	}
	for _, want := range []string{"DB", "Bus", "Forges", "Projects"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// code is the status code a gRPC client sees for a handler's error.
func code(err error) codes.Code { return status.Code(service.GRPCError(context.Background(), err)) }
