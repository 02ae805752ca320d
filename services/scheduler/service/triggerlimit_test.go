package service_test

import (
	"testing"

	"github.com/simpleci/simpleci/libs/platform/ratelimit"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"github.com/simpleci/simpleci/services/scheduler/service"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestTriggerRateLimit: past a project's burst, manual triggers fail with ResourceExhausted
// carrying RetryInfo (the gateway's 429 and Retry-After) and record nothing; another
// project's triggers go on.
func TestTriggerRateLimit(t *testing.T) {
	e := newEnv(t, func(c *service.Config) { c.TriggerLimits = ratelimit.Limits{Rate: 0.1, Burst: 2} })
	e.trigger("main", "")
	e.trigger("main", "")
	_, err := e.svc.TriggerRun(e.user("org1"), &apiv1.TriggerRunRequest{Project: "app", Ref: "main"})
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || len(st.Details()) != 1 {
		t.Fatalf("third trigger: %v, want ResourceExhausted with RetryInfo", err)
	}
	if ri, ok := st.Details()[0].(*errdetails.RetryInfo); !ok || ri.GetRetryDelay().AsDuration() <= 0 {
		t.Fatalf("details %v", st.Details())
	}
	if runs := e.list(&apiv1.ListRunsRequest{Project: "app"}).GetRuns(); len(runs) > 2 {
		t.Fatalf("%d runs recorded, want 2", len(runs))
	}
	if _, err := e.svc.TriggerRun(e.user("org1"), &apiv1.TriggerRunRequest{Project: "big", Ref: "main"}); err != nil {
		t.Fatalf("another project: %v", err)
	}
}
