package service_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/eventstore/pgtest"
	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/id"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/log/service"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const wait = 10 * time.Second

type env struct {
	t   *testing.T
	ctx context.Context
	db  *sqldb.DB
	bus bus.Bus
	svc *service.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvAt(t, filepath.Join(t.TempDir(), "x.db"))
}

// dialects runs fn against the service over SQLite and, when pgtest.EnvURL is set, over
// a fresh PostgreSQL database.
func dialects(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, newEnv(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, newEnvAt(t, pgtest.NewDatabase(t))) })
}

func newEnvAt(t *testing.T, url string) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	b := bus.NewGoChannel(nil)
	t.Cleanup(func() { b.Close(); db.Close() })
	svc, err := service.New(ctx, db, b, testSecret, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, db: db, bus: b, svc: svc}
}

// at returns e for use in the (sub)test t: helpers fail the test they run in.
func (e *env) at(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

func (e *env) user(org string) context.Context {
	return auth.WithPrincipal(e.ctx, &authv1.Principal{UserId: "u-" + org, OrgId: org, Login: "user-" + org})
}

func chunk(run, org string, seq int64, step int32, stream eventsv1.LogStream, text string) *eventsv1.LogEmitted {
	return &eventsv1.LogEmitted{RunId: run, OrgId: org, ProjectId: "p1", StepIndex: step, Sequence: seq, Stream: stream,
		At: timestamppb.New(time.Unix(1700000000, seq)), Data: []byte(text)}
}

func (e *env) publish(topic, msgID string, m proto.Message, key string) {
	e.t.Helper()
	msg, err := event.Encode(msgID, key, m)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.bus.Publish(e.ctx, topic, msg); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) emit(c *eventsv1.LogEmitted) {
	e.t.Helper()
	e.publish(event.TopicLogs, id.New(), c, c.RunId)
}

func (e *env) finish(run, org string, last int64) {
	e.t.Helper()
	e.publish(event.TopicRuns, id.New(), &eventsv1.RunFinished{RunId: run, OrgId: org, ProjectId: "p1", Status: "succeeded", LastLogSequence: last}, run)
}

func (e *env) logs(org, run string) *apiv1.GetLogsResponse {
	e.t.Helper()
	resp, err := e.svc.GetLogs(e.user(org), &apiv1.GetLogsRequest{Run: run})
	if err != nil {
		e.t.Fatalf("GetLogs: %v", err)
	}
	return resp
}

// eventually polls cond until it holds or the deadline passes.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitChunk waits until run has a chunk with sequence seq.
func (e *env) waitChunk(org, run string, seq int64) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("chunk %d of %s", seq, run), func() bool {
		for _, c := range e.logs(org, run).GetChunks() {
			if c.GetSequence() == seq {
				return true
			}
		}
		return false
	})
}

// drainRuns waits until every RunFinished published so far was handled: messages of a
// topic are handled in order, so once a marker run is complete the ones before it are stored.
func (e *env) drainRuns(org string) {
	e.t.Helper()
	marker := "marker-" + id.New()
	e.finish(marker, org, 0)
	e.eventually("the marker run's end", func() bool { return e.logs(org, marker).GetComplete() })
}

func seqs(cs []*apiv1.LogChunk) []int64 {
	out := make([]int64, len(cs))
	for i, c := range cs {
		out[i] = c.GetSequence()
	}
	return out
}

func equal(a, b []int64) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestChunksStoredOnce(t *testing.T) {
	e := newEnv(t)
	c1 := chunk("run1", "org1", 1, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "hello\n")
	msgID := id.New()
	// The same message delivered twice, and the same chunk again under another message id.
	e.publish(event.TopicLogs, msgID, c1, "run1")
	e.publish(event.TopicLogs, msgID, c1, "run1")
	dup := proto.Clone(c1).(*eventsv1.LogEmitted)
	dup.Data = []byte("a different payload for the same sequence\n")
	e.emit(dup)
	e.emit(chunk("run1", "org1", 2, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "world\n"))
	e.waitChunk("org1", "run1", 2) // the chunks of a topic are handled in order

	got := e.logs("org1", "run1").GetChunks()
	if !equal(seqs(got), []int64{1, 2}) {
		t.Fatalf("stored sequences %v, want [1 2]", seqs(got))
	}
	if got[0].GetText() != "hello\n" {
		t.Fatalf("chunk 1 is %q: the first stored copy must win", got[0].GetText())
	}
	var n int
	if err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM log_chunks WHERE run_id = 'run1'`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d rows (%v), want 2", n, err)
	}
}

func TestDropsMalformedChunks(t *testing.T) {
	e := newEnv(t)
	e.emit(chunk("", "org1", 1, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "no run"))
	e.emit(chunk("run1", "org1", 0, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "sequence 0"))
	e.emit(chunk("run1", "org1", -3, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "negative"))
	// Undecodable: an unknown type and a payload that is no LogEmitted go to the poison queue.
	unknown := bus.Message{ID: id.New(), Key: "run1", Type: "simpleci.events.v1.Nope", Payload: []byte{1}}
	garbage := bus.Message{ID: id.New(), Key: "run1", Type: event.TypeOf(&eventsv1.LogEmitted{}), Payload: []byte{0xff, 0xff}}
	if err := e.bus.Publish(e.ctx, event.TopicLogs, unknown, garbage); err != nil {
		t.Fatal(err)
	}
	e.emit(chunk("run1", "org1", 1, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "ok"))
	e.waitChunk("org1", "run1", 1)
	var n int
	if err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM log_chunks`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d chunks stored (%v), want only the valid one", n, err)
	}
	poisoned, err := e.bus.Poison().List(e.ctx, event.TopicLogs, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(poisoned) != 2 || poisoned[0].Message.ID != unknown.ID || poisoned[1].Message.ID != garbage.ID ||
		poisoned[0].Group != service.GroupChunks {
		t.Fatalf("poisoned %+v, want the two undecodable messages, by %s", poisoned, service.GroupChunks)
	}
}

func TestGetLogs(t *testing.T) {
	e := newEnv(t)
	// Out of order, two steps, three streams, and another org's run.
	e.emit(chunk("run1", "org1", 3, 1, eventsv1.LogStream_LOG_STREAM_STDERR, "three"))
	e.emit(chunk("run1", "org1", 1, 0, eventsv1.LogStream_LOG_STREAM_SYSTEM, "one"))
	e.emit(chunk("run1", "org1", 4, 1, eventsv1.LogStream_LOG_STREAM_STDOUT, "four \xff"))
	e.emit(chunk("run1", "org1", 2, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "two"))
	e.emit(chunk("run2", "org2", 1, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "secret of org2"))
	e.waitChunk("org2", "run2", 1)

	step1 := int32(1)
	step0 := int32(0)
	tests := []struct {
		name  string
		org   string
		req   *apiv1.GetLogsRequest
		want  []int64
		texts []string
	}{
		{"all in order", "org1", &apiv1.GetLogsRequest{Run: "run1"}, []int64{1, 2, 3, 4}, []string{"one", "two", "three", "four \uFFFD"}},
		{"after", "org1", &apiv1.GetLogsRequest{Run: "run1", After: 2}, []int64{3, 4}, nil},
		{"after the end", "org1", &apiv1.GetLogsRequest{Run: "run1", After: 4}, []int64{}, nil},
		{"step 1", "org1", &apiv1.GetLogsRequest{Run: "run1", Step: &step1}, []int64{3, 4}, nil},
		{"step 0 after 1", "org1", &apiv1.GetLogsRequest{Run: "run1", Step: &step0, After: 1}, []int64{2}, nil},
		{"another org's run", "org1", &apiv1.GetLogsRequest{Run: "run2"}, []int64{}, nil},
		{"my run seen by another org", "org2", &apiv1.GetLogsRequest{Run: "run1"}, []int64{}, nil},
		{"org2 own run", "org2", &apiv1.GetLogsRequest{Run: "run2"}, []int64{1}, []string{"secret of org2"}},
		{"unknown run", "org1", &apiv1.GetLogsRequest{Run: "nope"}, []int64{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.at(t)
			resp, err := e.svc.GetLogs(e.user(tt.org), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := seqs(resp.GetChunks()); !equal(got, tt.want) {
				t.Fatalf("sequences %v, want %v", got, tt.want)
			}
			for i, text := range tt.texts {
				if resp.GetChunks()[i].GetText() != text {
					t.Errorf("chunk %d text %q, want %q", i, resp.GetChunks()[i].GetText(), text)
				}
			}
			if resp.GetComplete() {
				t.Error("complete before RunFinished")
			}
		})
	}
	t.Run("chunk fields", func(t *testing.T) {
		e := e.at(t)
		cs := e.logs("org1", "run1").GetChunks()
		want := []struct {
			step   int32
			stream string
		}{{0, "system"}, {0, "stdout"}, {1, "stderr"}, {1, "stdout"}}
		for i, w := range want {
			if cs[i].GetStep() != w.step || cs[i].GetStream() != w.stream {
				t.Errorf("chunk %d: step %d stream %q, want %d %q", i+1, cs[i].GetStep(), cs[i].GetStream(), w.step, w.stream)
			}
			if !cs[i].GetTime().AsTime().Equal(time.Unix(1700000000, int64(i+1))) {
				t.Errorf("chunk %d time %v", i+1, cs[i].GetTime().AsTime())
			}
		}
	})
	t.Run("callers", func(t *testing.T) {
		e := e.at(t)
		if _, err := e.svc.GetLogs(e.ctx, &apiv1.GetLogsRequest{Run: "run1"}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("no principal: %v", err)
		}
		internal := auth.WithPrincipal(e.ctx, &authv1.Principal{Login: "service:scheduler", Service: auth.Scheduler})
		if _, err := e.svc.GetLogs(internal, &apiv1.GetLogsRequest{Run: "run1"}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("internal principal: %v", err)
		}
	})
}

func TestComplete(t *testing.T) {
	e := newEnv(t)

	t.Run("only after RunFinished and every chunk", func(t *testing.T) {
		e := e.at(t)
		e.emit(chunk("run1", "org1", 1, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "a"))
		e.emit(chunk("run1", "org1", 2, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "b"))
		e.waitChunk("org1", "run1", 2)
		if e.logs("org1", "run1").GetComplete() {
			t.Fatal("complete before RunFinished")
		}
		// RunFinished arrives before the last chunk.
		e.finish("run1", "org1", 3)
		e.drainRuns("org1")
		if e.logs("org1", "run1").GetComplete() {
			t.Fatal("complete while chunk 3 is missing")
		}
		// Another org does not see the run as complete either.
		if e.logs("org2", "run1").GetComplete() {
			t.Fatal("complete for another org")
		}
		e.emit(chunk("run1", "org1", 3, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "c"))
		e.eventually("complete", func() bool { return e.logs("org1", "run1").GetComplete() })
		if got := seqs(e.logs("org1", "run1").GetChunks()); !equal(got, []int64{1, 2, 3}) {
			t.Fatalf("sequences %v", got)
		}
		if e.logs("org2", "run1").GetComplete() {
			t.Fatal("complete for another org")
		}
	})
	t.Run("a gap keeps it incomplete", func(t *testing.T) {
		e := e.at(t)
		e.emit(chunk("run2", "org1", 1, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "a"))
		e.emit(chunk("run2", "org1", 3, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "c"))
		e.finish("run2", "org1", 3)
		e.waitChunk("org1", "run2", 3)
		e.drainRuns("org1")
		if e.logs("org1", "run2").GetComplete() {
			t.Fatal("complete with chunk 2 missing")
		}
		e.emit(chunk("run2", "org1", 2, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "b"))
		e.eventually("complete", func() bool { return e.logs("org1", "run2").GetComplete() })
	})
	t.Run("a run without output", func(t *testing.T) {
		e := e.at(t)
		e.finish("run3", "org1", 0)
		e.eventually("complete", func() bool { return e.logs("org1", "run3").GetComplete() })
		if n := len(e.logs("org1", "run3").GetChunks()); n != 0 {
			t.Fatalf("%d chunks", n)
		}
	})
	t.Run("a repeated RunFinished changes nothing", func(t *testing.T) {
		e := e.at(t)
		e.finish("run3", "org1", 5)
		e.drainRuns("org1")
		if !e.logs("org1", "run3").GetComplete() {
			t.Fatal("a redelivered RunFinished changed the end of the log")
		}
	})
	t.Run("other run events are ignored", func(t *testing.T) {
		e := e.at(t)
		e.publish(event.TopicRuns, id.New(), &eventsv1.RunStarted{RunId: "run4", OrgId: "org1"}, "run4")
		e.drainRuns("org1")
		var n int
		if err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM log_runs WHERE run_id = 'run4'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("RunStarted recorded an end: %d, %v", n, err)
		}
	})
}

// tailStream collects what TailLogs sends.
type tailStream struct {
	grpc.ServerStream
	ctx  context.Context
	mu   sync.Mutex
	sent []*apiv1.LogChunk
}

func (s *tailStream) Context() context.Context { return s.ctx }

func (s *tailStream) Send(c *apiv1.LogChunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, c)
	return nil
}

func (s *tailStream) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

func TestTailLogs(t *testing.T) {
	e := newEnv(t)
	e.emit(chunk("run1", "org1", 1, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "a"))
	e.emit(chunk("run1", "org1", 2, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "b"))
	e.waitChunk("org1", "run1", 2)

	st := &tailStream{ctx: e.user("org1")}
	done := make(chan error, 1)
	go func() { done <- e.svc.TailLogs(&apiv1.TailLogsRequest{Run: "run1", After: 1}, st) }()

	e.eventually("chunk 2 sent", func() bool { return st.count() == 1 })
	e.emit(chunk("run1", "org1", 3, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "c"))
	e.eventually("chunk 3 sent", func() bool { return st.count() == 2 })
	select {
	case err := <-done:
		t.Fatalf("TailLogs returned before the run finished: %v", err)
	default:
	}
	e.finish("run1", "org1", 4)
	e.emit(chunk("run1", "org1", 4, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "d"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("TailLogs: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("TailLogs did not end once the log was complete")
	}
	if got := seqs(st.sent); !equal(got, []int64{2, 3, 4}) {
		t.Fatalf("sent %v, want [2 3 4]", got)
	}

	t.Run("ends at once for a complete log", func(t *testing.T) {
		e := e.at(t)
		st := &tailStream{ctx: e.user("org1")}
		if err := e.svc.TailLogs(&apiv1.TailLogsRequest{Run: "run1"}, st); err != nil {
			t.Fatal(err)
		}
		if got := seqs(st.sent); !equal(got, []int64{1, 2, 3, 4}) {
			t.Fatalf("sent %v", got)
		}
	})
	t.Run("another org waits and sees nothing", func(t *testing.T) {
		e := e.at(t)
		ctx, cancel := context.WithCancel(e.user("org2"))
		st := &tailStream{ctx: ctx}
		done := make(chan error, 1)
		go func() { done <- e.svc.TailLogs(&apiv1.TailLogsRequest{Run: "run1"}, st) }()
		cancel()
		select {
		case err := <-done:
			// Canceled, or Internal when the cancellation hit a query (TestTailLogsCancelledCaller).
			if err == nil {
				t.Fatal("TailLogs after cancel returned nil")
			}
		case <-time.After(wait):
			t.Fatal("TailLogs ignored the cancelled context")
		}
		if st.count() != 0 {
			t.Fatalf("another org got %d chunks", st.count())
		}
	})
}

func TestTailLogsCancelledCaller(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(e.user("org1"))
	cancel()
	err := e.svc.TailLogs(&apiv1.TailLogsRequest{Run: "run1"}, &tailStream{ctx: ctx})
	if status.Code(err) != codes.Canceled {
		t.Fatalf("TailLogs with a cancelled context: %v, want Canceled", err)
	}
}

func TestNewRequiresDBAndBus(t *testing.T) {
	if _, err := service.New(context.Background(), nil, bus.NewGoChannel(nil), testSecret, nil); err == nil {
		t.Fatal("New without a database succeeded")
	}
}
