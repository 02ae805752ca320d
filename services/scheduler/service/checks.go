package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/simpleci/simpleci/libs/forge"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
)

// Check runs: where the forge can show one (a GitHub App), the statuses follower
// also shows each run as a check run on its commit, named like the status:
// created "queued" at RunQueued, "in_progress" at RunStarted, and "completed" at
// RunFinished with a conclusion and a summary of the steps. The check run's id
// is kept in sched_checks; an update without one (its creation failed) creates it.

// maxStepReason bounds one step's reason in a summary (the whole is cut by the forge).
const maxStepReason = 200

// reportCheck shows the check run one of the run's events means.
func (s *Service) reportCheck(ctx context.Context, checks forge.CheckReporter, q *eventsv1.RunQueued, m proto.Message) error {
	c := forge.Check{Name: StatusContext, DetailsURL: s.runURL(q.RunId), ExternalID: q.RunId}
	switch ev := m.(type) {
	case *eventsv1.RunQueued:
		c.Status, c.Title = forge.CheckQueued, fmt.Sprintf("run #%d queued", q.Number)
	case *eventsv1.RunStarted:
		c.Status, c.Title, c.StartedAt = forge.CheckInProgress, fmt.Sprintf("run #%d running", q.Number), ev.GetStartedAt().AsTime()
	case *eventsv1.RunFinished:
		r, err := load(ctx, s.store, q.RunId)
		if err != nil {
			return err
		}
		c.Status, c.Conclusion = forge.CheckCompleted, checkConclusion(ev.Status)
		c.Title = fmt.Sprintf("run #%d %s", q.Number, ev.Status)
		c.Summary = checkSummary(r)
		c.StartedAt, c.CompletedAt = r.Started, ev.GetFinishedAt().AsTime()
	default:
		return nil
	}
	id, err := s.checkID(ctx, q.RunId)
	if err != nil {
		return err
	}
	if id != 0 {
		return retry(ctx, func(ctx context.Context) error { return checks.UpdateCheck(ctx, q.Repository, id, c) })
	}
	err = retry(ctx, func(ctx context.Context) error {
		id, err = checks.CreateCheck(ctx, q.Repository, q.Sha, c)
		return err
	})
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, s.db.Q(`INSERT INTO sched_checks (run_id, check_id) VALUES ($1, $2)
		ON CONFLICT (run_id) DO UPDATE SET check_id = excluded.check_id`), q.RunId, id)
	return err
}

// checkID is the run's check run id, 0 when it has none yet.
func (s *Service) checkID(ctx context.Context, runID string) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT check_id FROM sched_checks WHERE run_id = $1`), runID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return id, err
}

// checkConclusion maps a run's final status to a check run conclusion: a run
// that could not start (errored) is a failure, since GitHub has no "error".
func checkConclusion(status string) string {
	switch status {
	case domain.RunSucceeded:
		return "success"
	case "cancelled", "timed_out":
		return status
	}
	return "failure"
}

// checkSummary is the run's steps as a Markdown table, with the run's reason.
func checkSummary(r *domain.Run) string {
	var b strings.Builder
	if r.Reason != "" {
		fmt.Fprintf(&b, "%s\n\n", cell(r.Reason))
	}
	b.WriteString("| step | status | duration | |\n|---|---|---|---|\n")
	for _, st := range r.Steps {
		d := ""
		if !st.Started.IsZero() && !st.Finished.IsZero() {
			d = st.Finished.Sub(st.Started).Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(st.Name), st.Status, d, cell(forge.Truncate(st.Reason, maxStepReason)))
	}
	return b.String()
}

// cell makes text safe in a Markdown table cell: one line, pipes escaped, no HTML.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}
