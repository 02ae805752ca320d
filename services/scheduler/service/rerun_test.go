package service_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// runTo claims the next job and reports its steps' outcomes (succeeded, failed, skipped)
// and the run's end.
func (e *env) runTo(runStatus string, steps ...string) *runnerv1.Job {
	e.t.Helper()
	job := e.mustClaim()
	now := timestamppb.Now()
	for i, st := range steps {
		if st == "skipped" {
			e.mustReport(job, &eventsv1.StepSkipped{StepIndex: int32(i), Reason: "condition is false"})
			continue
		}
		e.mustReport(job, &eventsv1.StepStarted{StepIndex: int32(i), StartedAt: now})
		e.mustReport(job, &eventsv1.StepFinished{StepIndex: int32(i), Status: st, StartedAt: now, FinishedAt: now})
	}
	e.mustReport(job, &eventsv1.RunFinished{Status: runStatus})
	return job
}

func TestRerun(t *testing.T) {
	e := newEnv(t)
	orig := e.trigger("main", "")
	rerun := func(run string, fromFailed bool) (*apiv1.Run, error) {
		return e.svc.RerunRun(e.user("org1"), &apiv1.RerunRunRequest{Run: run, FromFailed: fromFailed})
	}
	if _, err := rerun(orig.GetId(), false); code(err) != codes.FailedPrecondition {
		t.Fatalf("re-run of a queued run: %v, want FailedPrecondition", err)
	}
	origJob := e.runTo("failed", "succeeded", "failed")

	t.Run("from the failed step", func(t *testing.T) {
		e := e.at(t)
		r, err := rerun(orig.GetId(), true)
		if err != nil {
			t.Fatalf("RerunRun: %v", err)
		}
		if r.GetId() == orig.GetId() || r.GetNumber() != orig.GetNumber()+1 || r.GetRerunOf() != orig.GetId() || r.GetRerunOfNumber() != orig.GetNumber() {
			t.Fatalf("re-run id %s number %d rerun_of %s #%d; original %s #%d", r.GetId(), r.GetNumber(), r.GetRerunOf(), r.GetRerunOfNumber(), orig.GetId(), orig.GetNumber())
		}
		if r.GetSha() != orig.GetSha() || r.GetRef() != orig.GetRef() || r.GetEvent() != orig.GetEvent() || r.GetStatus() != "queued" {
			t.Fatalf("re-run %s at %s %s %s, original at %s %s %s", r.GetStatus(), r.GetSha(), r.GetRef(), r.GetEvent(), orig.GetSha(), orig.GetRef(), orig.GetEvent())
		}
		job := e.mustClaim()
		if job.GetRunId() != r.GetId() || string(job.GetPipeline()) != string(origJob.GetPipeline()) || job.GetSha() != origJob.GetSha() ||
			job.GetContext()["run_number"] != "2" || job.GetContext()["branch"] != "main" {
			t.Fatalf("job %s at %s context %v pipeline %q", job.GetRunId(), job.GetSha(), job.GetContext(), job.GetPipeline())
		}
		want := []*eventsv1.ReusedStep{{StepIndex: 0, Status: "succeeded", Reason: "succeeded in run 1"}}
		if len(job.GetReusedSteps()) != 1 || job.GetReusedSteps()[0].String() != want[0].String() {
			t.Fatalf("reused steps %v, want %v", job.GetReusedSteps(), want)
		}
		e.mustReport(job, &eventsv1.StepSkipped{StepIndex: 0, Reason: job.GetReusedSteps()[0].GetReason()})
		now := timestamppb.Now()
		e.mustReport(job, &eventsv1.StepStarted{StepIndex: 1, StartedAt: now})
		e.mustReport(job, &eventsv1.StepFinished{StepIndex: 1, Status: "succeeded", StartedAt: now, FinishedAt: now})
		e.mustReport(job, &eventsv1.RunFinished{Status: "succeeded"})
		g := e.get(r.GetId())
		if g.GetStatus() != "succeeded" || !slices.Equal(stepStatuses(g), []string{"skipped", "succeeded"}) || g.GetSteps()[0].GetReason() != "succeeded in run 1" {
			t.Fatalf("re-run %s steps %v, step 0 reason %q", g.GetStatus(), stepStatuses(g), g.GetSteps()[0].GetReason())
		}
		if o := e.get(orig.GetId()); o.GetStatus() != "failed" || o.GetRerunOf() != "" || !slices.Equal(stepStatuses(o), []string{"succeeded", "failed"}) {
			t.Fatalf("the original changed: %s %v rerun_of %q", o.GetStatus(), stepStatuses(o), o.GetRerunOf())
		}
		// A succeeded run has no failed step.
		if _, err := rerun(r.GetId(), true); code(err) != codes.FailedPrecondition {
			t.Fatalf("from the failed step of a succeeded run: %v, want FailedPrecondition", err)
		}
	})
	t.Run("the whole run", func(t *testing.T) {
		e := e.at(t)
		r, err := rerun(orig.GetId(), false)
		if err != nil {
			t.Fatalf("RerunRun: %v", err)
		}
		job := e.mustClaim()
		if job.GetRunId() != r.GetId() || len(job.GetReusedSteps()) != 0 || r.GetNumber() != 3 || r.GetRerunOfNumber() != 1 {
			t.Fatalf("job %s (run %s #%d) reuses %v", job.GetRunId(), r.GetId(), r.GetNumber(), job.GetReusedSteps())
		}
	})
	t.Run("another organisation's run is not found", func(t *testing.T) {
		if _, err := e.svc.RerunRun(e.user("org2"), &apiv1.RerunRunRequest{Run: orig.GetId()}); code(err) != codes.NotFound {
			t.Fatalf("RerunRun from org2: %v, want NotFound", err)
		}
		if _, err := rerun("01aaaaaaaaaaaaaaaaaaaaaaaa", false); code(err) != codes.NotFound {
			t.Fatalf("RerunRun of an unknown run: %v, want NotFound", err)
		}
	})
	t.Run("a run that errored before it started", func(t *testing.T) {
		bad := e.trigger("bad", "")
		e.eventually("errored", func() bool { return e.get(bad.GetId()).GetStatus() == "errored" })
		if _, err := rerun(bad.GetId(), false); code(err) != codes.FailedPrecondition {
			t.Fatalf("re-run of a run without pipeline: %v, want FailedPrecondition", err)
		}
	})
	t.Run("the run list filters by trigger", func(t *testing.T) {
		e := e.at(t)
		ids := func(trigger string) (out []string) {
			for _, r := range e.list(&apiv1.ListRunsRequest{Project: "app", Trigger: trigger}).GetRuns() {
				out = append(out, fmt.Sprintf("#%d %s %s %d", r.GetNumber(), r.GetTrigger(), r.GetEvent(), r.GetRerunOfNumber()))
			}
			return out
		}
		want := []string{"#3 rerun manual 1", "#2 rerun manual 1"}
		e.eventually("two re-runs listed", func() bool { return slices.Equal(ids("rerun"), want) })
		e.eventually("two manual runs listed", func() bool {
			return slices.Equal(ids("manual"), []string{"#4 manual manual 0", "#1 manual manual 0"})
		})
		if _, err := e.svc.ListRuns(e.user("org1"), &apiv1.ListRunsRequest{Project: "app", Trigger: "cron"}); code(err) != codes.InvalidArgument {
			t.Fatalf("trigger=cron: %v, want InvalidArgument", err)
		}
	})
}

// inputsPipeline declares inputs (branch "inputs" of the test repository).
const inputsPipeline = `{"inputs": {"target": {"enum": ["staging", "prod"], "default": "staging"},
  "dryRun": {"type": "bool", "required": true}, "count": {"type": "number", "default": 1}},
  "steps": [{"name": "deploy", "run": "echo {{ context.inputs.target }}"}]}`

func TestTriggerInputs(t *testing.T) {
	e := newEnv(t)
	trigger := func(in map[string]string) (*apiv1.Run, error) {
		return e.svc.TriggerRun(e.user("org1"), &apiv1.TriggerRunRequest{Project: "app", Ref: "inputs", Inputs: in})
	}
	r, err := trigger(map[string]string{"target": "prod", "dryRun": "false"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"target": "prod", "dryRun": "false", "count": "1"}
	if g := e.get(r.GetId()); g.GetStatus() != "queued" || !maps.Equal(g.GetInputs(), want) {
		t.Fatalf("run %s inputs %v, want %v", g.GetStatus(), g.GetInputs(), want)
	}
	job := e.mustClaim()
	if !maps.Equal(job.GetInputs(), want) {
		t.Fatalf("job inputs %v, want %v", job.GetInputs(), want)
	}
	streams := func() int {
		var n int
		if err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(DISTINCT stream_id) FROM events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := streams()
	for _, c := range []struct {
		in   map[string]string
		want string
	}{
		{map[string]string{"dryRun": "true", "nope": "1"}, `unknown input "nope"`},
		{map[string]string{"dryRun": "yes"}, `input "dryRun" must be true or false, not "yes"`},
		{map[string]string{"dryRun": "true", "count": "many"}, `input "count" must be a number`},
		{map[string]string{"dryRun": "true", "target": "qa"}, `input "target": "qa" is not one of staging, prod`},
		{map[string]string{"target": "prod"}, `input "dryRun" is required`},
	} {
		_, err := trigger(c.in)
		if code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.want) {
			t.Errorf("inputs %v: %v, want InvalidArgument with %q", c.in, err, c.want)
		}
	}
	if _, err := e.svc.TriggerRun(e.user("org1"), &apiv1.TriggerRunRequest{Project: "app", Ref: "main", Inputs: map[string]string{"x": "1"}}); code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), "declares no inputs") {
		t.Errorf("inputs to a pipeline without: %v", err)
	}
	if after := streams(); after != before {
		t.Errorf("refused triggers recorded runs: %d runs, were %d", after, before)
	}
	// A re-run keeps the inputs.
	e.mustReport(job, &eventsv1.RunFinished{Status: "failed"})
	rr, err := e.svc.RerunRun(e.user("org1"), &apiv1.RerunRunRequest{Run: r.GetId()})
	if err != nil || !maps.Equal(rr.GetInputs(), want) {
		t.Fatalf("re-run inputs %v (%v), want %v", rr.GetInputs(), err, want)
	}
}
