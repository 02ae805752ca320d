package service_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/eventstore"
	"github.com/simpleci/simpleci/libs/pipeline"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/id"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/scheduler/service"
	"google.golang.org/protobuf/proto"
)

// hugePipeline is a valid pipeline file just under pipeline.MaxFileSize: eight steps
// whose commands carry a long shell comment.
func hugePipeline() string {
	var b strings.Builder
	b.WriteString(`{"steps": [`)
	pad := (pipeline.MaxFileSize - 2048) / 8
	for i := range 8 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"name": "s%d", "run": "echo step %d # %s"}`, i, i, strings.Repeat("x", pad))
	}
	b.WriteString("]}")
	return b.String()
}

// commitBranch commits content as the pipeline file on a new branch of the test repository.
func (e *env) commitBranch(branch, content string) {
	e.t.Helper()
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
		cmd.Dir = e.repo.dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
		if out, err := cmd.CombinedOutput(); err != nil {
			e.t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("checkout", "-q", "-B", branch, "main")
	if err := os.WriteFile(filepath.Join(e.repo.dir, pipelineFile), []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	git("add", "-A")
	git("commit", "-q", "-m", branch)
	git("checkout", "-q", "main")
}

// TestPipelineStoredByReference: a pipeline file near the 1 MiB limit is stored once in the
// scheduler's blob store; RunQueued (in the event store and on the bus) carries its SHA-256
// and size and stays far below the event limit; the runner's job gets the whole file.
func TestPipelineStoredByReference(t *testing.T) {
	e := newEnv(t)
	content := hugePipeline()
	if len(content) > pipeline.MaxFileSize || len(content) < pipeline.MaxFileSize-4096 {
		t.Fatalf("test pipeline is %d bytes, want just under %d", len(content), pipeline.MaxFileSize)
	}
	e.commitBranch("huge", content)
	var mu sync.Mutex
	var onBus []bus.Message
	if err := e.bus.Subscribe(e.ctx, event.TopicRuns, "test", func(_ context.Context, m bus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		onBus = append(onBus, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	r := e.trigger("huge", "")
	if r.GetStatus() != "queued" {
		t.Fatalf("run %s: %s %q", r.GetId(), r.GetStatus(), r.GetReason())
	}
	sum := sha256.Sum256([]byte(content))
	q, ok := e.storedEvents(r.GetId())[0].(*eventsv1.RunQueued)
	if !ok || len(q.GetPipeline()) != 0 || q.GetPipelineSha256() != hex.EncodeToString(sum[:]) || q.GetPipelineSize() != int64(len(content)) {
		t.Fatalf("RunQueued carries %d pipeline bytes, sha256 %q, size %d", len(q.GetPipeline()), q.GetPipelineSha256(), q.GetPipelineSize())
	}
	if n := proto.Size(q); n > 4096 {
		t.Fatalf("RunQueued is %d bytes", n)
	}
	job := e.mustClaim()
	if string(job.GetPipeline()) != content {
		t.Fatalf("job's pipeline is %d bytes, want the %d of the file", len(job.GetPipeline()), len(content))
	}
	e.trigger("huge", "") // the same file again: stored once
	var blobs int
	if err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM sched_blobs`).Scan(&blobs); err != nil {
		t.Fatal(err)
	}
	if blobs != 1 {
		t.Fatalf("%d blobs, want 1", blobs)
	}
	e.eventually("RunQueued on the bus", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range onBus {
			if m.Type == event.TypeOf(&eventsv1.RunQueued{}) && m.Key == r.GetId() {
				return len(m.Payload) < event.MaxEventBytes
			}
		}
		return false
	})
}

// TestRequestFieldsBounded: a run request whose fields exceed their bounds is recorded as
// an errored run that says what was too large, within the event limit.
func TestRequestFieldsBounded(t *testing.T) {
	e := newEnv(t)
	runID := id.New()
	rr := &eventsv1.RunRequested{RunId: runID, OrgId: "org1", ProjectId: "p-app", Provider: "local", Repository: e.repo.dir,
		Ref: "refs/heads/main", Sha: e.repo.shas["main"], Event: "push", Actor: strings.Repeat("a", 100_000),
		Context: map[string]string{"tag": strings.Repeat("t", 150_000)}}
	m, err := event.Encode(runID, runID, rr)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.bus.Publish(e.ctx, event.TopicRunRequests, m); err != nil {
		t.Fatal(err)
	}
	var evs []proto.Message
	e.eventually("the run recorded", func() bool { evs = e.storedEvents(runID); return len(evs) == 2 })
	f := evs[1].(*eventsv1.RunFinished)
	if f.GetStatus() != "errored" || !strings.Contains(f.GetReason(), "actor is 100000 bytes (at most 1024)") ||
		!strings.Contains(f.GetReason(), "value of 150000") {
		t.Fatalf("run ended %s: %q", f.GetStatus(), f.GetReason())
	}
	if n := proto.Size(evs[0]); n > 8192 {
		t.Fatalf("RunQueued is %d bytes", n)
	}
}

// TestReportReasonsBounded: a runner's reason of any length is recorded cut, with a marker.
func TestReportReasonsBounded(t *testing.T) {
	e := newEnv(t)
	e.trigger("main", "")
	job := e.mustClaim()
	e.mustReport(job, &eventsv1.StepStarted{StepIndex: 0, StepName: "build"})
	e.mustReport(job, &eventsv1.StepFinished{StepIndex: 0, StepName: "build", Status: "failed", ExitCode: 1, Reason: strings.Repeat("r", 2<<20)})
	e.mustReport(job, &eventsv1.RunFinished{Status: "failed", Reason: strings.Repeat("f", 2<<20)})
	r := e.get(job.GetRunId())
	if len(r.GetReason()) > 8<<10 || !strings.Contains(r.GetReason(), "…[cut ") || len(r.GetSteps()[0].GetReason()) > 8<<10 {
		t.Fatalf("reasons of %d and %d bytes", len(r.GetReason()), len(r.GetSteps()[0].GetReason()))
	}
}

// TestOutboxSetsAsideOversizeEvent: an event the bus cannot take (recorded before events
// were bounded) goes to the poison queue with where the event store keeps it, and the
// events behind it are published: the outbox is not blocked.
func TestOutboxSetsAsideOversizeEvent(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var got []string
	if err := e.bus.Subscribe(e.ctx, event.TopicRuns, "test", func(_ context.Context, m bus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	legacy := id.New()
	payload, err := proto.Marshal(&eventsv1.RunQueued{RunId: legacy, OrgId: "org1", ProjectId: "p-app", Tier: "standard",
		Pipeline: make([]byte, bus.MaxMessageBytes+1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := service.AppendRaw(e.ctx, e.svc, "run-"+legacy, eventstore.Event{ID: id.New(), Type: event.TypeOf(&eventsv1.RunQueued{}),
		Payload: payload, Metadata: map[string]string{"run_id": legacy, "org_id": "org1", "project_id": "p-app"}}); err != nil {
		t.Fatal(err)
	}
	r := e.trigger("main", "") // recorded after the oversize one
	e.eventually("the later run's event on the bus", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range got {
			if k == r.GetId() {
				return true
			}
		}
		return false
	})
	ps, err := e.bus.Poison().List(e.ctx, event.TopicRuns, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Message.Key != legacy || ps[0].Group != "outbox:scheduler" ||
		!strings.Contains(ps[0].Error, "kept in the event store at position") {
		t.Fatalf("poison queue: %+v", ps)
	}
}

// TestStepNamesTooLongTogether: a valid pipeline whose step names alone would make RunQueued
// larger than an event may be ends errored, saying so, instead of failing to be recorded.
func TestStepNamesTooLongTogether(t *testing.T) {
	e := newEnv(t, func(c *service.Config) {
		tiers := service.DefaultTiers()
		st := tiers["standard"]
		st.Steps = 1000
		tiers["standard"] = st
		c.Tiers = tiers
	})
	var b strings.Builder
	b.WriteString(`{"steps": [`)
	for i := range 300 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"name": "%04d-%s", "run": "true"}`, i, strings.Repeat("n", 1000))
	}
	b.WriteString("]}")
	e.commitBranch("names", b.String())
	r := e.trigger("names", "")
	if r.GetStatus() != "errored" || !strings.Contains(r.GetReason(), "step names are too long together") {
		t.Fatalf("run %s: %q", r.GetStatus(), r.GetReason())
	}
	if evs := e.storedEvents(r.GetId()); proto.Size(evs[0]) > 8192 {
		t.Fatalf("RunQueued is %d bytes", proto.Size(evs[0]))
	}
}
