package service_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/auth"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// testSecret is the deployment secret of the tests' log service (and of the scheduler
// that signs their grants).
const testSecret = "int_log-test"

func (e *env) runner(name string) context.Context {
	return auth.WithPrincipal(e.ctx, &authv1.Principal{Login: "runner:" + name, Runner: name})
}

// grant is the scheduler's log grant for attempt of run, held by runner.
func (e *env) grant(run string, attempt int32, runner, org string, expires time.Time) *runnerv1.LogGrant {
	e.t.Helper()
	g := &runnerv1.LogGrant{RunId: run, Attempt: attempt, Runner: runner, OrgId: org, ProjectId: "p1", ExpiresAt: timestamppb.New(expires)}
	if err := auth.SignLogGrant(testSecret, g); err != nil {
		e.t.Fatal(err)
	}
	return g
}

func runnerChunk(seq int64, text string) *runnerv1.LogChunk {
	return &runnerv1.LogChunk{Sequence: seq, Stream: eventsv1.LogStream_LOG_STREAM_STDOUT, At: timestamppb.New(time.Unix(1700000000, seq)), Data: []byte(text)}
}

// A runner appends its job's log in batches under the job's grant; the chunks land in the
// run's log (once, however often a batch is retried) under the grant's run, attempt and
// organisation.
func TestAppendLogs(t *testing.T) {
	e := newEnv(t)
	g := e.grant("run1", 1, "runner-1", "org1", time.Now().Add(time.Hour))
	system := runnerChunk(1, "hello\n")
	system.StepIndex, system.Stream = -1, eventsv1.LogStream_LOG_STREAM_SYSTEM // the run's own lines (the isolation line)
	batch := []*runnerv1.LogChunk{system, runnerChunk(2, "world\n")}
	for range 2 { // a retried batch
		if _, err := e.svc.AppendLogs(e.runner("runner-1"), &runnerv1.AppendLogsRequest{Grant: g, Chunks: batch}); err != nil {
			t.Fatalf("AppendLogs: %v", err)
		}
	}
	if _, err := e.svc.AppendLogs(e.runner("runner-1"), &runnerv1.AppendLogsRequest{Grant: g, Chunks: []*runnerv1.LogChunk{runnerChunk(3, "!\n")}}); err != nil {
		t.Fatalf("AppendLogs: %v", err)
	}
	e.finish("run1", "org1", 3)
	e.eventually("the whole log", func() bool { return e.logs("org1", "run1").GetComplete() })
	var texts []string
	for _, c := range e.logs("org1", "run1").GetChunks() {
		texts = append(texts, c.GetText())
		if c.GetAttempt() != 1 {
			t.Errorf("chunk %d under attempt %d", c.GetSequence(), c.GetAttempt())
		}
	}
	if got := strings.Join(texts, ""); got != "hello\nworld\n!\n" {
		t.Fatalf("log %q", got)
	}
	if n := len(e.logs("org2", "run1").GetChunks()); n != 0 {
		t.Fatalf("org2 sees %d chunks of org1's run", n)
	}
}

// The grant's run log cap, not the runner's say, bounds what is kept.
func TestAppendLogsCapFromGrant(t *testing.T) {
	e := newEnv(t)
	g := &runnerv1.LogGrant{RunId: "flood", Attempt: 1, Runner: "runner-1", OrgId: "org1", ProjectId: "p1", RunLogBytes: 5,
		ExpiresAt: timestamppb.New(time.Now().Add(time.Hour))}
	if err := auth.SignLogGrant(testSecret, g); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.AppendLogs(e.runner("runner-1"), &runnerv1.AppendLogsRequest{Grant: g,
		Chunks: []*runnerv1.LogChunk{runnerChunk(1, "12345"), runnerChunk(2, "past the cap")}}); err != nil {
		t.Fatal(err)
	}
	e.finish("flood", "org1", 2)
	e.eventually("the whole log", func() bool { return e.logs("org1", "flood").GetComplete() })
	if got := e.logs("org1", "flood").GetChunks(); len(got) != 2 || got[0].GetText() != "12345" || got[1].GetText() != "" {
		t.Fatalf("stored %v: want the chunk past the grant's cap kept empty", got)
	}
}

func TestAppendLogsRefused(t *testing.T) {
	e := newEnv(t)
	good := e.grant("run1", 1, "runner-1", "org1", time.Now().Add(time.Hour))
	forged := proto.Clone(good).(*runnerv1.LogGrant)
	forged.RunId = "run2" // runner-1's grant, turned to another run
	tests := []struct {
		name string
		ctx  context.Context
		req  *runnerv1.AppendLogsRequest
		code codes.Code
	}{
		{"no grant", e.runner("runner-1"), &runnerv1.AppendLogsRequest{Chunks: []*runnerv1.LogChunk{runnerChunk(1, "x")}}, codes.PermissionDenied},
		{"another run's grant altered", e.runner("runner-1"), &runnerv1.AppendLogsRequest{Grant: forged, Chunks: []*runnerv1.LogChunk{runnerChunk(1, "x")}}, codes.PermissionDenied},
		{"another runner's grant", e.runner("intruder"), &runnerv1.AppendLogsRequest{Grant: good, Chunks: []*runnerv1.LogChunk{runnerChunk(1, "x")}}, codes.PermissionDenied},
		{"an expired grant", e.runner("runner-1"), &runnerv1.AppendLogsRequest{Grant: e.grant("run1", 1, "runner-1", "org1", time.Now().Add(-time.Second)),
			Chunks: []*runnerv1.LogChunk{runnerChunk(1, "x")}}, codes.PermissionDenied},
		{"a grant under another deployment's secret", e.runner("runner-1"), &runnerv1.AppendLogsRequest{Grant: otherDeployment(t, good),
			Chunks: []*runnerv1.LogChunk{runnerChunk(1, "x")}}, codes.PermissionDenied},
		{"a user", e.user("org1"), &runnerv1.AppendLogsRequest{Grant: good, Chunks: []*runnerv1.LogChunk{runnerChunk(1, "x")}}, codes.PermissionDenied},
		{"a service", auth.WithPrincipal(e.ctx, &authv1.Principal{Service: auth.Scheduler}), &runnerv1.AppendLogsRequest{Grant: good,
			Chunks: []*runnerv1.LogChunk{runnerChunk(1, "x")}}, codes.PermissionDenied},
		{"sequence 0", e.runner("runner-1"), &runnerv1.AppendLogsRequest{Grant: good, Chunks: []*runnerv1.LogChunk{runnerChunk(0, "x")}}, codes.InvalidArgument},
		{"step -2", e.runner("runner-1"), &runnerv1.AppendLogsRequest{Grant: good, Chunks: []*runnerv1.LogChunk{{Sequence: 1, StepIndex: -2, Stream: eventsv1.LogStream_LOG_STREAM_STDOUT}}}, codes.InvalidArgument},
		{"no stream", e.runner("runner-1"), &runnerv1.AppendLogsRequest{Grant: good, Chunks: []*runnerv1.LogChunk{{Sequence: 1}}}, codes.InvalidArgument},
		{"too many chunks", e.runner("runner-1"), &runnerv1.AppendLogsRequest{Grant: good, Chunks: make([]*runnerv1.LogChunk, 4097)}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.AppendLogs(tt.ctx, tt.req)
			if status.Code(err) != tt.code {
				t.Fatalf("got %v, want %v", err, tt.code)
			}
			t.Log(status.Convert(err).Message())
		})
	}
	// Nothing refused was stored: the run's log ends empty.
	e.finish("run1", "org1", 0)
	e.finish("run2", "org1", 0)
	e.eventually("the runs' ends", func() bool { return e.logs("org1", "run1").GetComplete() && e.logs("org1", "run2").GetComplete() })
	if n := len(e.logs("org1", "run1").GetChunks()) + len(e.logs("org1", "run2").GetChunks()); n != 0 {
		t.Fatalf("%d refused chunks stored", n)
	}
}

func otherDeployment(t *testing.T, g *runnerv1.LogGrant) *runnerv1.LogGrant {
	o := proto.Clone(g).(*runnerv1.LogGrant)
	if err := auth.SignLogGrant("int_another-deployment", o); err != nil {
		t.Fatal(err)
	}
	return o
}
