package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
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

func TestObserve(t *testing.T) {
	running := func() *domain.Run { return fold(queued("a", "b", "c"), started()) }
	at := func(evs ...proto.Message) func() *domain.Run {
		return func() *domain.Run { return fold(append([]proto.Message{queued("a", "b", "c"), started()}, evs...)...) }
	}
	tests := []struct {
		name    string
		run     func() *domain.Run
		lease   string
		ev      proto.Message
		wantErr error // nil means allowed
		wantMsg string
	}{
		{"first step started", running, "lease-1", &eventsv1.StepStarted{StepIndex: 0}, nil, ""},
		{"first step skipped", running, "lease-1", &eventsv1.StepSkipped{StepIndex: 0}, nil, ""},
		{"running step finished", at(&eventsv1.StepStarted{StepIndex: 0}), "lease-1", &eventsv1.StepFinished{StepIndex: 0, Status: "succeeded"}, nil, ""},
		{"next step after a skip", at(&eventsv1.StepSkipped{StepIndex: 0}), "lease-1", &eventsv1.StepStarted{StepIndex: 1}, nil, ""},
		{"isolation", running, "lease-1", &eventsv1.RunIsolation{Isolation: "isolation: weak"}, nil, ""},
		{"step out of order", running, "lease-1", &eventsv1.StepStarted{StepIndex: 1}, domain.ErrTransition, "before step 0"},
		{"step while another runs", at(&eventsv1.StepStarted{StepIndex: 0}), "lease-1", &eventsv1.StepSkipped{StepIndex: 1}, domain.ErrTransition, "before step 0 (running) ended"},
		{"step started twice", at(&eventsv1.StepStarted{StepIndex: 0}), "lease-1", &eventsv1.StepStarted{StepIndex: 0}, domain.ErrTransition, "already running"},
		{"finished without start", running, "lease-1", &eventsv1.StepFinished{StepIndex: 0}, domain.ErrTransition, "not running"},
		{"finished twice", at(&eventsv1.StepStarted{StepIndex: 0}, &eventsv1.StepFinished{StepIndex: 0, Status: "succeeded"}), "lease-1",
			&eventsv1.StepFinished{StepIndex: 0}, domain.ErrTransition, "not running"},
		{"step index too big", running, "lease-1", &eventsv1.StepStarted{StepIndex: 3}, domain.ErrTransition, "no step 3"},
		{"negative index", running, "lease-1", &eventsv1.StepSkipped{StepIndex: -1}, domain.ErrTransition, "no step -1"},
		{"finish index too big", running, "lease-1", &eventsv1.StepFinished{StepIndex: 99}, domain.ErrTransition, "no step 99"},
		{"unexpected event", running, "lease-1", &eventsv1.RunStarted{}, domain.ErrInvalid, "unexpected report"},
		{"another lease", running, "lease-2", &eventsv1.StepStarted{StepIndex: 0}, domain.ErrLeaseLost, "lease-2"},
		{"no lease", running, "", &eventsv1.StepStarted{StepIndex: 0}, domain.ErrLeaseLost, ""},
		{"queued run", func() *domain.Run { return fold(queued("a")) }, "lease-1", &eventsv1.StepStarted{StepIndex: 0}, domain.ErrLeaseLost, "queued"},
		{"empty run", func() *domain.Run { return &domain.Run{} }, "lease-1", &eventsv1.StepStarted{}, domain.ErrNotFound, ""},
		{"finished run", func() *domain.Run {
			return fold(queued("a"), started(), &eventsv1.RunFinished{Status: domain.RunSucceeded})
		}, "lease-1", &eventsv1.StepFinished{StepIndex: 0}, domain.ErrLeaseLost, "succeeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.run()
			before := *r
			err := r.Observe(tt.lease, tt.ev)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Observe: %v, want nil", err)
				}
			} else {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Observe: %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("Observe: %q, want it to mention %q", err, tt.wantMsg)
				}
			}
			if r.Version != before.Version || r.Status != before.Status {
				t.Fatalf("Observe changed the run: %+v", r)
			}
		})
	}
}

func TestObserveStampsIdentity(t *testing.T) {
	r := fold(queued("a"), started())
	ev := &eventsv1.StepStarted{RunId: "other", OrgId: "other-org", ProjectId: "other-project", StepIndex: 0}
	if err := r.Observe("lease-1", ev); err != nil {
		t.Fatal(err)
	}
	if ev.RunId != "run1" || ev.OrgId != "org1" || ev.ProjectId != "proj1" {
		t.Fatalf("identity not stamped: %+v", ev)
	}
}

func TestStart(t *testing.T) {
	r := fold(queued("a"))
	ev, err := r.Start("runner-b", "lease-9", at(3))
	if err != nil || ev.LeaseId != "lease-9" || ev.RunnerId != "runner-b" || ev.RunId != "run1" {
		t.Fatalf("Start = %+v, %v", ev, err)
	}
	for name, r := range map[string]*domain.Run{
		"running":   fold(queued("a"), started()),
		"finished":  fold(queued("a"), &eventsv1.RunFinished{Status: domain.RunErrored}),
		"cancelled": fold(queued("a"), &eventsv1.RunCancelRequested{}),
	} {
		if _, err := r.Start("runner-b", "lease-9", at(3)); !errors.Is(err, domain.ErrTransition) {
			t.Errorf("Start of a %s run: %v, want ErrTransition", name, err)
		}
	}
	if _, err := (&domain.Run{}).Start("r", "l", at(3)); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Start of no run: %v, want ErrNotFound", err)
	}
}

func TestFinish(t *testing.T) {
	running := fold(queued("a"), started())
	ev, err := running.Finish("lease-1", domain.RunSucceeded, "", 12, at(9))
	if err != nil || ev.Status != domain.RunSucceeded || ev.LastLogSequence != 12 || ev.Attempt != 1 {
		t.Fatalf("Finish = %+v, %v", ev, err)
	}
	if _, err := running.Finish("lease-2", domain.RunSucceeded, "", 0, at(9)); !errors.Is(err, domain.ErrLeaseLost) {
		t.Errorf("Finish under another lease: %v, want ErrLeaseLost", err)
	}
	if _, err := running.Finish("lease-1", domain.RunRunning, "", 0, at(9)); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("Finish with a status that is not final: %v, want ErrInvalid", err)
	}
	if ev, err := running.Finish("", domain.RunFailed, "runner lost", 0, at(9)); err != nil || ev == nil {
		t.Errorf("Finish by the scheduler: %v, %v", ev, err)
	}
	done := fold(queued("a"), started(), &eventsv1.RunFinished{Status: domain.RunSucceeded})
	if ev, err := done.Finish("lease-1", domain.RunSucceeded, "", 0, at(9)); ev != nil || err != nil {
		t.Errorf("a retried end report = %v, %v; want nothing recorded, no error", ev, err)
	}
	if _, err := done.Finish("lease-2", domain.RunSucceeded, "", 0, at(9)); !errors.Is(err, domain.ErrLeaseLost) {
		t.Errorf("an end report of another lease after the end: %v, want ErrLeaseLost", err)
	}
	if _, err := fold(queued("a")).Finish("lease-1", domain.RunSucceeded, "", 0, at(9)); !errors.Is(err, domain.ErrLeaseLost) {
		t.Errorf("Finish of a queued run by a runner: %v, want ErrLeaseLost", err)
	}
}

func TestCancel(t *testing.T) {
	evs, err := fold(queued("a")).Cancel("alice", at(2))
	if err != nil || len(evs) != 2 {
		t.Fatalf("Cancel of a queued run = %v, %v; want a request and the end", evs, err)
	}
	if f := evs[1].(*eventsv1.RunFinished); f.Status != domain.RunCancelled || !strings.Contains(f.Reason, "alice") {
		t.Fatalf("end = %+v", f)
	}
	evs, err = fold(queued("a"), started()).Cancel("alice", at(2))
	if err != nil || len(evs) != 1 {
		t.Fatalf("Cancel of a running run = %v, %v; want only the request", evs, err)
	}
	for name, r := range map[string]*domain.Run{
		"already requested": fold(queued("a"), started(), &eventsv1.RunCancelRequested{}),
		"finished":          fold(queued("a"), &eventsv1.RunFinished{Status: domain.RunErrored}),
	} {
		if evs, err := r.Cancel("bob", at(3)); evs != nil || err != nil {
			t.Errorf("Cancel of a %s run = %v, %v; want nothing", name, evs, err)
		}
	}
	if _, err := (&domain.Run{}).Cancel("bob", at(3)); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Cancel of no run: %v", err)
	}
}

func TestLoseRunner(t *testing.T) {
	running := fold(queued("a"), started())
	if ev := running.LoseRunner("lease-other", 1, 30*time.Second, at(40)); ev != nil {
		t.Fatalf("another lease lapsed: %v, want nothing", ev)
	}
	rq, ok := running.LoseRunner("lease-1", 1, 30*time.Second, at(40)).(*eventsv1.RunRequeued)
	if !ok || rq.Attempt != 2 || !strings.Contains(rq.Reason, "runner lost") {
		t.Fatalf("first loss = %v, want RunRequeued attempt 2", rq)
	}
	again := fold(queued("a"), started(), rq, &eventsv1.RunStarted{LeaseId: "lease-2", StartedAt: pb(50)})
	f, ok := again.LoseRunner("lease-2", 1, 30*time.Second, at(90)).(*eventsv1.RunFinished)
	if !ok || f.Status != domain.RunFailed || !strings.HasPrefix(f.Reason, "runner lost") || f.Attempt != 2 {
		t.Fatalf("second loss = %v, want failed: runner lost", f)
	}
	cancelling := fold(queued("a"), started(), &eventsv1.RunCancelRequested{})
	if f, ok := cancelling.LoseRunner("lease-1", 1, 30*time.Second, at(40)).(*eventsv1.RunFinished); !ok || f.Status != domain.RunCancelled {
		t.Fatalf("loss while cancelling = %v, want cancelled", f)
	}
	if ev := fold(queued("a")).LoseRunner("", 1, 30*time.Second, at(40)); ev != nil {
		t.Fatalf("queued run: %v, want nothing", ev)
	}
	// A hand-back (the runner had to stop) does not use up the lost-runner retries.
	handed := fold(queued("a"), started(), &eventsv1.RunRequeued{Attempt: 2, HandedBack: true},
		&eventsv1.RunStarted{LeaseId: "lease-2", StartedAt: pb(50)})
	if rq, ok := handed.LoseRunner("lease-2", 1, 30*time.Second, at(90)).(*eventsv1.RunRequeued); !ok || rq.Attempt != 3 {
		t.Fatalf("loss after a hand-back = %v, want RunRequeued attempt 3", rq)
	}
}

func TestHas(t *testing.T) {
	r := &domain.Run{}
	r.ApplyEvent("e1", queued("a"), time.Now())
	if !r.Has("e1") || r.Has("e2") {
		t.Fatalf("Has(e1) = %v, Has(e2) = %v", r.Has("e1"), r.Has("e2"))
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

func TestExpire(t *testing.T) {
	q := queued("a")
	q.Timeout = durationpb.New(10 * time.Second)
	r := fold(q, started()) // started at t0+1s
	if ev := r.Expire("lease-1", 5*time.Second, at(15)); ev != nil {
		t.Fatalf("before timeout+grace: %v, want nothing", ev)
	}
	if ev := r.Expire("lease-other", 5*time.Second, at(17)); ev != nil {
		t.Fatalf("another lease: %v, want nothing", ev)
	}
	f, ok := r.Expire("lease-1", 5*time.Second, at(17)).(*eventsv1.RunFinished)
	if !ok || f.Status != domain.RunTimedOut || !strings.Contains(f.Reason, "timeout of 10s") {
		t.Fatalf("past timeout+grace: %v, want timed_out", f)
	}
	if ev := fold(queued("a"), started()).Expire("lease-1", 0, at(1000)); ev != nil {
		t.Fatalf("a run without a timeout: %v, want nothing", ev)
	}
}

func TestCheckHolder(t *testing.T) {
	running := fold(queued("a"), started()) // runner-a, lease-1
	for _, tt := range []struct {
		runner, lease string
		want          error
	}{
		{"runner-a", "lease-1", nil},
		{"runner-2", "lease-1", domain.ErrNotHolder},
		// Another lease is not the holder check's business: the commands refuse it
		// (ErrLeaseLost), as before.
		{"runner-2", "lease-other", nil},
		{"runner-2", "", nil},
		{"", "", nil}, // the scheduler's own decisions
	} {
		if err := running.CheckHolder(tt.runner, tt.lease); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("CheckHolder(%q, %q) = %v, want %v", tt.runner, tt.lease, err, tt.want)
		}
	}
}

// Waiting is when the current attempt joined the queue: the run's queuing, then each
// requeue's time (the queue wait per attempt is measured from it).
func TestWaitingPerAttempt(t *testing.T) {
	r := fold(queued("a"))
	if !r.Waiting.Equal(pb(0).AsTime()) {
		t.Fatalf("first attempt waits since %v, want the queuing %v", r.Waiting, pb(0).AsTime())
	}
	r = fold(queued("a"), started(), &eventsv1.RunRequeued{RunId: "run1", Attempt: 2, At: pb(5)}, started())
	if !r.Waiting.Equal(pb(5).AsTime()) {
		t.Fatalf("second attempt waits since %v, want the requeue %v", r.Waiting, pb(5).AsTime())
	}
}

func TestRerun(t *testing.T) {
	q := queued("lint", "build", "test", "report")
	q.PipelineSha256, q.Trust, q.Context = strings.Repeat("b", 64), eventsv1.Trust_TRUST_FORK, map[string]string{"k": "v"}
	step := func(i int32, st string, code int32) *eventsv1.StepFinished {
		return &eventsv1.StepFinished{StepIndex: i, Status: st, ExitCode: code, StartedAt: pb(2), FinishedAt: pb(3)}
	}
	timedOut := fold(q, started(), &eventsv1.StepSkipped{StepIndex: 0, Reason: "condition is false"},
		&eventsv1.StepStarted{StepIndex: 1}, step(1, "succeeded", 0), &eventsv1.StepStarted{StepIndex: 2}, step(2, "timed_out", -1),
		&eventsv1.RunFinished{Status: domain.RunTimedOut, FinishedAt: pb(4)})
	got, err := timedOut.Rerun("run2", "bob", true, at(10))
	if err != nil {
		t.Fatal(err)
	}
	if got.RunId != "run2" || got.Number != 0 || got.Actor != "bob" || got.DeliveryId != "" || got.RerunOf != "run1" || got.RerunOfNumber != 7 ||
		got.Sha != q.Sha || got.PipelineSha256 != q.PipelineSha256 || got.Trust != eventsv1.Trust_TRUST_FORK || got.Context["k"] != "v" || !got.QueuedAt.AsTime().Equal(at(10)) {
		t.Fatalf("re-run queued %v", got)
	}
	want := []*eventsv1.ReusedStep{{StepIndex: 0, Status: "skipped", ExitCode: -1, Reason: "skipped in run 7"}, {StepIndex: 1, Status: "succeeded", Reason: "succeeded in run 7"}}
	if len(got.ReusedSteps) != len(want) || !proto.Equal(got.ReusedSteps[0], want[0]) || !proto.Equal(got.ReusedSteps[1], want[1]) {
		t.Fatalf("reused %v, want %v", got.ReusedSteps, want)
	}
	if q.RunId != "run1" || timedOut.Queued.RerunOf != "" {
		t.Fatal("Rerun changed the original's RunQueued")
	}
	whole, err := timedOut.Rerun("run3", "bob", false, at(10))
	if err != nil || len(whole.ReusedSteps) != 0 || whole.RerunOf != "run1" {
		t.Fatalf("whole re-run: %v %v", whole, err)
	}
	for name, c := range map[string]struct {
		r          *domain.Run
		fromFailed bool
		want       error
	}{
		"unknown run":                   {&domain.Run{ID: "x"}, false, domain.ErrNotFound},
		"running run":                   {fold(q, started()), false, domain.ErrTransition},
		"succeeded from failed":         {fold(q, started(), &eventsv1.RunFinished{Status: domain.RunSucceeded}), true, domain.ErrTransition},
		"errored without a failed step": {fold(q, started(), &eventsv1.RunFinished{Status: domain.RunErrored}), true, domain.ErrTransition},
		"errored before it started":     {fold(queued(), &eventsv1.RunFinished{Status: domain.RunErrored, Reason: "invalid pipeline"}), false, domain.ErrTransition},
	} {
		if _, err := c.r.Rerun("n", "bob", c.fromFailed, at(10)); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestExpireQueue(t *testing.T) {
	r := fold(queued("a"))
	if ev := r.ExpireQueue(time.Minute, "no runner", pb(0).AsTime().Add(59*time.Second)); ev != nil {
		t.Fatalf("before the limit: %v", ev)
	}
	ev, ok := r.ExpireQueue(time.Minute, "no runner", pb(0).AsTime().Add(time.Minute)).(*eventsv1.RunFinished)
	if !ok || ev.Status != domain.RunErrored || ev.Reason != "queued for more than 1m0s without starting (no runner)" {
		t.Fatalf("at the limit: %v", ev)
	}
	if ev := fold(queued("a"), started()).ExpireQueue(time.Minute, "", pb(0).AsTime().Add(time.Hour)); ev != nil {
		t.Fatalf("a running run: %v", ev)
	}
	// A requeued run's wait starts again at the requeue.
	re := fold(queued("a"), started(), &eventsv1.RunRequeued{RunId: "run1", Attempt: 2, At: pb(100)})
	if ev := re.ExpireQueue(time.Minute, "", pb(100).AsTime().Add(30*time.Second)); ev != nil {
		t.Fatalf("30 s after the requeue: %v", ev)
	}
}
