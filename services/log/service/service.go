// Package service is the log service: it stores the LogEmitted chunks runners publish
// (idempotent on run and sequence number), learns from RunFinished where a run's log
// ends, and serves stored logs and a live tail.
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
	"github.com/simpleci/simpleci/libs/platform/wake"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"google.golang.org/grpc"
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
	db  *sqldb.DB
	bus bus.Bus
	log *slog.Logger

	stored wake.Signal // a chunk or a run's end was stored
}

// New returns the service over db, creating its tables.
func New(ctx context.Context, db *sqldb.DB, b bus.Bus, log *slog.Logger) (*Service, error) {
	if db == nil || b == nil {
		return nil, errors.New("log: database and bus are required")
	}
	if log == nil {
		log = slog.Default()
	}
	if _, err := db.ApplyMigrations(ctx, Schema); err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	return &Service{db: db, bus: b, log: log.With("service", "log")}, nil
}

// Register adds LogService to a gRPC server.
func (s *Service) Register(g *grpc.Server) { apiv1.RegisterLogServiceServer(g, s) }

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
	_, err := s.db.ExecContext(ctx, s.db.Q(`INSERT INTO log_chunks (run_id, attempt, seq, org_id, project_id, step, stream, at, data)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, attempt, seq) DO NOTHING`),
		c.RunId, attempt(c.Attempt), c.Sequence, c.OrgId, c.ProjectId, c.StepIndex, streams[c.Stream], c.At.AsTime().UnixNano(), c.Data)
	if err != nil {
		return event.Transient(ctx, fmt.Errorf("store chunk %s/%d: %w", c.RunId, c.Sequence, err), s.db.PingContext)
	}
	s.stored.Notify()
	return nil
}

func (s *Service) onRunFinished(ctx context.Context, f *eventsv1.RunFinished) error {
	_, err := s.db.ExecContext(ctx, s.db.Q(`INSERT INTO log_runs (run_id, org_id, attempt, last_seq) VALUES (?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING`),
		f.RunId, f.OrgId, attempt(f.Attempt), f.LastLogSequence)
	if err != nil {
		return event.Transient(ctx, fmt.Errorf("record end of run %s: %w", f.RunId, err), s.db.PingContext)
	}
	s.stored.Notify()
	return nil
}

// maxPage bounds the chunks one GetLogs returns; clients page with after.
const maxPage = 1000

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

// chunks returns the chunks of a run's attempt after a sequence number. A run that was
// requeued after losing its runner shows the output of its latest attempt.
func (s *Service) chunks(ctx context.Context, org, run string, att int32, after int64, step *int32, limit int) ([]*apiv1.LogChunk, error) {
	q := `SELECT seq, step, stream, at, data FROM log_chunks WHERE run_id = ? AND org_id = ? AND attempt = ? AND seq > ?`
	args := []any{run, org, att, after}
	if step != nil {
		q += ` AND step = ?`
		args = append(args, *step)
	}
	q += ` ORDER BY seq LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, s.db.Q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*apiv1.LogChunk
	for rows.Next() {
		var c apiv1.LogChunk
		var at int64
		var data []byte
		if err := rows.Scan(&c.Sequence, &c.Step, &c.Stream, &at, &data); err != nil {
			return nil, err
		}
		c.Time = timestamppb.New(time.Unix(0, at))
		c.Text = strings.ToValidUTF8(string(data), "\uFFFD")
		c.Attempt = att
		out = append(out, &c)
	}
	return out, rows.Err()
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
	chunks, err := s.chunks(ctx, org, req.GetRun(), att, req.GetAfter(), step, maxPage)
	if err != nil {
		return nil, sqldb.Status(ctx, "get logs", err)
	}
	done, err := s.complete(ctx, org, req.GetRun(), att)
	if err != nil {
		return nil, sqldb.Status(ctx, "get logs", err)
	}
	if len(chunks) == maxPage {
		done = false
	}
	return &apiv1.GetLogsResponse{Chunks: chunks, Complete: done}, nil
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
	var att int32
	for {
		sig := s.stored.Wait()
		latest, err := s.latestAttempt(ctx, org, req.GetRun())
		if err != nil {
			return sqldb.Status(ctx, "tail logs", err)
		}
		if att != 0 && latest != att {
			// The run was requeued: its output starts again under the new attempt.
			after = 0
		}
		att = latest
		chunks, err := s.chunks(ctx, org, req.GetRun(), att, after, nil, maxPage)
		if err != nil {
			return sqldb.Status(ctx, "tail logs", err)
		}
		for _, c := range chunks {
			if err := stream.Send(c); err != nil {
				return err
			}
			after = c.Sequence
		}
		if len(chunks) == maxPage {
			continue
		}
		done, err := s.complete(ctx, org, req.GetRun(), att)
		if err != nil {
			return sqldb.Status(ctx, "tail logs", err)
		}
		if done {
			more, err := s.chunks(ctx, org, req.GetRun(), att, after, nil, 1)
			if err == nil && len(more) == 0 {
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
