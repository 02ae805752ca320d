package service_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/id"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
	"github.com/simpleci/simpleci/services/scheduler/service"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fault returns an injection that breaks the next n decisions after their events were
// appended: on PostgreSQL the server terminates the transaction's connection (as a
// crash or a failover would), on SQLite the transaction fails. Each call counts.
func (e *env) fault(n int32) *atomic.Int32 {
	var left atomic.Int32
	left.Store(n)
	service.InjectAfterAppend(e.svc, func(ctx context.Context, tx *sql.Tx) error {
		if left.Add(-1) < 0 {
			return nil
		}
		if e.db.Dialect == sqldb.Postgres {
			_, err := tx.ExecContext(ctx, `SELECT pg_terminate_backend(pg_backend_pid())`)
			if err == nil {
				err = errors.New("connection survived pg_terminate_backend")
			}
			return err
		}
		return errors.New("fault injected after the append")
	})
	return &left
}

// consistent checks the invariant a crash must not break: every run the log says is
// queued has exactly a queued job, every running one a running job under its lease, and
// no job exists for an ended or unknown run.
func (e *env) consistent() {
	e.t.Helper()
	rows, err := e.db.QueryContext(e.ctx, `SELECT DISTINCT stream_id FROM events`)
	if err != nil {
		e.t.Fatal(err)
	}
	var streams []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		streams = append(streams, s)
	}
	rows.Close()
	jobs := map[string][2]string{} // run id -> state, lease
	rows, err = e.db.QueryContext(e.ctx, `SELECT run_id, state, lease_id FROM sched_jobs`)
	if err != nil {
		e.t.Fatal(err)
	}
	for rows.Next() {
		var runID, st, lease string
		if err := rows.Scan(&runID, &st, &lease); err != nil {
			e.t.Fatal(err)
		}
		jobs[runID] = [2]string{st, lease}
	}
	rows.Close()
	for _, stream := range streams {
		runID := stream[len("run-"):]
		r := &domain.Run{}
		for _, m := range e.storedEvents(runID) {
			r.Apply(m, timestamppb.Now().AsTime())
		}
		j, ok := jobs[runID]
		delete(jobs, runID)
		switch {
		case r.Status == domain.RunQueued && (!ok || j[0] != "queued"):
			e.t.Errorf("run %s is queued in the log, job %v (exists %v)", runID, j, ok)
		case r.Status == domain.RunRunning && (!ok || j[0] != "running" || j[1] != r.LeaseID):
			e.t.Errorf("run %s is running under lease %s in the log, job %v (exists %v)", runID, r.LeaseID, j, ok)
		case r.Done() && ok:
			e.t.Errorf("run %s ended (%s) but its job %v remains", runID, r.Status, j)
		}
	}
	for runID, j := range jobs {
		e.t.Errorf("job %v of run %s that the log does not know", j, runID)
	}
}

func TestFaultAfterAppend(t *testing.T) {
	t.Run("manual trigger", func(t *testing.T) {
		e := newEnv(t)
		e.fault(1)
		if _, err := e.svc.TriggerRun(e.user("org1"), &apiv1.TriggerRunRequest{Project: "app", Ref: "main"}); err == nil {
			t.Fatal("TriggerRun succeeded through the fault")
		}
		e.consistent()
		if n := len(e.list(&apiv1.ListRunsRequest{}).GetRuns()); n != 0 {
			t.Fatalf("%d runs listed after the failed trigger", n)
		}
		r := e.trigger("main", "")
		if r.GetNumber() != 1 {
			t.Fatalf("run number after a failed trigger = %d, want 1 (nothing was taken)", r.GetNumber())
		}
		if job := e.mustClaim(); job.GetRunId() != r.GetId() {
			t.Fatalf("claimed %s, want %s", job.GetRunId(), r.GetId())
		}
		e.consistent()
	})

	t.Run("webhook", func(t *testing.T) {
		e := newEnv(t)
		e.fault(2) // the request fails twice; the bus delivers it again
		runID := id.New()
		rr := &eventsv1.RunRequested{RunId: runID, OrgId: "org1", ProjectId: "p-app", Provider: "local", Repository: e.repo.dir,
			Ref: "refs/heads/main", Branch: "main", Sha: e.repo.shas["main"], Event: "push", DeliveryId: "d-1", RequestedAt: timestamppb.Now()}
		m, err := event.Encode(id.New(), runID, rr)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.bus.Publish(e.ctx, event.TopicRunRequests, m); err != nil {
			t.Fatal(err)
		}
		job := e.mustClaim()
		if job.GetRunId() != runID {
			t.Fatalf("claimed %s, want %s", job.GetRunId(), runID)
		}
		e.consistent()
	})

	t.Run("claim", func(t *testing.T) {
		e := newEnv(t)
		r := e.trigger("main", "")
		e.fault(1)
		claim := func() (*runnerv1.ClaimJobResponse, error) {
			return e.svc.ClaimJob(e.internal(), &runnerv1.ClaimJobRequest{RunnerId: "runner-1", Tiers: []string{"standard"}, Wait: durationpb.New(wait)})
		}
		if resp, err := claim(); err == nil {
			t.Fatalf("ClaimJob through a fault = %v, want an error (the runner calls again)", resp)
		}
		e.consistent()
		if got := e.get(r.GetId()).GetStatus(); got != domain.RunQueued {
			t.Fatalf("status after a failed claim = %s, want queued", got)
		}
		resp, err := claim()
		if err != nil || resp.GetJob().GetRunId() != r.GetId() {
			t.Fatalf("ClaimJob after the fault = %v, %v; want run %s", resp, err, r.GetId())
		}
		e.consistent()
	})

	t.Run("report and finish", func(t *testing.T) {
		e := newEnv(t)
		r := e.trigger("main", "")
		job := e.mustClaim()
		e.fault(1)
		ev := id.New()
		if err := e.report(job, ev, &eventsv1.StepStarted{StepIndex: 0}); err == nil {
			t.Fatal("report succeeded through the fault")
		}
		e.consistent()
		if err := e.report(job, ev, &eventsv1.StepStarted{StepIndex: 0}); err != nil { // the runner retries
			t.Fatal(err)
		}
		e.fault(1)
		end := id.New()
		fin := &eventsv1.RunFinished{Status: domain.RunFailed, Reason: "step 1 failed"}
		if err := e.report(job, end, fin); err == nil {
			t.Fatal("end report succeeded through the fault")
		}
		e.consistent()
		if got := e.get(r.GetId()).GetStatus(); got != domain.RunRunning {
			t.Fatalf("status after a failed end report = %s, want running", got)
		}
		if err := e.report(job, end, fin); err != nil {
			t.Fatal(err)
		}
		if got := e.get(r.GetId()).GetStatus(); got != domain.RunFailed {
			t.Fatalf("status = %s, want failed", got)
		}
		e.consistent()
	})

	t.Run("cancel", func(t *testing.T) {
		e := newEnv(t)
		r := e.trigger("main", "")
		e.fault(1)
		if _, err := e.svc.CancelRun(e.user("org1"), &apiv1.CancelRunRequest{Run: r.GetId()}); err == nil {
			t.Fatal("cancel succeeded through the fault")
		}
		e.consistent()
		c, err := e.svc.CancelRun(e.user("org1"), &apiv1.CancelRunRequest{Run: r.GetId()})
		if err != nil || c.GetStatus() != domain.RunCancelled {
			t.Fatalf("cancel = %v, %v", c, err)
		}
		e.consistent()
	})
}

// TestConcurrentTriggersNumbers: run numbers are taken in one transaction with the run,
// without gaps or duplicates, however many triggers race.
func TestConcurrentTriggersNumbers(t *testing.T) {
	e := newEnv(t)
	const n = 12
	errs := make(chan error, n)
	nums := make(chan int64, n)
	for range n {
		go func() {
			r, err := e.svc.TriggerRun(e.user("org1"), &apiv1.TriggerRunRequest{Project: "app", Ref: "main"})
			errs <- err
			nums <- r.GetNumber()
		}()
	}
	seen := map[int64]bool{}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		seen[<-nums] = true
	}
	for i := int64(1); i <= n; i++ {
		if !seen[i] {
			t.Fatalf("numbers %v: %d missing", seen, i)
		}
	}
	e.consistent()
	if t.Failed() {
		t.Log(fmt.Sprint(seen))
	}
}

// TestOverdueRunTimesOut: a runner that keeps heartbeating but never ends its run past
// the run's timeout (and the grace) has the run ended timed_out by the scheduler.
func TestOverdueRunTimesOut(t *testing.T) {
	e := newEnv(t, withLease(600*time.Millisecond), func(c *service.Config) {
		c.Tiers = map[string]service.Tier{"standard": {Name: "standard", Memory: 1 << 30, Pids: 100, CPUs: 1, Timeout: time.Second}}
		c.TimeoutGrace = 200 * time.Millisecond
	})
	r := e.trigger("main", "")
	job := e.mustClaim()
	e.mustReport(job, &eventsv1.StepStarted{StepIndex: 0, StartedAt: timestamppb.Now()})
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the runner's heartbeats go on: its lease never lapses
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			e.svc.Heartbeat(e.internal(), &runnerv1.HeartbeatRequest{RunId: job.GetRunId(), LeaseId: job.GetLeaseId()})
		}
	}()
	var g *apiv1.Run
	e.eventually("the overdue run to end", func() bool {
		g = e.get(r.GetId())
		return g.GetStatus() != domain.RunRunning
	})
	if g.GetStatus() != domain.RunTimedOut || !strings.Contains(g.GetReason(), "exceeded its timeout of 1s") {
		t.Fatalf("run %s %q, want timed_out past its timeout", g.GetStatus(), g.GetReason())
	}
	e.consistent()
}
