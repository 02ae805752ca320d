package service_test

import (
	"strings"
	"testing"
	"time"

	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
)

// TestWaitReason: a queued run says why it waits, naming its tier.
func TestWaitReason(t *testing.T) {
	e := newEnv(t)
	r, err := e.svc.TriggerRun(e.user("org1"), &apiv1.TriggerRunRequest{Project: "big", Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.get(r.GetId()).GetReason(); got != "waiting: no runner for tier large is connected" {
		t.Fatalf("with no runner: reason %q", got)
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
}
