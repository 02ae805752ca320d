package service_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/id"
	"github.com/simpleci/simpleci/services/scheduler/service"
	"google.golang.org/protobuf/types/known/durationpb"

	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// concurrencyPipeline groups the runs of a branch under the key deploy-<branch>, limit 1
// (branches "concq" and, with cancelInProgress, "concc" of the test repository).
func concurrencyPipeline(cancel bool) string {
	return fmt.Sprintf(`{"concurrency": {"key": "deploy-{{ context.branch }}", "cancelInProgress": %t},
  "steps": [{"name": "deploy", "run": "true"}]}`, cancel)
}

// finishJob ends a claimed job with status as its runner would.
func (e *env) finishJob(job *runnerv1.Job, st string) {
	e.t.Helper()
	e.mustReport(job, &eventsv1.RunFinished{Status: st, Reason: st, FinishedAt: timestamppb.Now()})
}

// cancelRequested reports whether a cancel of run was recorded.
func cancelRequested(e *env, runID string) bool {
	for _, m := range e.storedEvents(runID) {
		if _, ok := m.(*eventsv1.RunCancelRequested); ok {
			return true
		}
	}
	return false
}

// TestConcurrencyKeyQueues: runs of one key (limit 1) run one at a time in the order
// they were created, a later one never overtaking an earlier one however many runners
// ask, and each waiting run names the run holding the key.
func TestConcurrencyKeyQueues(t *testing.T) {
	e := newEnv(t)
	a, b, c := e.trigger("concq", ""), e.trigger("concq", ""), e.trigger("concq", "")
	other := e.trigger("main", "") // no key: not held by the key's runs
	ja := e.mustClaim()
	if ja.GetRunId() != a.GetId() {
		t.Fatalf("first claim took %s, want the oldest run %s", ja.GetRunId(), a.GetId())
	}
	if jo := e.mustClaim(); jo.GetRunId() != other.GetId() {
		t.Fatalf("second claim took %s, want the run without a key %s", jo.GetRunId(), other.GetId())
	}
	if j := e.claim(50*time.Millisecond, "standard"); j != nil {
		t.Fatalf("a runner took run %s while run %d holds the key", j.GetRunId(), a.GetNumber())
	}
	wantB := fmt.Sprintf(`waiting for concurrency key "deploy-concq" (limit 1): held by run %d`, a.GetNumber())
	if got := e.get(b.GetId()); got.GetStatus() != "queued" || got.GetReason() != wantB {
		t.Fatalf("run %d: %s %q, want queued %q", b.GetNumber(), got.GetStatus(), got.GetReason(), wantB)
	}
	wantC := fmt.Sprintf(`held by run %d; run %d waits before it`, a.GetNumber(), b.GetNumber())
	if got := e.get(c.GetId()).GetReason(); !strings.HasSuffix(got, wantC) {
		t.Fatalf("run %d: reason %q, want ...%q", c.GetNumber(), got, wantC)
	}
	e.finishJob(ja, "succeeded")
	jb := e.mustClaim()
	if jb.GetRunId() != b.GetId() {
		t.Fatalf("after run %d ended the claim took %s, want run %d", a.GetNumber(), jb.GetRunId(), b.GetNumber())
	}
	if got := e.get(c.GetId()).GetReason(); !strings.Contains(got, fmt.Sprintf("held by run %d", b.GetNumber())) {
		t.Fatalf("run %d: reason %q", c.GetNumber(), got)
	}
	// A cancelled run holds the key until its runner stopped it.
	if _, err := e.svc.CancelRun(e.user("org1"), &apiv1.CancelRunRequest{Run: b.GetId()}); err != nil {
		t.Fatal(err)
	}
	if j := e.claim(50*time.Millisecond, "standard"); j != nil {
		t.Fatalf("a runner took run %s while cancelled run %d still runs", j.GetRunId(), b.GetNumber())
	}
	e.finishJob(jb, "cancelled")
	if jc := e.mustClaim(); jc.GetRunId() != c.GetId() {
		t.Fatalf("the last claim took %s, want run %d", jc.GetRunId(), c.GetNumber())
	}
}

// TestConcurrencyCancelInProgress: a new run of a key with cancelInProgress cancels the
// older runs of the key, running or queued, each with reason "superseded by run N", and
// starts once the running one stopped.
func TestConcurrencyCancelInProgress(t *testing.T) {
	e := newEnv(t)
	x := e.trigger("concc", "")
	jx := e.mustClaim()
	y := e.trigger("concc", "")
	e.eventually("the running run is asked to stop", func() bool { return cancelRequested(e, jx.GetRunId()) })
	if got := e.get(y.GetId()).GetReason(); !strings.Contains(got, fmt.Sprintf("held by run %d", x.GetNumber())) {
		t.Fatalf("run %d: reason %q", y.GetNumber(), got)
	}
	z := e.trigger("concc", "")
	want := fmt.Sprintf("superseded by run %d", z.GetNumber())
	e.eventually("the queued run is superseded", func() bool { return e.get(y.GetId()).GetStatus() == "cancelled" })
	if got := e.get(y.GetId()); got.GetReason() != want {
		t.Fatalf("queued run %d: %s %q, want %q", y.GetNumber(), got.GetStatus(), got.GetReason(), want)
	}
	if j := e.claim(50*time.Millisecond, "standard"); j != nil {
		t.Fatalf("a runner took run %s while superseded run %d still runs", j.GetRunId(), x.GetNumber())
	}
	// The runner only says "cancelled"; the run says why.
	e.finishJob(jx, "cancelled")
	if got := e.get(x.GetId()); got.GetStatus() != "cancelled" || got.GetReason() != fmt.Sprintf("superseded by run %d", y.GetNumber()) {
		t.Fatalf("running run %d: %s %q", x.GetNumber(), got.GetStatus(), got.GetReason())
	}
	jz := e.mustClaim()
	if jz.GetRunId() != z.GetId() {
		t.Fatalf("claim took %s, want run %d", jz.GetRunId(), z.GetNumber())
	}
	e.finishJob(jz, "succeeded")
	if got := e.get(z.GetId()).GetStatus(); got != "succeeded" {
		t.Fatalf("run %d: %s", z.GetNumber(), got)
	}
	// Runs of other keys (another branch) are untouched.
	if got := e.trigger("concq", ""); e.get(got.GetId()).GetStatus() != "queued" {
		t.Fatalf("run of another key: %s", e.get(got.GetId()).GetStatus())
	}
}

// TestConcurrencyKeyErrors: a key that does not render ends the run errored, saying so.
func TestConcurrencyKeyErrors(t *testing.T) {
	e := newEnv(t)
	r := e.trigger("concbad", "")
	if got := e.get(r.GetId()); got.GetStatus() != "errored" || !strings.Contains(got.GetReason(), "invalid pipeline: .simpleci/pipeline.json:1:17: concurrency.key: {{ context.nope }}: no such key") {
		t.Fatalf("%s %q", got.GetStatus(), got.GetReason())
	}
}

// TestConcurrencyTwoSchedulers: two scheduler replicas over one database, each with
// runners claiming at once, never start two runs of a key of limit 1, and start them in
// order: the database decides, not a lock of one process.
func TestConcurrencyTwoSchedulers(t *testing.T) {
	var cfg service.Config
	e := newEnv(t, func(c *service.Config) { cfg = *c })
	other, err := service.New(e.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var runs []*apiv1.Run
	for range 4 {
		runs = append(runs, e.trigger("concq", ""))
	}
	for i, want := range runs {
		var mu sync.Mutex
		var got []*runnerv1.Job
		var wg sync.WaitGroup
		for j, svc := range []*service.Service{e.svc, other, e.svc, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("runner-%d", j)
				resp, err := svc.ClaimJob(e.runner(name), &runnerv1.ClaimJobRequest{RunnerId: name, Tiers: []string{"standard"}, Wait: durationpb.New(300 * time.Millisecond)})
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				if resp.GetJob() != nil {
					mu.Lock()
					got = append(got, resp.GetJob())
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(got) != 1 || got[0].GetRunId() != want.GetId() {
			t.Fatalf("round %d: %d jobs claimed (%v), want only run %d", i, len(got), got, want.GetNumber())
		}
		job := got[0]
		if _, err := e.svc.Report(e.runner(job.GetLogGrant().GetRunner()), &runnerv1.ReportRequest{RunId: job.GetRunId(), LeaseId: job.GetLeaseId(), EventId: id.New(),
			Event: &runnerv1.ReportRequest_RunFinished{RunFinished: &eventsv1.RunFinished{Status: "succeeded"}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConcurrencyQueueBound: at most domain.MaxKeyQueue runs wait on a key; the next one
// ends errored at once, saying why, and the waiting ones are kept.
func TestConcurrencyQueueBound(t *testing.T) {
	if testing.Short() {
		t.Skip("queues 100 runs")
	}
	e := newEnv(t)
	first := e.trigger("concq", "")
	if job := e.mustClaim(); job.GetRunId() != first.GetId() {
		t.Fatalf("claimed %s", job.GetRunId())
	}
	for range 100 {
		if r := e.trigger("concq", ""); r.GetStatus() != "queued" {
			t.Fatalf("run %d: %s %q", r.GetNumber(), r.GetStatus(), r.GetReason())
		}
	}
	r := e.trigger("concq", "")
	want := `concurrency key "deploy-concq" already has 100 runs waiting (at most 100)`
	if r.GetStatus() != "errored" || !strings.Contains(r.GetReason(), want) {
		t.Fatalf("run %d beyond the bound: %s %q, want errored %q", r.GetNumber(), r.GetStatus(), r.GetReason(), want)
	}
}

// TestConcurrencySupersedeSweep: a scheduler that queued a cancelInProgress run but failed
// to supersede the older one (it stopped in between) leaves it to the sweep: the older run
// still ends cancelled, superseded by the newer.
func TestConcurrencySupersedeSweep(t *testing.T) {
	e := newEnv(t, withLease(600*time.Millisecond))
	x := e.trigger("concc", "")
	var decisions atomic.Int32
	service.InjectAfterAppend(e.svc, func(context.Context, *sql.Tx) error {
		if decisions.Add(1) == 2 { // the first supersession after queuing the newer run
			return errors.New("injected: the scheduler stopped")
		}
		return nil
	})
	y := e.trigger("concc", "")
	if got := decisions.Load(); got < 2 {
		t.Fatalf("%d decisions: the supersession was not attempted", got)
	}
	want := fmt.Sprintf("superseded by run %d", y.GetNumber())
	e.eventually("the sweep supersedes the older run", func() bool { return e.get(x.GetId()).GetStatus() == "cancelled" })
	if got := e.get(x.GetId()).GetReason(); got != want {
		t.Fatalf("run %d: reason %q, want %q", x.GetNumber(), got, want)
	}
	if job := e.mustClaim(); job.GetRunId() != y.GetId() {
		t.Fatalf("claimed %s, want run %d", job.GetRunId(), y.GetNumber())
	}
}
