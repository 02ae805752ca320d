package github

import (
	"context"
	"errors"
	"fmt"
	"slices"

	gh "github.com/google/go-github/v60/github"

	"github.com/simpleci/simpleci/libs/forge"
)

var _ forge.HookManager = (*Forge)(nil)

// HookEvents maps a project's events to GitHub's webhook events: push and tag
// are both "push" deliveries, pull_request is "pull_request"; manual and
// schedule need no delivery. The result is sorted and without repeats.
func HookEvents(events []string) []string {
	var out []string
	for _, e := range events {
		switch e {
		case forge.EventPush, forge.EventTag:
			out = append(out, "push")
		case forge.EventPullRequest:
			out = append(out, "pull_request")
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// hookConfig is the hook as GitHub takes it: JSON deliveries, certificates
// checked, the secret signing each one.
func hookConfig(h forge.Hook) (*gh.Hook, error) {
	if h.URL == "" || h.Secret == "" {
		return nil, fmt.Errorf("%w: a hook needs a URL and a secret", forge.ErrInvalid)
	}
	return &gh.Hook{
		Name:   gh.String("web"),
		Active: gh.Bool(true),
		Events: HookEvents(h.Events),
		Config: &gh.HookConfig{
			URL: gh.String(h.URL), ContentType: gh.String("json"),
			Secret: gh.String(h.Secret), InsecureSSL: gh.String("0"),
		},
	}, nil
}

// CreateHook registers a repository webhook (POST /repos/{owner}/{name}/hooks).
// The token needs the admin:repo_hook scope (or the repository permission
// "webhooks: write" of a GitHub App). A project with no event GitHub delivers
// (only manual or schedule) gets an inactive hook, so that a later change of
// its events has a hook to update.
func (f *Forge) CreateHook(ctx context.Context, repo string, h forge.Hook) (int64, error) {
	owner, name, err := SplitRepository(repo)
	if err != nil {
		return 0, err
	}
	hook, err := hookConfig(h)
	if err != nil {
		return 0, err
	}
	activate(hook)
	got, resp, err := f.client.Repositories.CreateHook(ctx, owner, name, hook)
	if err != nil {
		return 0, f.apiError("register the webhook of "+repo, resp, err)
	}
	if got.GetID() <= 0 {
		return 0, fmt.Errorf("register the webhook of %s: GitHub answered no hook id", repo)
	}
	return got.GetID(), nil
}

// activate makes a hook with no GitHub event inactive (GitHub refuses an empty
// event list, and a hook for nothing should not deliver).
func activate(hook *gh.Hook) {
	if len(hook.Events) == 0 {
		hook.Events = []string{"push"}
		hook.Active = gh.Bool(false)
	}
}

// UpdateHook sets the hook's events, URL and secret (PATCH
// /repos/{owner}/{name}/hooks/{id}).
func (f *Forge) UpdateHook(ctx context.Context, repo string, id int64, h forge.Hook) error {
	owner, name, err := SplitRepository(repo)
	if err != nil {
		return err
	}
	hook, err := hookConfig(h)
	if err != nil {
		return err
	}
	activate(hook)
	hook.Name = nil
	_, resp, err := f.client.Repositories.EditHook(ctx, owner, name, id, hook)
	if err != nil {
		return f.apiError(fmt.Sprintf("update webhook %d of %s", id, repo), resp, err)
	}
	return nil
}

// DeleteHook removes the hook (DELETE /repos/{owner}/{name}/hooks/{id}); a hook
// (or repository) GitHub no longer knows is gone already.
func (f *Forge) DeleteHook(ctx context.Context, repo string, id int64) error {
	owner, name, err := SplitRepository(repo)
	if err != nil {
		return err
	}
	resp, err := f.client.Repositories.DeleteHook(ctx, owner, name, id)
	if err != nil {
		err = f.apiError(fmt.Sprintf("delete webhook %d of %s", id, repo), resp, err)
		if errors.Is(err, forge.ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

var _ forge.HookInspector = (*Forge)(nil)

// HookStatus reads hook id back (GET /repos/{owner}/{name}/hooks/{id}) for its
// "last_response": {code, status, message}, each null until the first delivery
// (https://docs.github.com/en/rest/repos/webhooks#get-a-repository-webhook).
func (f *Forge) HookStatus(ctx context.Context, repo string, id int64) (forge.HookStatus, error) {
	owner, name, err := SplitRepository(repo)
	if err != nil {
		return forge.HookStatus{}, err
	}
	h, resp, err := f.client.Repositories.GetHook(ctx, owner, name, id)
	if err != nil {
		return forge.HookStatus{}, f.apiError(fmt.Sprintf("read webhook %d of %s", id, repo), resp, err)
	}
	st := forge.HookStatus{Active: h.GetActive()}
	// go-github keeps last_response as a map of JSON values: numbers are float64.
	if c, ok := h.LastResponse["code"].(float64); ok && c >= 0 && c < 1000 {
		st.LastCode = int(c)
	}
	if s, ok := h.LastResponse["status"].(string); ok {
		st.LastStatus = forge.Bound(s)
	}
	if m, ok := h.LastResponse["message"].(string); ok {
		st.LastMessage = forge.Bound(m)
	}
	return st, nil
}
