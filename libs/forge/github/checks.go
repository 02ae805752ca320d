package github

import (
	"context"
	"fmt"
	"strings"

	gh "github.com/google/go-github/v60/github"

	"github.com/simpleci/simpleci/libs/forge"
)

var _ forge.CheckReporter = (*Forge)(nil)

// GitHub's bounds on a check run's texts
// (https://docs.github.com/en/rest/checks/runs#create-a-check-run).
const (
	maxCheckSummary = 65535
	maxCheckTitle   = 255
)

// conclusions are the check run conclusions GitHub takes.
var conclusions = map[string]bool{
	"success": true, "failure": true, "cancelled": true, "timed_out": true,
	"neutral": true, "skipped": true, "action_required": true,
}

// ReportsChecks reports whether the forge is a GitHub App: GitHub lets only an
// app create check runs (a personal or OAuth token gets 403).
func (f *Forge) ReportsChecks() bool { return f.app != nil }

// CreateCheck creates a check run on commit sha (POST /repos/{o}/{r}/check-runs).
func (f *Forge) CreateCheck(ctx context.Context, repo, sha string, c forge.Check) (int64, error) {
	sha = strings.ToLower(sha)
	if err := forge.ValidateSHA(sha); err != nil {
		return 0, err
	}
	owner, name, err := SplitRepository(repo)
	if err != nil {
		return 0, err
	}
	if err := validCheck(c); err != nil {
		return 0, err
	}
	opts := gh.CreateCheckRunOptions{Name: c.Name, HeadSHA: sha, Status: gh.String(string(c.Status))}
	opts.DetailsURL, opts.ExternalID, opts.Conclusion, opts.StartedAt, opts.CompletedAt, opts.Output = checkFields(c)
	run, resp, err := f.client.Checks.CreateCheckRun(ctx, owner, name, opts)
	if err != nil {
		return 0, f.apiError(fmt.Sprintf("create check run on %s in %s", sha, repo), resp, err)
	}
	return run.GetID(), nil
}

// UpdateCheck updates check run id (PATCH /repos/{o}/{r}/check-runs/{id}).
func (f *Forge) UpdateCheck(ctx context.Context, repo string, id int64, c forge.Check) error {
	owner, name, err := SplitRepository(repo)
	if err != nil {
		return err
	}
	if err := validCheck(c); err != nil {
		return err
	}
	opts := gh.UpdateCheckRunOptions{Name: c.Name, Status: gh.String(string(c.Status))}
	// A check run's start is set when it is created; an update cannot move it.
	opts.DetailsURL, opts.ExternalID, opts.Conclusion, _, opts.CompletedAt, opts.Output = checkFields(c)
	_, resp, err := f.client.Checks.UpdateCheckRun(ctx, owner, name, id, opts)
	if err != nil {
		return f.apiError(fmt.Sprintf("update check run %d in %s", id, repo), resp, err)
	}
	return nil
}

func validCheck(c forge.Check) error {
	if c.Name == "" {
		return fmt.Errorf("%w: a check run needs a name", forge.ErrInvalid)
	}
	switch c.Status {
	case forge.CheckQueued, forge.CheckInProgress:
		if c.Conclusion != "" {
			return fmt.Errorf("%w: a %s check run has no conclusion", forge.ErrInvalid, c.Status)
		}
	case forge.CheckCompleted:
		if !conclusions[c.Conclusion] {
			return fmt.Errorf("%w: check run conclusion %q is not one GitHub takes", forge.ErrInvalid, forge.Bound(c.Conclusion))
		}
	default:
		return fmt.Errorf("%w: check run status %q is not queued, in_progress or completed", forge.ErrInvalid, forge.Bound(string(c.Status)))
	}
	return nil
}

// checkFields are the optional fields both requests share.
func checkFields(c forge.Check) (details, external, conclusion *string, started, completed *gh.Timestamp, out *gh.CheckRunOutput) {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return gh.String(s)
	}
	if !c.StartedAt.IsZero() {
		started = &gh.Timestamp{Time: c.StartedAt}
	}
	if !c.CompletedAt.IsZero() {
		completed = &gh.Timestamp{Time: c.CompletedAt}
	}
	if c.Title != "" || c.Summary != "" {
		title := c.Title
		if title == "" {
			title = c.Name
		}
		out = &gh.CheckRunOutput{Title: gh.String(forge.Truncate(title, maxCheckTitle)), Summary: gh.String(forge.Truncate(c.Summary, maxCheckSummary))}
	}
	return opt(c.DetailsURL), opt(c.ExternalID), opt(c.Conclusion), started, completed, out
}
