package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func pb(sec int) *timestamppb.Timestamp { return timestamppb.New(at(sec)) }

func queued(steps ...string) *eventsv1.RunQueued {
	return &eventsv1.RunQueued{
		RunId: "run1", OrgId: "org1", ProjectId: "proj1", Number: 7, Tier: "standard",
		Provider: "local", Repository: "/srv/repo", Ref: "refs/heads/main", Branch: "main",
		Sha: strings.Repeat("a", 40), Event: "push", Actor: "alice", DeliveryId: "d-1",
		StepNames: steps, QueuedAt: pb(0),
	}
}

func started() *eventsv1.RunStarted {
	return &eventsv1.RunStarted{RunId: "run1", OrgId: "org1", ProjectId: "proj1", RunnerId: "runner-a", LeaseId: "lease-1", StartedAt: pb(1)}
}

func fold(evs ...proto.Message) *domain.Run {
	r := &domain.Run{}
	for _, e := range evs {
		r.Apply(e, time.Now())
	}
	return r
}

func TestFoldLifecycle(t *testing.T) {
	r := &domain.Run{}

	r.Apply(queued("build", "test", "deploy"), time.Now())
	t.Run("queued", func(t *testing.T) {
		if r.Status != domain.RunQueued || r.Done() {
			t.Fatalf("status %q done %v, want queued and not done", r.Status, r.Done())
		}
		if r.ID != "run1" || r.OrgID != "org1" || r.ProjectID != "proj1" || r.Number != 7 || r.Tier != "standard" ||
			r.Provider != "local" || r.Repository != "/srv/repo" || r.Ref != "refs/heads/main" || r.Branch != "main" ||
			r.SHA != strings.Repeat("a", 40) || r.Event != "push" || r.Actor != "alice" || r.DeliveryID != "d-1" {
			t.Fatalf("identity not copied from RunQueued: %+v", r)
		}
		if !r.Created.Equal(at(0)) || !r.Started.IsZero() || !r.Finished.IsZero() {
			t.Fatalf("times: created %v started %v finished %v", r.Created, r.Started, r.Finished)
		}
		if r.Queued == nil || r.Version != 1 {
			t.Fatalf("queued event kept: %v, version %d", r.Queued != nil, r.Version)
		}
		if len(r.Steps) != 3 {
			t.Fatalf("steps: %+v", r.Steps)
		}
		for i, n := range []string{"build", "test", "deploy"} {
			s := r.Steps[i]
			if s.Index != int32(i) || s.Name != n || s.Status != domain.StepPending {
				t.Fatalf("step %d: %+v", i, s)
			}
		}
	})

	r.Apply(started(), time.Now())
	t.Run("started", func(t *testing.T) {
		if r.Status != domain.RunRunning || !r.Started.Equal(at(1)) || r.LeaseID != "lease-1" || r.RunnerID != "runner-a" {
			t.Fatalf("after RunStarted: status %q started %v lease %q runner %q", r.Status, r.Started, r.LeaseID, r.RunnerID)
		}
		if r.Version != 2 || r.Done() {
			t.Fatalf("version %d done %v", r.Version, r.Done())
		}
	})

	r.Apply(&eventsv1.StepStarted{StepIndex: 0, StepName: "build", StartedAt: pb(2)}, time.Now())
	r.Apply(&eventsv1.StepFinished{StepIndex: 0, Status: "succeeded", ExitCode: 0, StartedAt: pb(2), FinishedAt: pb(5)}, time.Now())
	r.Apply(&eventsv1.StepSkipped{StepIndex: 1, Reason: "condition is false", At: pb(5)}, time.Now())
	r.Apply(&eventsv1.StepStarted{StepIndex: 2, StartedAt: pb(6)}, time.Now())
	t.Run("steps", func(t *testing.T) {
		want := []domain.Step{
			{Index: 0, Name: "build", Status: "succeeded", Started: at(2), Finished: at(5)},
			{Index: 1, Name: "test", Status: domain.StepSkipped, Reason: "condition is false"},
			{Index: 2, Name: "deploy", Status: domain.StepRunning, Started: at(6)},
		}
		checkSteps(t, r.Steps, want)
		if r.Status != domain.RunRunning || r.Version != 6 {
			t.Fatalf("status %q version %d", r.Status, r.Version)
		}
	})

	r.Apply(&eventsv1.RunFinished{RunId: "run1", Status: domain.RunFailed, Reason: "step deploy failed", FinishedAt: pb(9), LastLogSequence: 12}, time.Now())
	t.Run("finished", func(t *testing.T) {
		if r.Status != domain.RunFailed || r.Reason != "step deploy failed" || !r.Finished.Equal(at(9)) || !r.Done() {
			t.Fatalf("after RunFinished: status %q reason %q finished %v done %v", r.Status, r.Reason, r.Finished, r.Done())
		}
		want := []domain.Step{
			{Index: 0, Name: "build", Status: "succeeded", Started: at(2), Finished: at(5)},
			{Index: 1, Name: "test", Status: domain.StepSkipped, Reason: "condition is false"},
			{Index: 2, Name: "deploy", Status: domain.RunFailed, Reason: "step deploy failed", Started: at(6), Finished: at(9)},
		}
		checkSteps(t, r.Steps, want)
		if r.Version != 7 {
			t.Fatalf("version %d, want 7", r.Version)
		}
		// The identity of the run is not overwritten by RunFinished.
		if r.ID != "run1" || r.OrgID != "org1" || r.ProjectID != "proj1" {
			t.Fatalf("identity changed: %q %q %q", r.ID, r.OrgID, r.ProjectID)
		}
	})
}

func checkSteps(t *testing.T, got, want []domain.Step) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d steps, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Index != w.Index || g.Name != w.Name || g.Status != w.Status || g.ExitCode != w.ExitCode || g.Reason != w.Reason ||
			!g.Started.Equal(w.Started) || !g.Finished.Equal(w.Finished) {
			t.Errorf("step %d:\n got  %+v\n want %+v", i, g, w)
		}
	}
}

func TestRunFinishedEndsSteps(t *testing.T) {
	tests := []struct {
		runStatus, reason string
		wantRunning       string // what the step that was running becomes
	}{
		{domain.RunFailed, "exit 1", domain.RunFailed},
		{domain.RunErrored, "checkout failed", domain.RunFailed},
		{domain.RunTimedOut, "job timeout 150s", domain.RunTimedOut},
		{domain.RunCancelled, "cancelled by alice", domain.RunCancelled},
		{domain.RunSucceeded, "", domain.RunSucceeded},
	}
	for _, tt := range tests {
		t.Run(tt.runStatus, func(t *testing.T) {
			r := fold(queued("a", "b", "c", "d"), started(),
				&eventsv1.StepStarted{StepIndex: 0, StartedAt: pb(2)},
				&eventsv1.StepFinished{StepIndex: 0, Status: "failed", ExitCode: 3, Reason: "exit status 3", FinishedAt: pb(3)},
				&eventsv1.StepSkipped{StepIndex: 1, Reason: "condition false"},
				&eventsv1.StepStarted{StepIndex: 2, StartedAt: pb(4)},
				&eventsv1.RunFinished{Status: tt.runStatus, Reason: tt.reason, FinishedAt: pb(8)},
			)
			want := []domain.Step{
				// finished and skipped steps keep what they had
				{Index: 0, Name: "a", Status: "failed", ExitCode: 3, Reason: "exit status 3", Started: at(2), Finished: at(3)},
				{Index: 1, Name: "b", Status: domain.StepSkipped, Reason: "condition false"},
				// the running step ends with the run
				{Index: 2, Name: "c", Status: tt.wantRunning, Reason: tt.reason, Started: at(4), Finished: at(8)},
				// a pending step never ran
				{Index: 3, Name: "d", Status: domain.StepSkipped, Reason: "run ended: " + tt.runStatus},
			}
			checkSteps(t, r.Steps, want)
			if r.Status != tt.runStatus || r.Reason != tt.reason || !r.Finished.Equal(at(8)) || !r.Done() {
				t.Fatalf("run: status %q reason %q finished %v", r.Status, r.Reason, r.Finished)
			}
		})
	}
}

func TestApplyEdgeCases(t *testing.T) {
	t.Run("StepFinished without StepStarted takes its start time", func(t *testing.T) {
		r := fold(queued("a"), started(), &eventsv1.StepFinished{StepIndex: 0, Status: "succeeded", StartedAt: pb(2), FinishedAt: pb(3)})
		checkSteps(t, r.Steps, []domain.Step{{Index: 0, Name: "a", Status: "succeeded", Started: at(2), Finished: at(3)}})
	})
	t.Run("StepFinished keeps the StepStarted time", func(t *testing.T) {
		r := fold(queued("a"), started(), &eventsv1.StepStarted{StepIndex: 0, StartedAt: pb(2)},
			&eventsv1.StepFinished{StepIndex: 0, Status: "timed_out", ExitCode: -1, Reason: "step timeout", StartedAt: pb(99), FinishedAt: pb(4)})
		checkSteps(t, r.Steps, []domain.Step{{Index: 0, Name: "a", Status: "timed_out", ExitCode: -1, Reason: "step timeout", Started: at(2), Finished: at(4)}})
	})
	t.Run("out-of-range step events are ignored but counted", func(t *testing.T) {
		r := fold(queued("a"), started(),
			&eventsv1.StepStarted{StepIndex: 1}, &eventsv1.StepSkipped{StepIndex: -1}, &eventsv1.StepFinished{StepIndex: 5, Status: "failed"})
		checkSteps(t, r.Steps, []domain.Step{{Index: 0, Name: "a", Status: domain.StepPending}})
		if r.Version != 5 {
			t.Fatalf("version %d, want 5", r.Version)
		}
	})
	t.Run("errored before start", func(t *testing.T) {
		// What the scheduler records for an invalid pipeline: RunQueued without steps, then RunFinished.
		r := fold(queued(), &eventsv1.RunFinished{RunId: "run1", OrgId: "org1", ProjectId: "proj1", Status: domain.RunErrored,
			Reason: "invalid pipeline: .simpleci/pipeline.json:1:1: empty file", FinishedAt: pb(1)})
		if r.Status != domain.RunErrored || !r.Done() || len(r.Steps) != 0 || !r.Started.IsZero() || !r.Finished.Equal(at(1)) {
			t.Fatalf("errored run: %+v", r)
		}
	})
	t.Run("RunFinished alone names the run", func(t *testing.T) {
		r := fold(&eventsv1.RunFinished{RunId: "r9", OrgId: "o9", ProjectId: "p9", Status: domain.RunErrored, FinishedAt: pb(1)})
		if r.ID != "r9" || r.OrgID != "o9" || r.ProjectID != "p9" || r.Status != domain.RunErrored || r.Version != 1 {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("events the run does not fold only bump the version", func(t *testing.T) {
		r := fold(queued("a"), &eventsv1.LogEmitted{RunId: "run1", Sequence: 1})
		if r.Status != domain.RunQueued || r.Version != 2 {
			t.Fatalf("status %q version %d", r.Status, r.Version)
		}
	})
}

func TestDone(t *testing.T) {
	for _, tt := range []struct {
		status string
		done   bool
	}{
		{"", false},
		{domain.RunQueued, false},
		{domain.RunRunning, false},
		{domain.RunSucceeded, true},
		{domain.RunFailed, true},
		{domain.RunCancelled, true},
		{domain.RunTimedOut, true},
		{domain.RunErrored, true},
		{"bogus", false},
	} {
		t.Run(tt.status, func(t *testing.T) {
			r := &domain.Run{Status: tt.status}
			if got := r.Done(); got != tt.done {
				t.Fatalf("Done() = %v, want %v", got, tt.done)
			}
		})
	}
}

func TestCheckReport(t *testing.T) {
	running := func() *domain.Run { return fold(queued("a", "b"), started()) }
	tests := []struct {
		name    string
		run     func() *domain.Run
		ev      proto.Message
		wantErr string // "" means allowed
	}{
		{"step started", running, &eventsv1.StepStarted{StepIndex: 0}, ""},
		{"step skipped last", running, &eventsv1.StepSkipped{StepIndex: 1}, ""},
		{"step finished", running, &eventsv1.StepFinished{StepIndex: 1, Status: "succeeded"}, ""},
		{"run finished", running, &eventsv1.RunFinished{Status: domain.RunSucceeded}, ""},
		{"isolation", running, &eventsv1.RunIsolation{Isolation: "isolation: weak"}, ""},
		{"isolation of a queued run", func() *domain.Run { return fold(queued("a")) }, &eventsv1.RunIsolation{}, "not running"},
		{"step started index too big", running, &eventsv1.StepStarted{StepIndex: 2}, "no step 2"},
		{"step skipped negative index", running, &eventsv1.StepSkipped{StepIndex: -1}, "no step -1"},
		{"step finished index too big", running, &eventsv1.StepFinished{StepIndex: 99}, "no step 99"},
		{"unexpected event", running, &eventsv1.RunStarted{}, "unexpected report"},
		{"queued run", func() *domain.Run { return fold(queued("a")) }, &eventsv1.StepStarted{StepIndex: 0}, "not running"},
		{"queued run finish", func() *domain.Run { return fold(queued("a")) }, &eventsv1.RunFinished{Status: domain.RunFailed}, "not running"},
		{"empty run", func() *domain.Run { return &domain.Run{} }, &eventsv1.StepStarted{}, "not running"},
		{"finished run", func() *domain.Run {
			return fold(queued("a"), started(), &eventsv1.RunFinished{Status: domain.RunSucceeded})
		}, &eventsv1.StepFinished{StepIndex: 0}, "already succeeded"},
		{"finished run finish again", func() *domain.Run {
			return fold(queued("a"), started(), &eventsv1.RunFinished{Status: domain.RunFailed})
		}, &eventsv1.RunFinished{Status: domain.RunSucceeded}, "already failed"},
		{"errored run", func() *domain.Run {
			return fold(queued(), &eventsv1.RunFinished{Status: domain.RunErrored})
		}, &eventsv1.StepStarted{StepIndex: 0}, "already errored"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.run()
			before := *r
			err := r.CheckReport(tt.ev)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckReport: %v, want nil", err)
				}
			} else {
				if !errors.Is(err, domain.ErrTransition) {
					t.Fatalf("CheckReport: %v, want ErrTransition", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("CheckReport: %q, want it to mention %q", err, tt.wantErr)
				}
			}
			if r.Version != before.Version || r.Status != before.Status {
				t.Fatalf("CheckReport changed the run: %+v", r)
			}
		})
	}
}

// TestIsolationFold: the runner's isolation line is kept for the current
// attempt; a requeued run forgets it until its next runner reports one.
func TestIsolationFold(t *testing.T) {
	r := fold(queued("a"), started(), &eventsv1.RunIsolation{Isolation: "isolation: cgroup=v1 memory"})
	if r.Isolation != "isolation: cgroup=v1 memory" || r.Status != domain.RunRunning || r.Version != 3 {
		t.Fatalf("isolation %q status %q version %d", r.Isolation, r.Status, r.Version)
	}
	r.Apply(&eventsv1.RunRequeued{Attempt: 2}, time.Now())
	if r.Isolation != "" {
		t.Fatalf("a requeued run keeps the lost runner's isolation %q", r.Isolation)
	}
	r.Apply(started(), time.Now())
	r.Apply(&eventsv1.RunIsolation{Isolation: "isolation: weak (runs as the runner's user): ..."}, time.Now())
	r.Apply(&eventsv1.RunFinished{Status: domain.RunSucceeded}, time.Now())
	if r.Isolation != "isolation: weak (runs as the runner's user): ..." {
		t.Fatalf("isolation %q after the second attempt", r.Isolation)
	}
}

func TestStreamID(t *testing.T) {
	if got := domain.StreamID("01abc"); got != "run-01abc" {
		t.Fatalf("StreamID = %q", got)
	}
}
