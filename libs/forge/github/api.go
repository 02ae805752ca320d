package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	gh "github.com/google/go-github/v60/github"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/netguard"
)

// errTooMuch stops a raw download past the size limit.
var errTooMuch = errors.New("file larger than the limit")

// ReadFile returns the file at path in commit sha through the contents API
// (GET /repos/{owner}/{name}/contents/{path}?ref={sha}). A missing commit or
// file, or a directory, is forge.ErrNotFound; a file over Options.MaxFileSize is
// forge.ErrTooLarge. Files of more than 1 MiB, which the API answers without
// content, are downloaded raw, bounded.
func (f *Forge) ReadFile(ctx context.Context, repo, sha, path string) ([]byte, error) {
	sha = strings.ToLower(sha)
	if err := forge.ValidateSHA(sha); err != nil {
		return nil, err
	}
	if err := forge.ValidatePath(path); err != nil {
		return nil, err
	}
	owner, name, err := SplitRepository(repo)
	if err != nil {
		return nil, err
	}
	file, dir, resp, err := f.client.Repositories.GetContents(ctx, owner, name, path, &gh.RepositoryContentGetOptions{Ref: sha})
	if err != nil {
		return nil, f.apiError(fmt.Sprintf("read %s at %s in %s", path, sha, repo), resp, err)
	}
	if dir != nil || file == nil || file.GetType() != "file" {
		return nil, fmt.Errorf("%w: %s at commit %s of %s is not a file", forge.ErrNotFound, path, sha, repo)
	}
	if int64(file.GetSize()) > f.maxFileSize {
		return nil, fmt.Errorf("%w: %s at commit %s is %d bytes, the limit is %d", forge.ErrTooLarge, path, sha, file.GetSize(), f.maxFileSize)
	}
	if file.GetEncoding() != "none" {
		content, err := file.GetContent()
		if err != nil {
			return nil, fmt.Errorf("read %s at %s in %s: %s", path, sha, repo, forge.Bound(err.Error()))
		}
		return []byte(content), nil
	}
	return f.readRaw(ctx, owner, name, sha, path)
}

// readRaw downloads a file with the raw media type, stopping past the limit.
func (f *Forge) readRaw(ctx context.Context, owner, name, sha, path string) ([]byte, error) {
	u := fmt.Sprintf("repos/%s/%s/contents/%s?ref=%s", owner, name, escapePath(path), sha)
	req, err := f.client.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", path, sha, err)
	}
	req.Header.Set("Accept", "application/vnd.github.raw")
	out := &capped{max: f.maxFileSize}
	resp, err := f.client.Do(ctx, req, out)
	if errors.Is(err, errTooMuch) {
		return nil, fmt.Errorf("%w: %s at commit %s is larger than %d bytes", forge.ErrTooLarge, path, sha, f.maxFileSize)
	}
	if err != nil {
		return nil, f.apiError(fmt.Sprintf("read %s at %s in %s/%s", path, sha, owner, name), resp, err)
	}
	return out.buf, nil
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "%", "%25"), "?", "%3F")
		parts[i] = strings.ReplaceAll(parts[i], "#", "%23")
	}
	return strings.Join(parts, "/")
}

// capped collects at most max bytes and fails past them.
type capped struct {
	buf []byte
	max int64
}

func (c *capped) Write(p []byte) (int, error) {
	if int64(len(c.buf)+len(p)) > c.max {
		return 0, errTooMuch
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// ResolveRef turns a branch, tag, full ref or commit id into a commit id
// through GET /repos/{owner}/{name}/commits/{ref} (the sha media type).
func (f *Forge) ResolveRef(ctx context.Context, repo, ref string) (string, error) {
	if err := forge.ValidateRef(ref); err != nil {
		return "", err
	}
	owner, name, err := SplitRepository(repo)
	if err != nil {
		return "", err
	}
	sha, resp, err := f.client.Repositories.GetCommitSHA1(ctx, owner, name, ref, "")
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnprocessableEntity { // GitHub's answer to a ref that names nothing
			return "", fmt.Errorf("%w: no branch, tag or commit %q in %s", forge.ErrNotFound, forge.Bound(ref), repo)
		}
		return "", f.apiError(fmt.Sprintf("resolve %q in %s", ref, repo), resp, err)
	}
	sha = strings.ToLower(strings.TrimSpace(sha))
	if err := forge.ValidateSHA(sha); err != nil {
		return "", fmt.Errorf("resolve %q in %s: the API answered %q, not a commit id", forge.Bound(ref), repo, forge.Bound(sha))
	}
	return sha, nil
}

// CommitMessage returns the message of commit sha through GET
// /repos/{owner}/{name}/commits/{sha} (commit.message; per_page=1 keeps the
// answer's file list short), bounded by forge.BoundCommitMessage.
func (f *Forge) CommitMessage(ctx context.Context, repo, sha string) (string, error) {
	sha = strings.ToLower(sha)
	if err := forge.ValidateSHA(sha); err != nil {
		return "", err
	}
	owner, name, err := SplitRepository(repo)
	if err != nil {
		return "", err
	}
	c, resp, err := f.client.Repositories.GetCommit(ctx, owner, name, sha, &gh.ListOptions{PerPage: 1})
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnprocessableEntity || resp.StatusCode == http.StatusNotFound) {
			return "", fmt.Errorf("%w: no commit %s in %s", forge.ErrNotFound, sha, repo)
		}
		return "", f.apiError(fmt.Sprintf("read commit %s in %s", sha, repo), resp, err)
	}
	return forge.BoundCommitMessage(c.GetCommit().GetMessage()), nil
}

// Checkout fetches commit sha of repo from WebURL + "owner/name.git" over git
// smart HTTP into dir (see local.Forge.Checkout: a fresh working tree, HEAD
// detached, no remote configured, the connection pinned to checked addresses,
// redirects refused). The token reaches git only through its environment.
func (f *Forge) Checkout(ctx context.Context, repo, sha, dir string) error {
	owner, name, err := SplitRepository(repo)
	if err != nil {
		return err
	}
	git := f.git
	if f.app != nil {
		// The installation token lives an hour: this clone's git is made for it
		// and dropped with it.
		token, err := f.app.token(ctx, repo)
		if err != nil {
			return fmt.Errorf("clone %s: %w", repo, err)
		}
		if git, err = gitWithToken(f.gitOpts, token); err != nil {
			return err
		}
	}
	return git.Checkout(ctx, f.web.JoinPath(owner, name+".git").String(), sha, dir)
}

// SetStatus posts a commit status (POST /repos/{owner}/{name}/statuses/{sha}).
// An empty Context is StatusContext; the description is cut to GitHub's 140
// characters.
func (f *Forge) SetStatus(ctx context.Context, repo, sha string, st forge.Status) error {
	sha = strings.ToLower(sha)
	if err := forge.ValidateSHA(sha); err != nil {
		return err
	}
	owner, name, err := SplitRepository(repo)
	if err != nil {
		return err
	}
	switch st.State {
	case forge.StatusPending, forge.StatusSuccess, forge.StatusFailure, forge.StatusError:
	default:
		return fmt.Errorf("%w: status state %q is not pending, success, failure or error", forge.ErrInvalid, forge.Bound(string(st.State)))
	}
	if st.Context == "" {
		st.Context = StatusContext
	}
	rs := &gh.RepoStatus{State: gh.String(string(st.State)), Context: gh.String(st.Context)}
	if st.TargetURL != "" {
		rs.TargetURL = gh.String(st.TargetURL)
	}
	if st.Description != "" {
		rs.Description = gh.String(forge.Truncate(st.Description, 140))
	}
	_, resp, err := f.client.Repositories.CreateStatus(ctx, owner, name, sha, rs)
	if err != nil {
		return f.apiError(fmt.Sprintf("set status %s on %s in %s", st.State, sha, repo), resp, err)
	}
	return nil
}

// apiError turns a go-github error into a bounded one wrapping forge.ErrNotFound
// (404) or forge.ErrNotAllowed (an address netguard refused), naming what failed
// and GitHub's message but never a header or the token.
func (f *Forge) apiError(what string, resp *gh.Response, err error) error {
	return apiError(what, resp, err)
}

// ErrTokenRefused is GitHub answering 401: the token is wrong, revoked or expired.
var ErrTokenRefused = errors.New("GitHub refused the token")

func apiError(what string, resp *gh.Response, err error) error {
	if errors.Is(err, forge.ErrNotFound) { // the app is not installed on the repository
		return fmt.Errorf("%s: %w", what, err)
	}
	if errors.Is(err, netguard.ErrForbidden) {
		return fmt.Errorf("%w: %s: %s", forge.ErrNotAllowed, what, forge.Bound(err.Error()))
	}
	var er *gh.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		msg := er.Message
		switch code := er.Response.StatusCode; code {
		case http.StatusNotFound:
			return fmt.Errorf("%w: %s: GitHub answered 404 (no such repository, commit or file, or the token may not read it)", forge.ErrNotFound, what)
		case http.StatusUnauthorized:
			return fmt.Errorf("%s: %w (401): %s", what, ErrTokenRefused, forge.Bound(msg))
		default:
			return fmt.Errorf("%s: GitHub answered %d: %s", what, code, forge.Bound(msg))
		}
	}
	var rl *gh.RateLimitError
	if errors.As(err, &rl) {
		return fmt.Errorf("%s: GitHub's rate limit is exhausted until %s", what, rl.Rate.Reset.UTC().Format("15:04:05 MST"))
	}
	if resp != nil {
		return fmt.Errorf("%s: GitHub answered %d", what, resp.StatusCode)
	}
	return fmt.Errorf("%s: %s", what, forge.Bound(err.Error()))
}
