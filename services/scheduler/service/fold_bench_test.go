package service_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/id"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/scheduler/service"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BenchmarkLongRunReports measures the scheduler's work for one run of 2,000 steps: every
// step's StepStarted and StepFinished report and the end (4,001 decisions), on the
// database testDatabase picks (PostgreSQL under make bench). Its CPU time per run is in
// docs/benchmarks.md.
func BenchmarkLongRunReports(b *testing.B) {
	e := newEnv(b, func(c *service.Config) {
		c.Tiers = map[string]service.Tier{"standard": {Name: "standard", Memory: 1 << 30, Pids: 100, CPUs: 1, Timeout: time.Hour, Steps: 2000}}
		c.LeaseDuration = time.Hour // no heartbeats here
	})
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ResetTimer()
	start := cpu()
	for range b.N {
		r, err := e.svc.TriggerRun(e.user("org1"), &apiv1.TriggerRunRequest{Project: "app", Ref: "long"})
		if err != nil || r.GetStatus() != "queued" || len(r.GetSteps()) != 2000 {
			b.Fatalf("trigger: %v %v (%s)", err, r.GetStatus(), r.GetReason())
		}
		job := e.mustClaim()
		for i := range int32(2000) {
			if err := e.report(job, id.New(), &eventsv1.StepStarted{StepIndex: i, StartedAt: timestamppb.Now()}); err != nil {
				b.Fatal(err)
			}
			if err := e.report(job, id.New(), &eventsv1.StepFinished{StepIndex: i, Status: "succeeded", FinishedAt: timestamppb.Now()}); err != nil {
				b.Fatal(err)
			}
		}
		if err := e.report(job, id.New(), &eventsv1.RunFinished{Status: "succeeded"}); err != nil {
			b.Fatal(err)
		}
	}
	// The process's CPU time (user + system): the scheduler and this client, in process.
	b.ReportMetric((cpu()-start).Seconds()/float64(b.N), "cpu-s/op")
}
