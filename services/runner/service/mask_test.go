package service

import (
	"encoding/base64"
	"strings"
	"testing"

	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"

	"github.com/simpleci/simpleci/libs/engine"
)

// TestReportsMasked: every text a runner reports (step and run reasons, the
// isolation line) passes through the job's masker, so that an error that quotes a
// secret (or its base64) cannot carry it out of the runner.
func TestReportsMasked(t *testing.T) {
	const secret = "s3cr3t-runner-value"
	job := &runnerv1.Job{Secrets: map[string]string{"TOKEN": secret}}
	m := engine.NewMasker(secretValues(job))
	b64 := base64.StdEncoding.EncodeToString([]byte(secret))
	text := "checkout failed: " + secret + " / " + b64
	reqs := []*runnerv1.ReportRequest{
		{Event: &runnerv1.ReportRequest_StepSkipped{StepSkipped: &eventsv1.StepSkipped{Reason: text}}},
		{Event: &runnerv1.ReportRequest_StepFinished{StepFinished: &eventsv1.StepFinished{Reason: text}}},
		{Event: &runnerv1.ReportRequest_RunFinished{RunFinished: &eventsv1.RunFinished{Reason: text}}},
		{Event: &runnerv1.ReportRequest_RunIsolation{RunIsolation: &eventsv1.RunIsolation{Isolation: text}}},
	}
	for _, req := range reqs {
		maskReport(m, req)
		got := req.String()
		if strings.Contains(got, secret) || strings.Contains(got, b64) {
			t.Errorf("%T not masked: %s", req.Event, got)
		}
		if !strings.Contains(got, "checkout failed: *** / ***") {
			t.Errorf("%T: %s", req.Event, got)
		}
	}
}
