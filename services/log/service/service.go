// Package service is the log service: it takes runners' log chunks over gRPC
// (RunnerLogService.AppendLogs, under the job's log grant), publishes them as LogEmitted
// on the bus and stores them from there (idempotent on run, attempt and sequence
// number), learns from RunFinished where a run's log ends, and serves stored logs and a
// live tail.
package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	"github.com/simpleci/simpleci/libs/platform/telemetry"
	"github.com/simpleci/simpleci/libs/platform/wake"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Consumer groups of the log service (permanent once deployed).
const (
	GroupChunks = "log-chunks"
	GroupRuns   = "log-runs"
)

// Service implements LogService.
type Service struct {
	apiv1.UnimplementedLogServiceServer
	runnerv1.UnimplementedRunnerLogServiceServer
	db     *sqldb.DB
	bus    bus.Bus
	log    *slog.Logger
	secret string

	stored wake.Keyed // per run: a chunk or the run's end was stored
}

// New returns the service over db, creating its tables. secret is the deployment secret
// (SIMPLECI_INTERNAL_TOKEN), under which the scheduler signs the log grants runners
// present to AppendLogs.
func New(ctx context.Context, db *sqldb.DB, b bus.Bus, secret string, log *slog.Logger) (*Service, error) {
	if db == nil || b == nil || secret == "" {
		return nil, errors.New("log: database, bus and the deployment secret are required")
	}
	if log == nil {
		log = slog.Default()
	}
	if _, err := db.ApplyMigrations(ctx, Schema); err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	return &Service{db: db, bus: b, secret: secret, log: log.With("service", "log")}, nil
}

// Register adds LogService and RunnerLogService to a gRPC server.
func (s *Service) Register(g *grpc.Server) {
	apiv1.RegisterLogServiceServer(g, s)
	runnerv1.RegisterRunnerLogServiceServer(g, s)
}

// A batch of AppendLogs holds at most maxBatch chunks (gRPC bounds its size: 4 MiB).
const maxBatch = 4096

// AppendLogs takes a batch of a run's log chunks from the runner holding its lease: the
// grant (issued by the scheduler with the job) must be valid and the caller's. The
// chunks are published as LogEmitted with the run, attempt, organisation, project and
// log cap of the grant, never of the caller's say, and stored by the chunk consumer
// (onChunk) as before: idempotent on run, attempt and sequence number, so a retried
// batch is stored once. The answer comes once the bus has every chunk of the batch.
func (s *Service) AppendLogs(ctx context.Context, req *runnerv1.AppendLogsRequest) (*runnerv1.AppendLogsResponse, error) {
	runner, ok := auth.Runner(ctx)
	if !ok {
		return nil, status.Error(codes.PermissionDenied, "only runners append logs, with their runner token")
	}
	g := req.GetGrant()
	if err := auth.VerifyLogGrant(s.secret, g, runner, time.Now()); err != nil {
		s.log.WarnContext(ctx, "log chunks refused", "runner", runner, "run", g.GetRunId(), "err", err)
		return nil, status.Errorf(codes.PermissionDenied, "append logs: %v", err)
	}
	telemetry.RunID(ctx, g.GetRunId())
	if len(req.GetChunks()) > maxBatch {
		return nil, status.Errorf(codes.InvalidArgument, "append logs: %d chunks in one batch, at most %d", len(req.GetChunks()), maxBatch)
	}
	msgs := make([]bus.Message, 0, len(req.GetChunks()))
	for i, c := range req.GetChunks() {
		if c.GetSequence() <= 0 || c.GetStepIndex() < -1 || streams[c.GetStream()] == "" {
			return nil, status.Errorf(codes.InvalidArgument, "append logs: chunk %d of the batch: sequence %d, step %d, stream %v: want a positive sequence, a step index from -1 (the run's own lines) and a stream (stdout, stderr, system)",
				i, c.GetSequence(), c.GetStepIndex(), c.GetStream())
		}
		ev := &eventsv1.LogEmitted{RunId: g.RunId, OrgId: g.OrgId, ProjectId: g.ProjectId, StepIndex: c.StepIndex,
			Sequence: c.Sequence, Stream: c.Stream, At: c.At, Data: c.Data, Attempt: g.Attempt, RunLogBytes: g.RunLogBytes}
		m, err := event.Encode(ChunkID(g.RunId, g.Attempt, c.Sequence), g.RunId, ev)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "append logs: encode chunk %d: %v", c.Sequence, err)
		}
		msgs = append(msgs, m)
	}
	if err := s.bus.Publish(ctx, event.TopicLogs, msgs...); err != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return nil, status.Errorf(codes.Unavailable, "append logs of run %s: publish: %v", g.RunId, err)
	}
	return &runnerv1.AppendLogsResponse{}, nil
}

// ChunkID is the bus message id of a chunk: one per run, attempt and sequence number.
func ChunkID(run string, attempt int32, seq int64) string {
	return fmt.Sprintf("%s-log-%d-%d", run, attempt, seq)
}

// Start subscribes to chunks and run ends; the subscriptions stop with ctx.
func (s *Service) Start(ctx context.Context) error {
	if err := s.bus.Subscribe(ctx, event.TopicLogs, GroupChunks, event.Consumer(event.On(s.onChunk))); err != nil {
		return fmt.Errorf("log: subscribe %s: %w", event.TopicLogs, err)
	}
	if err := s.bus.Subscribe(ctx, event.TopicRuns, GroupRuns, event.Consumer(event.On(s.onRunFinished))); err != nil {
		return fmt.Errorf("log: subscribe %s: %w", event.TopicRuns, err)
	}
	return nil
}

var streams = map[eventsv1.LogStream]string{
	eventsv1.LogStream_LOG_STREAM_STDOUT: "stdout",
	eventsv1.LogStream_LOG_STREAM_STDERR: "stderr",
	eventsv1.LogStream_LOG_STREAM_SYSTEM: "system",
}

func (s *Service) onChunk(ctx context.Context, c *eventsv1.LogEmitted) error {
	if c.RunId == "" || c.Sequence <= 0 {
		return nil
	}
	stored := -1 // bytes of the chunk this delivery stored (-1: none, a redelivery)
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		stored = -1
		data := c.Data
		capped := c.RunLogBytes > 0 && (c.Stream == eventsv1.LogStream_LOG_STREAM_STDOUT || c.Stream == eventsv1.LogStream_LOG_STREAM_STDERR)
		if capped {
			// The second line of defence: the runner cuts the run's output at its cap; a
			// chunk past it (a faulty runner) is kept empty, so the log stays whole.
			var stored int64
			err := tx.QueryRowContext(ctx, s.db.Q(`SELECT bytes FROM log_sizes WHERE run_id = ? AND attempt = ?`), c.RunId, attempt(c.Attempt)).Scan(&stored)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if stored+int64(len(data)) > c.RunLogBytes {
				s.log.WarnContext(ctx, "chunk past the run's log limit refused", "run", c.RunId, "seq", c.Sequence, "limit", c.RunLogBytes, "bytes", len(data))
				data = []byte{}
			}
		}
		res, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO log_chunks (run_id, attempt, seq, org_id, project_id, step, stream, at, data)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, attempt, seq) DO NOTHING`),
			c.RunId, attempt(c.Attempt), c.Sequence, c.OrgId, c.ProjectId, c.StepIndex, streams[c.Stream], c.At.AsTime().UnixNano(), data)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // a redelivery: counted already
		}
		stored = len(data)
		if !capped || len(data) == 0 {
			return nil
		}
		_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO log_sizes (run_id, attempt, bytes) VALUES (?, ?, ?)
			ON CONFLICT (run_id, attempt) DO UPDATE SET bytes = log_sizes.bytes + excluded.bytes`), c.RunId, attempt(c.Attempt), len(data))
		return err
	})
	if err != nil {
		return event.Transient(ctx, fmt.Errorf("store chunk %s/%d: %w", c.RunId, c.Sequence, err), s.db.PingContext)
	}
	if stored >= 0 {
		countChunk(streams[c.Stream], stored)
	}
	s.stored.Notify(c.RunId)
	return nil
}

func (s *Service) onRunFinished(ctx context.Context, f *eventsv1.RunFinished) error {
	_, err := s.db.ExecContext(ctx, s.db.Q(`INSERT INTO log_runs (run_id, org_id, attempt, last_seq) VALUES (?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING`),
		f.RunId, f.OrgId, attempt(f.Attempt), f.LastLogSequence)
	if err != nil {
		return event.Transient(ctx, fmt.Errorf("record end of run %s: %w", f.RunId, err), s.db.PingContext)
	}
	s.stored.Notify(f.RunId)
	return nil
}

// A page of GetLogs (and a batch of TailLogs) holds at most maxPage chunks and at most
// maxPageBytes of output (a single larger chunk excepted; the engine's are at most
// 64 KiB), well under the gRPC message limit (4 MiB); clients page with after.
const (
	maxPage      = 1000
	maxPageBytes = 1 << 20
)

// attempt maps the zero value of older events to the first attempt.
func attempt(a int32) int32 { return max(a, 1) }

// latestAttempt is the run's newest attempt with output or with a recorded end.
func (s *Service) latestAttempt(ctx context.Context, org, run string) (int32, error) {
	var a sql.NullInt32
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT MAX(a) FROM (
		SELECT MAX(attempt) AS a FROM log_chunks WHERE run_id = ? AND org_id = ?
		UNION ALL SELECT attempt FROM log_runs WHERE run_id = ? AND org_id = ?) x`), run, org, run, org).Scan(&a)
	return max(a.Int32, 1), err
}

// chunks returns a page of the chunks of a run's attempt after a sequence number (see
// maxPage), and whether more follow it. A run that was requeued after losing its runner
// shows the output of its latest attempt. The page is chosen by the chunks' sizes
// first, so the data read is what the page returns.
func (s *Service) chunks(ctx context.Context, org, run string, att int32, after int64, step *int32) ([]*apiv1.LogChunk, bool, error) {
	where := ` FROM log_chunks WHERE run_id = ? AND org_id = ? AND attempt = ? AND seq > ?`
	args := []any{run, org, att, after}
	if step != nil {
		where += ` AND step = ?`
		args = append(args, *step)
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT seq, length(data)`+where+` ORDER BY seq LIMIT ?`), append(args, maxPage+1)...)
	if err != nil {
		return nil, false, err
	}
	var last int64
	var n, size int64
	more := false
	for rows.Next() {
		var seq, length int64
		if err := rows.Scan(&seq, &length); err != nil {
			rows.Close()
			return nil, false, err
		}
		if n == maxPage || (n > 0 && size+length > maxPageBytes) {
			more = true
			break
		}
		last, n, size = seq, n+1, size+length
	}
	rows.Close()
	if err := rows.Err(); err != nil || n == 0 {
		return nil, false, err
	}
	rows, err = s.db.QueryContext(ctx, s.db.Q(`SELECT seq, step, stream, at, data`+where+` AND seq <= ? ORDER BY seq`), append(args, last)...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	out := make([]*apiv1.LogChunk, 0, n)
	for rows.Next() {
		var c apiv1.LogChunk
		var at int64
		var data []byte
		if err := rows.Scan(&c.Sequence, &c.Step, &c.Stream, &at, &data); err != nil {
			return nil, false, err
		}
		c.Time = timestamppb.New(time.Unix(0, at))
		c.Text = strings.ToValidUTF8(string(data), "\uFFFD")
		c.Attempt = att
		out = append(out, &c)
	}
	return out, more, rows.Err()
}

// complete reports whether the run ended with attempt att and every chunk of that
// attempt up to its last is stored.
func (s *Service) complete(ctx context.Context, org, run string, att int32) (bool, error) {
	var last int64
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT last_seq FROM log_runs WHERE run_id = ? AND org_id = ? AND attempt = ?`), run, org, att).Scan(&last)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return false, err
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM log_chunks WHERE run_id = ? AND attempt = ? AND seq <= ?`), run, att, last).Scan(&n); err != nil {
		return false, err
	}
	return n == last, nil
}

// GetLogs returns stored chunks in order.
func (s *Service) GetLogs(ctx context.Context, req *apiv1.GetLogsRequest) (*apiv1.GetLogsResponse, error) {
	org, err := auth.RequireOrg(ctx)
	if err != nil {
		return nil, err
	}
	var step *int32
	if req.Step != nil {
		v := req.GetStep()
		step = &v
	}
	att, err := s.latestAttempt(ctx, org, req.GetRun())
	if err != nil {
		return nil, sqldb.Status(ctx, "get logs", err)
	}
	chunks, more, err := s.chunks(ctx, org, req.GetRun(), att, req.GetAfter(), step)
	if err != nil {
		return nil, sqldb.Status(ctx, "get logs", err)
	}
	resp := &apiv1.GetLogsResponse{Chunks: chunks}
	if more {
		resp.NextAfter = chunks[len(chunks)-1].Sequence
		return resp, nil
	}
	resp.Complete, err = s.complete(ctx, org, req.GetRun(), att)
	if err != nil {
		return nil, sqldb.Status(ctx, "get logs", err)
	}
	return resp, nil
}

// TailLogs sends chunks as they are stored and returns once the log is complete.
func (s *Service) TailLogs(req *apiv1.TailLogsRequest, stream grpc.ServerStreamingServer[apiv1.LogChunk]) error {
	ctx := stream.Context()
	org, err := auth.RequireOrg(ctx)
	if err != nil {
		return err
	}
	after := req.GetAfter()
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	release := func() {}
	defer func() { release() }()
	var att int32
	for {
		release()
		var sig <-chan struct{}
		sig, release = s.stored.Wait(req.GetRun())
		latest, err := s.latestAttempt(ctx, org, req.GetRun())
		if err != nil {
			return sqldb.Status(ctx, "tail logs", err)
		}
		if att != 0 && latest != att {
			// The run was requeued: its output starts again under the new attempt.
			after = 0
		}
		att = latest
		chunks, more, err := s.chunks(ctx, org, req.GetRun(), att, after, nil)
		if err != nil {
			return sqldb.Status(ctx, "tail logs", err)
		}
		for _, c := range chunks {
			if err := stream.Send(c); err != nil {
				return err
			}
			after = c.Sequence
		}
		if more {
			continue
		}
		done, err := s.complete(ctx, org, req.GetRun(), att)
		if err != nil {
			return sqldb.Status(ctx, "tail logs", err)
		}
		if done {
			if rest, _, err := s.chunks(ctx, org, req.GetRun(), att, after, nil); err == nil && len(rest) == 0 {
				return nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-sig:
		case <-poll.C: // chunks stored by another replica
		}
	}
}
