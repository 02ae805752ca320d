package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/auth"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// identitySecret is the secret runnerIdentity gives its project.
const identitySecret = "identity-secret-value"

// runnerIdentity (issue 9, per-identity credentials): the six services as separate
// processes, the runner with its own token. With a runner's token, nothing but
// the runner protocol answers: the project service's secret and resolve RPCs, the auth
// service and the user API are PermissionDenied. A runner cannot claim as another
// runner, nor report on, heartbeat or hand back a job another runner holds, even with
// that job's lease id. Nor can it append log chunks to a run it does not hold: runner-1's
// log grant (minted here as the scheduler would, with the deployment secret) is refused
// to it, and so is a grant it makes itself. A revoked runner token can no longer claim
// nor append logs (within the auth cache's bound). A runner process refuses the
// deployment's internal token and Kafka brokers (runners reach no bus). It runs in
// the hostile suite (TestHostileServices), on its cluster.
func runnerIdentity(t *testing.T, c *cluster) {
	a := &api{t: t, base: c.api.base, token: c.api.token}
	hold := uniqueSleep()
	repo, shas := gitRepo(t, map[string]string{"hold": pipelineJSON(map[string]any{"name": "hold", "run": []string{hold}})})
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "identity", "provider": "local", "repository": repo,
		"events": []string{"push"}}, http.StatusOK, &p)
	a.json("PUT", "/api/v1/projects/"+p.ID+"/secrets/DEPLOY_KEY", map[string]string{"value": identitySecret}, http.StatusOK, nil)
	intruder := c.registerRunner("intruder")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dial := func(t *testing.T, service, token string) *grpc.ClientConn {
		t.Helper()
		conn, err := auth.Dial(c.grpc[service], token)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	denied := func(t *testing.T, what string, err error) {
		t.Helper()
		if grpcstatus.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s with a runner's token: %v, want PermissionDenied", what, err)
		}
		t.Logf("%s: %s", what, grpcstatus.Convert(err).Message())
	}

	t.Run("a runner's token opens nothing but the runner protocol", func(t *testing.T) {
		pc := dial(t, "project", intruder)
		_, err := apiv1.NewProjectInternalServiceClient(pc).JobSecrets(ctx, &apiv1.JobSecretsRequest{ProjectId: p.ID})
		denied(t, "JobSecrets", err)
		_, err = apiv1.NewProjectInternalServiceClient(pc).ResolveProject(ctx, &apiv1.ResolveProjectRequest{Project: p.ID})
		denied(t, "ResolveProject", err)
		_, err = apiv1.NewProjectServiceClient(pc).ListSecrets(ctx, &apiv1.ListSecretsRequest{Project: p.ID})
		denied(t, "ListSecrets", err)
		_, err = apiv1.NewProjectServiceClient(pc).GetProject(ctx, &apiv1.GetProjectRequest{Project: p.ID})
		denied(t, "GetProject", err)
		_, err = authv1.NewAuthServiceClient(dial(t, "auth", intruder)).VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: a.token})
		denied(t, "VerifyToken", err)
		_, err = apiv1.NewRunServiceClient(dial(t, "scheduler", intruder)).ListRuns(ctx, &apiv1.ListRunsRequest{Project: p.ID})
		denied(t, "ListRuns", err)
		// Through the gateway's REST API, a runner's token is no user's either.
		r := &api{t: t, base: a.base, token: intruder}
		if code, b := r.do("GET", "/api/v1/projects/"+p.ID+"/secrets", nil, nil); code != http.StatusForbidden {
			t.Fatalf("REST secrets with a runner's token: %d %s, want 403", code, b)
		}
	})

	// A job held by runner-1, and its lease id (users see it in the run's events).
	id := a.push(p, "hold", shas["hold"])
	eventually(t, 60*time.Second, "runner-1 to run the job", func() bool {
		var r run
		code, b := a.do("GET", "/api/v1/runs/"+id, nil, nil)
		return code == http.StatusOK && json.Unmarshal(b, &r) == nil && len(r.Steps) > 0 && r.Steps[0].Status == "running" &&
			a.runnerOf(id) == "runner-1"
	})
	lease := ""
	for _, e := range a.events(id) {
		if e.Type == "RunStarted" {
			lease, _ = e.Payload["leaseId"].(string)
		}
	}
	if lease == "" {
		t.Fatal("no lease id in the run's events")
	}

	secret := internalToken(c)
	grantOf := func(t *testing.T, runner, key string) *runnerv1.LogGrant {
		t.Helper()
		g := &runnerv1.LogGrant{RunId: id, Attempt: 1, Runner: runner, OrgId: "any", ProjectId: p.ID, ExpiresAt: timestamppb.New(time.Now().Add(time.Hour))}
		if err := auth.SignLogGrant(key, g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	const intruderLine = "intruder: forged log line\n"
	appendAs := func(token string, g *runnerv1.LogGrant) error {
		_, err := runnerv1.NewRunnerLogServiceClient(dial(t, "log", token)).AppendLogs(ctx, &runnerv1.AppendLogsRequest{Grant: g,
			Chunks: []*runnerv1.LogChunk{{Sequence: 1, Stream: eventsv1.LogStream_LOG_STREAM_STDOUT, At: timestamppb.Now(), Data: []byte(intruderLine)},
				{Sequence: 1000, Stream: eventsv1.LogStream_LOG_STREAM_STDOUT, At: timestamppb.Now(), Data: []byte(intruderLine)}}})
		return err
	}

	t.Run("a runner cannot append logs to a run it does not hold", func(t *testing.T) {
		// runner-1's own grant, had it leaked: issued to runner-1, so not the intruder's.
		denied(t, "AppendLogs under runner-1's grant", appendAs(intruder, grantOf(t, "runner-1", secret)))
		// A grant the intruder makes itself, naming itself, without the deployment secret.
		denied(t, "AppendLogs under a grant the intruder signed", appendAs(intruder, grantOf(t, "intruder", "int-guessed")))
		denied(t, "AppendLogs without a grant", appendAs(intruder, nil))
	})

	t.Run("a runner cannot act on another runner's job", func(t *testing.T) {
		rc := runnerv1.NewRunnerServiceClient(dial(t, "scheduler", intruder))
		_, err := rc.Report(ctx, &runnerv1.ReportRequest{RunId: id, LeaseId: lease, EventId: "intruder-1",
			Event: &runnerv1.ReportRequest_RunFinished{RunFinished: &eventsv1.RunFinished{Status: "succeeded"}}})
		denied(t, "Report(RunFinished) on runner-1's job", err)
		_, err = rc.Report(ctx, &runnerv1.ReportRequest{RunId: id, LeaseId: lease, EventId: "intruder-2",
			Event: &runnerv1.ReportRequest_StepFinished{StepFinished: &eventsv1.StepFinished{StepIndex: 0, Status: "succeeded"}}})
		denied(t, "Report(StepFinished) on runner-1's job", err)
		_, err = rc.Heartbeat(ctx, &runnerv1.HeartbeatRequest{RunId: id, LeaseId: lease})
		denied(t, "Heartbeat of runner-1's job", err)
		_, err = rc.ReleaseJob(ctx, &runnerv1.ReleaseJobRequest{RunId: id, LeaseId: lease, Reason: "x"})
		denied(t, "ReleaseJob of runner-1's job", err)
		_, err = rc.ClaimJob(ctx, &runnerv1.ClaimJobRequest{RunnerId: "runner-1", Tiers: []string{"standard"}, Wait: durationpb.New(time.Second)})
		denied(t, "ClaimJob as runner-1", err)
		var r run
		a.json("GET", "/api/v1/runs/"+id, nil, http.StatusOK, &r)
		if r.Status != "running" || len(r.Steps) == 0 || r.Steps[0].Status != "running" {
			t.Fatalf("the refused calls changed the run: %s %+v", r.Status, r.Steps)
		}
		a.json("POST", "/api/v1/runs/"+id+":cancel", map[string]any{}, http.StatusOK, nil)
		if r := a.waitRun(id, 60*time.Second); r.Status != "cancelled" {
			t.Fatalf("run %s (%s): want cancelled by runner-1", r.Status, r.Reason)
		}
	})

	t.Run("a revoked runner token can no longer claim", func(t *testing.T) {
		rc := runnerv1.NewRunnerServiceClient(dial(t, "scheduler", intruder))
		claim := func() error {
			_, err := rc.ClaimJob(ctx, &runnerv1.ClaimJobRequest{RunnerId: "intruder", Tiers: []string{"standard"}, Wait: durationpb.New(100 * time.Millisecond)})
			return err
		}
		if err := claim(); err != nil {
			t.Fatalf("claim before the revocation: %v", err)
		}
		out, err := exec.Command(bin, "runners", "revoke", "intruder", "--server", a.base, "--token", a.token).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "runner intruder revoked") {
			t.Fatalf("simpleci runners revoke: %v: %s", err, out)
		}
		revoked := time.Now()
		eventually(t, revokeBound, "the revoked runner token refused", func() bool { return grpcstatus.Code(claim()) == codes.Unauthenticated })
		t.Logf("revoked runner token refused after %v: %v", time.Since(revoked).Round(time.Millisecond), claim())
		// Even with a grant of its own (as the scheduler would have issued it), the revoked
		// runner appends no log: the log service verifies its token as the scheduler does.
		eventually(t, revokeBound, "the revoked runner's logs refused", func() bool {
			return grpcstatus.Code(appendAs(intruder, grantOf(t, "intruder", secret))) == codes.Unauthenticated
		})
		out, err = exec.Command(bin, "runners", "list", "--server", a.base, "--token", a.token).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "runner-1") || strings.Contains(string(out), "intruder") {
			t.Fatalf("simpleci runners list: %v: %s: want runner-1 and not the revoked intruder", err, out)
		}
	})

	t.Run("a runner process refuses the internal token", func(t *testing.T) {
		cmd := exec.Command(bin, "serve", "--service", "runner", "--grpc", freeAddr(t), "--http", freeAddr(t), "--data", t.TempDir())
		cmd.Env = append(slices.Clone(c.common), "SIMPLECI_RUNNER_TOKEN=")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "a runner process must not hold the deployment's internal token") {
			t.Fatalf("runner with SIMPLECI_INTERNAL_TOKEN: %v: %s", err, out)
		}
	})

	t.Run("a runner process refuses Kafka brokers", func(t *testing.T) {
		cmd := exec.Command(bin, "serve", "--service", "runner", "--grpc", freeAddr(t), "--http", freeAddr(t), "--data", t.TempDir())
		cmd.Env = append(slices.Clone(c.runnerEnv), "SIMPLECI_RUNNER_TOKEN="+runnerToken(c, "runner-1"), "SIMPLECI_KAFKA_BROKERS=127.0.0.1:9092")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "a runner process needs no Kafka brokers") {
			t.Fatalf("runner with SIMPLECI_KAFKA_BROKERS: %v: %s", err, out)
		}
	})

	t.Run("the log holds nothing the intruder sent", func(t *testing.T) {
		if text, _ := a.logOf(id); strings.Contains(text, "intruder") {
			t.Fatalf("the run's log holds the intruder's lines:\n%s", text)
		}
	})

	t.Run("runner-1 still works", func(t *testing.T) {
		q, sha := c.project("after-identity")
		if r := a.waitRun(a.push(q, "main2", sha), 60*time.Second); r.Status != "succeeded" {
			t.Fatalf("run: %s (%s)", r.Status, r.Reason)
		}
	})
}
