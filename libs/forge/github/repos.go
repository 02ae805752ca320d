package github

import (
	"context"
	"errors"
	"fmt"

	gh "github.com/google/go-github/v60/github"
)

// Repository is a repository a user may administer, as the repository list shows it.
type Repository struct {
	FullName      string
	Private       bool
	DefaultBranch string
	HTMLURL       string
}

// UserClient reads GitHub on behalf of users, each call with the user's own token
// (from sign-in), through the same guarded HTTP client as the forge (netguard,
// deadlines, redirects to the API's host only). It is safe for concurrent use.
type UserClient struct {
	client *gh.Client
}

// NewUserClient returns a client for the API at opts.APIURL; opts.Token is not used
// (each call brings the user's), and the web URL and git options do not apply.
func NewUserClient(opts Options) (*UserClient, error) {
	api, err := baseURL("API URL", opts.APIURL, DefaultAPIURL)
	if err != nil {
		return nil, fmt.Errorf("github: %w", err)
	}
	if opts.Timeout < 0 {
		return nil, errors.New("github: the timeout must not be negative")
	}
	opts.Token, opts.AppID, opts.AppKey = "", 0, nil
	client, _, err := newClient(api, opts)
	if err != nil {
		return nil, fmt.Errorf("github: %w", err)
	}
	return &UserClient{client: client}, nil
}

// MaxPerPage is the largest page GitHub serves (per_page).
const MaxPerPage = 100

// AdminRepositories reads page (from 1) of the repositories token's user has
// explicit access to, per_page perPage (at most MaxPerPage), sorted by full name
// (GET /user/repos, https://docs.github.com/en/rest/repos/repos#list-repositories-for-the-authenticated-user),
// and keeps those the user administers (permissions.admin: registering a webhook
// needs it). next is the following page as GitHub's Link header names it, 0 after
// the last. A page may therefore hold fewer than perPage repositories, or none,
// and still have a next.
func (c *UserClient) AdminRepositories(ctx context.Context, token string, page, perPage int) (repos []Repository, next int, err error) {
	if token == "" {
		return nil, 0, errors.New("list GitHub repositories: no token")
	}
	perPage = min(max(perPage, 1), MaxPerPage)
	list, resp, err := c.client.WithAuthToken(token).Repositories.ListByAuthenticatedUser(ctx, &gh.RepositoryListByAuthenticatedUserOptions{
		Affiliation: "owner,collaborator,organization_member", Sort: "full_name", Direction: "asc",
		ListOptions: gh.ListOptions{Page: max(page, 1), PerPage: perPage},
	})
	if err != nil {
		return nil, 0, apiError("list the user's GitHub repositories", resp, err)
	}
	for _, r := range list {
		if !r.GetPermissions()["admin"] || r.GetFullName() == "" {
			continue
		}
		repos = append(repos, Repository{FullName: r.GetFullName(), Private: r.GetPrivate(),
			DefaultBranch: r.GetDefaultBranch(), HTMLURL: r.GetHTMLURL()})
	}
	return repos, resp.NextPage, nil
}
