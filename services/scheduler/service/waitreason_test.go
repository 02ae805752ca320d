package service_test

import (
	"strings"
	"testing"
	"time"

	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"github.com/simpleci/simpleci/services/scheduler/service"
)

// TestWaitReason: a queued run says why it waits, naming its tier.
func TestWaitReason(t *testing.T) {
	e := newEnv(t)
	r, err := e.svc.TriggerRun(e.user("org1"), &apiv1.TriggerRunRequest{Project: "big", Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.get(r.GetId()).GetReason(); got != "waiting: no runner for tier large is connected; 1 of 1 in the tier's queue" {
		t.Fatalf("with no runner: reason %q", got)
	}
	// A second run queues behind it: each says where it is.
	r2, err := e.svc.TriggerRun(e.user("org1"), &apiv1.TriggerRunRequest{Project: "big", Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.get(r2.GetId()).GetReason(); !strings.HasSuffix(got, "; 2 of 2 in the tier's queue") {
		t.Fatalf("the second run: reason %q", got)
	}
	if got := e.get(r.GetId()).GetReason(); !strings.HasSuffix(got, "; 1 of 2 in the tier's queue") {
		t.Fatalf("the first run, with one behind: reason %q", got)
	}
	// A runner of another tier does not change that.
	if job := e.claim(10*time.Millisecond, "standard"); job != nil {
		t.Fatalf("a standard runner claimed %s of a large-tier run", job.GetRunId())
	}
	if got := e.get(r.GetId()).GetReason(); !strings.Contains(got, "no runner for tier large") {
		t.Fatalf("with only a standard runner: reason %q", got)
	}
	// A large runner takes it at once.
	if job := e.claim(time.Second, "large"); job.GetRunId() != r.GetId() {
		t.Fatalf("the large runner claimed %v", job)
	}
	if g := e.get(r.GetId()); g.GetStatus() != "running" || g.GetReason() != "" {
		t.Fatalf("after the claim: %s %q", g.GetStatus(), g.GetReason())
	}
	if got := e.get(r2.GetId()).GetReason(); got != "waiting for a free runner of tier large; 1 of 1 in the tier's queue" {
		t.Fatalf("the second run, first in the queue now: reason %q", got)
	}
}

// TestQueueLimit: a run that waits longer than its tier's queue limit ends errored,
// saying why it waited; a run a runner takes in time is untouched.
func TestQueueLimit(t *testing.T) {
	e := newEnv(t, withLease(300*time.Millisecond), func(c *service.Config) {
		c.Tiers = service.DefaultTiers()
		large := c.Tiers["large"]
		large.Queue = 500 * time.Millisecond
		c.Tiers["large"] = large
	})
	r, err := e.svc.TriggerRun(e.user("org1"), &apiv1.TriggerRunRequest{Project: "big", Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	var got *apiv1.Run
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if got = e.get(r.GetId()); got.GetStatus() != "queued" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := "queued for more than 500ms without starting (no runner for tier large is connected; 1 of 1 in the tier's queue)"
	if got.GetStatus() != "errored" || got.GetReason() != want {
		t.Fatalf("the run queued past its tier's limit: %s %q, want errored %q", got.GetStatus(), got.GetReason(), want)
	}
	// A run of a tier with a longer limit stays queued meanwhile.
	s, err := e.svc.TriggerRun(e.user("org1"), &apiv1.TriggerRunRequest{Project: "app", Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if g := e.get(s.GetId()); g.GetStatus() != "queued" {
		t.Fatalf("a run of a tier without a limit: %s %q", g.GetStatus(), g.GetReason())
	}
}
