package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/forge"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The tests of a runner running several jobs at once, against a scheduler, a log service
// and a forge of the test's own; the jobs run for real, each in its sandbox.

// gated is a step that waits until the test opens its job's gate (gate), so that the
// test decides when each job ends.
const gated = `while [ ! -e gate ]; do sleep 0.02; done; echo through`

// fakeScheduler hands out the jobs of its queue and records what the runner does.
type fakeScheduler struct {
	limit int // the runner's --jobs: a claim while this many run is a violation

	mu        sync.Mutex
	queue     []*runnerv1.Job
	active    map[string]bool // claimed, neither finished nor released
	maxActive int
	// overClaims counts claims made while the runner already held limit jobs.
	overClaims int
	claimed    []string
	started    map[string]bool   // a step of the run started
	finished   map[string]string // run → "status: reason"
	released   []string
	cancel     map[string]bool // the run is cancelled (once a step started)
	lost       map[string]bool // the run's lease is lost (once a step started)
	afterStop  int             // claims made after stopped was set
	stopped    bool
}

func newFakeScheduler(limit int, jobs ...*runnerv1.Job) *fakeScheduler {
	return &fakeScheduler{limit: limit, queue: jobs, active: map[string]bool{}, started: map[string]bool{},
		finished: map[string]string{}, cancel: map[string]bool{}, lost: map[string]bool{}}
}

func (f *fakeScheduler) ClaimJob(ctx context.Context, req *runnerv1.ClaimJobRequest, _ ...grpc.CallOption) (*runnerv1.ClaimJobResponse, error) {
	f.mu.Lock()
	if len(f.active) >= f.limit {
		f.overClaims++
	}
	if f.stopped {
		f.afterStop++
	}
	if len(f.queue) > 0 {
		job := f.queue[0]
		f.queue = f.queue[1:]
		f.active[job.RunId] = true
		f.maxActive = max(f.maxActive, len(f.active))
		f.claimed = append(f.claimed, job.RunId)
		f.mu.Unlock()
		return &runnerv1.ClaimJobResponse{Job: job}, nil
	}
	f.mu.Unlock()
	// A long poll that finds nothing (short here).
	select {
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-time.After(20 * time.Millisecond):
		return &runnerv1.ClaimJobResponse{}, nil
	}
}

func (f *fakeScheduler) Heartbeat(ctx context.Context, req *runnerv1.HeartbeatRequest, _ ...grpc.CallOption) (*runnerv1.HeartbeatResponse, error) {
	select {
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-time.After(req.GetWait().AsDuration()):
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch run := req.GetRunId(); {
	case !f.started[run]:
	case f.lost[run]:
		return nil, status.Errorf(codes.FailedPrecondition, "lease %s of run %s is no longer held", req.GetLeaseId(), run)
	case f.cancel[run]:
		return &runnerv1.HeartbeatResponse{Cancel: true}, nil
	}
	return &runnerv1.HeartbeatResponse{}, nil
}

func (f *fakeScheduler) Report(ctx context.Context, req *runnerv1.ReportRequest, _ ...grpc.CallOption) (*runnerv1.ReportResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch e := req.Event.(type) {
	case *runnerv1.ReportRequest_StepStarted:
		f.started[req.RunId] = true
	case *runnerv1.ReportRequest_RunFinished:
		f.finished[req.RunId] = e.RunFinished.Status + ": " + e.RunFinished.Reason
		delete(f.active, req.RunId)
	}
	return &runnerv1.ReportResponse{}, nil
}

func (f *fakeScheduler) ReleaseJob(ctx context.Context, req *runnerv1.ReleaseJobRequest, _ ...grpc.CallOption) (*runnerv1.ReleaseJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, req.RunId)
	delete(f.active, req.RunId)
	return &runnerv1.ReleaseJobResponse{}, nil
}

// state runs fn under the scheduler's lock.
func (f *fakeScheduler) state(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// running returns the runs that are active and whose step started.
func (f *fakeScheduler) running() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for run := range f.active {
		if f.started[run] {
			out = append(out, run)
		}
	}
	slices.Sort(out)
	return out
}

type fakeLogs struct{}

func (fakeLogs) AppendLogs(context.Context, *runnerv1.AppendLogsRequest, ...grpc.CallOption) (*runnerv1.AppendLogsResponse, error) {
	return &runnerv1.AppendLogsResponse{}, nil
}

// fakeForge checks out a workspace holding one file, run-id, with the job's repository
// (the tests name it after the run), and remembers each run's workspace.
type fakeForge struct {
	mu   sync.Mutex
	dirs map[string]string
}

func (*fakeForge) Name() string { return "fake" }
func (*fakeForge) ParseWebhook(http.Header, []byte, []byte) (forge.Trigger, error) {
	return forge.Trigger{}, errors.New("not a webhook forge")
}
func (*fakeForge) ReadFile(context.Context, string, string, string) ([]byte, error) {
	return nil, forge.ErrNotFound
}
func (*fakeForge) ResolveRef(context.Context, string, string) (string, error) {
	return "", forge.ErrNotFound
}
func (f *fakeForge) Checkout(_ context.Context, repo, _, dir string) error {
	f.mu.Lock()
	f.dirs[repo] = dir
	f.mu.Unlock()
	return os.WriteFile(filepath.Join(dir, "run-id"), []byte(repo), 0o644)
}

// open lets the gated step of run go on.
func (f *fakeForge) open(t *testing.T, run string) {
	t.Helper()
	f.mu.Lock()
	dir := f.dirs[run]
	f.mu.Unlock()
	if err := os.WriteFile(filepath.Join(dir, "gate"), nil, 0o644); err != nil {
		t.Fatalf("open the gate of %s: %v", run, err)
	}
}

// job is a run whose one step runs script. Its step checks first that the workspace is
// its own and nobody else's (it holds its run-id alone), and last that no other job
// wrote into it meanwhile.
func job(run, script string) *runnerv1.Job {
	// The gate may be opened as soon as the step was reported started: it is no job's.
	check := `[ "$(ls -A | grep -v gate)" = run-id ] && [ "$(cat run-id)" = "$RUN" ] && echo mine > out && ` + script +
		` && [ "$(ls -A | grep -v gate | tr '\n' ' ')" = "out run-id " ]`
	return &runnerv1.Job{RunId: run, LeaseId: "lease-" + run, Provider: "fake", Repository: run, Sha: strings.Repeat("a", 40),
		PipelinePath: ".simpleci/pipeline.json", Pipeline: fmt.Appendf(nil, `{"steps": [{"name": "work", "run": %q}]}`, check),
		Env: map[string]string{"RUN": run}, LeaseDuration: durationpb.New(300 * time.Millisecond), Attempt: 1}
}

// startRunner runs a runner with jobs slots against f until the test ends; stop ends its
// ctx (a drain), abort its abort; done is closed when Run returned.
type testRunner struct {
	stop, abort context.CancelFunc
	done        chan struct{}
	forge       *fakeForge
}

func startRunner(t *testing.T, jobs int, drain time.Duration, f *fakeScheduler) *testRunner {
	t.Helper()
	ff := &fakeForge{dirs: map[string]string{}}
	forges, err := forge.NewRegistry(ff)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{ID: "test-runner", Jobs: jobs, WorkDir: t.TempDir(), DrainTimeout: drain, AllowWeakIsolation: true,
		Scheduler: f, Logs: fakeLogs{}, Forges: forges, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	abort, abortNow := context.WithCancel(context.Background())
	tr := &testRunner{stop: stop, abort: abortNow, done: make(chan struct{}), forge: ff}
	go func() {
		defer close(tr.done)
		r.Run(ctx, abort)
	}()
	t.Cleanup(func() {
		abortNow()
		stop()
		<-tr.done
	})
	return tr
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJobsAtOnce: a runner with --jobs 3 runs three jobs at once and never claims a
// fourth while three run; each job has its own workspace; all seven end succeeded.
func TestJobsAtOnce(t *testing.T) {
	const slots, total = 3, 7
	var jobs []*runnerv1.Job
	for i := range total {
		jobs = append(jobs, job(fmt.Sprintf("run-%d", i), gated))
	}
	f := newFakeScheduler(slots, jobs...)
	tr := startRunner(t, slots, time.Minute, f)
	for done := 0; done < total; {
		want := min(slots, total-done)
		waitFor(t, fmt.Sprintf("%d jobs running at once", want), func() bool { return len(f.running()) == want })
		// Three run; give the runner time to (wrongly) claim a fourth.
		time.Sleep(100 * time.Millisecond)
		f.state(func() {
			if f.overClaims > 0 || len(f.active) != want {
				t.Fatalf("%d claims while %d jobs ran, %d active, want %d", f.overClaims, slots, len(f.active), want)
			}
		})
		for _, run := range f.running() {
			tr.forge.open(t, run)
		}
		waitFor(t, "the open jobs to end", func() bool {
			n := 0
			f.state(func() { n = len(f.finished) })
			return n >= done+want
		})
		done += want
	}
	f.state(func() {
		if f.maxActive != slots || f.overClaims != 0 {
			t.Errorf("at most %d jobs at once (%d claims beyond the limit), want %d", f.maxActive, f.overClaims, slots)
		}
		for run, st := range f.finished {
			if st != "succeeded: " {
				t.Errorf("%s: %s, want succeeded", run, st)
			}
		}
	})
}

// TestJobsStopAlone: a cancel, a timeout and a lost lease each stop their own job only;
// the job beside them runs on and succeeds.
func TestJobsStopAlone(t *testing.T) {
	timedOut := job("timeout", "sleep 30")
	timedOut.Timeout = durationpb.New(time.Second)
	f := newFakeScheduler(4, job("ok", gated), job("cancel", "sleep 30"), job("lost", "sleep 30"), timedOut)
	f.cancel["cancel"], f.lost["lost"] = true, true
	tr := startRunner(t, 4, time.Minute, f)
	waitFor(t, "the three stopped jobs to end", func() bool {
		n := 0
		f.state(func() { n = len(f.finished) })
		return n == 3
	})
	f.state(func() {
		want := map[string]string{"cancel": "cancelled: cancelled", "lost": "cancelled", "timeout": "timed_out"}
		for run, prefix := range want {
			if !strings.HasPrefix(f.finished[run], prefix) {
				t.Errorf("%s: %q, want %q", run, f.finished[run], prefix)
			}
		}
		if !f.active["ok"] || !f.started["ok"] {
			t.Errorf("the job beside them is not running: active %v", f.active)
		}
	})
	tr.forge.open(t, "ok")
	waitFor(t, "the job beside them to end", func() bool {
		st := ""
		f.state(func() { st = f.finished["ok"] })
		return st != ""
	})
	f.state(func() {
		if f.finished["ok"] != "succeeded: " || len(f.released) != 0 {
			t.Errorf("the job beside them: %q (released %v), want succeeded", f.finished["ok"], f.released)
		}
	})
}

// TestJobsDrain: a runner asked to stop claims no more and finishes every job in
// progress, then returns; asked again, it hands every job in progress back at once.
func TestJobsDrain(t *testing.T) {
	t.Run("finish", func(t *testing.T) {
		f := newFakeScheduler(3, job("a", gated), job("b", gated), job("c", gated), job("queued", gated))
		tr := startRunner(t, 3, time.Minute, f)
		waitFor(t, "three jobs running", func() bool { return len(f.running()) == 3 })
		f.state(func() { f.stopped = true })
		tr.stop()
		time.Sleep(200 * time.Millisecond)
		select {
		case <-tr.done:
			t.Fatal("the runner returned with jobs in progress")
		default:
		}
		for _, run := range []string{"a", "b", "c"} {
			tr.forge.open(t, run)
		}
		select {
		case <-tr.done:
		case <-time.After(time.Minute):
			t.Fatal("the runner did not return after its jobs ended")
		}
		f.state(func() {
			for _, run := range []string{"a", "b", "c"} {
				if f.finished[run] != "succeeded: " {
					t.Errorf("%s: %q, want succeeded", run, f.finished[run])
				}
			}
			if f.afterStop != 0 || len(f.queue) != 1 || len(f.released) != 0 {
				t.Errorf("claims after the stop %d, queue %d, released %v: want no claim, the fourth job queued, nothing released",
					f.afterStop, len(f.queue), f.released)
			}
		})
	})
	t.Run("hand back", func(t *testing.T) {
		f := newFakeScheduler(3, job("a", gated), job("b", gated), job("c", gated))
		tr := startRunner(t, 3, time.Minute, f)
		waitFor(t, "three jobs running", func() bool { return len(f.running()) == 3 })
		tr.stop()
		tr.abort()
		select {
		case <-tr.done:
		case <-time.After(time.Minute):
			t.Fatal("the runner did not return after the abort")
		}
		f.state(func() {
			slices.Sort(f.released)
			if !slices.Equal(f.released, []string{"a", "b", "c"}) || len(f.finished) != 0 {
				t.Errorf("released %v, finished %v: want all three handed back, none finished", f.released, f.finished)
			}
		})
	})
}
