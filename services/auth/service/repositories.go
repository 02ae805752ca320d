package service

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/github"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The caller's GitHub repositories (GitHubService, docs/adr/0020-github-repositories.md):
// read with the caller's own GitHub token, which only this service holds.

// reasonForge is the ErrorInfo reason the gateway answers with 502 (GitHub failed); the
// project service marks its forge errors with the same (services/project/service/hooks.go).
const reasonForge = "FORGE_FAILED"

// Defaults of the repository list.
const (
	// DefaultRepositoryPage is GitHub's own default per_page.
	DefaultRepositoryPage = 30
	// repositoryTimeout bounds one listing call to GitHub.
	repositoryTimeout = 15 * time.Second
)

// Repositories serves GitHubService. Until SetSignIn is called (sign-in with GitHub not
// configured) every call is FailedPrecondition.
type Repositories struct {
	apiv1.UnimplementedGitHubServiceServer
	mu     sync.Mutex
	signIn *SignIn
	client *github.UserClient
}

// Register adds the service to a gRPC server.
func (r *Repositories) Register(g *grpc.Server) { apiv1.RegisterGitHubServiceServer(g, r) }

// SetSignIn enables the service: tokens from g, GitHub's API through client.
func (r *Repositories) SetSignIn(g *SignIn, client *github.UserClient) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.signIn, r.client = g, client
}

// ListGitHubRepositories lists one GitHub page of the repositories the caller administers.
func (r *Repositories) ListGitHubRepositories(ctx context.Context, req *apiv1.ListGitHubRepositoriesRequest) (*apiv1.ListGitHubRepositoriesResponse, error) {
	user, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	g, client := r.signIn, r.client
	r.mu.Unlock()
	if g == nil || client == nil {
		return nil, status.Error(codes.FailedPrecondition, "sign-in with GitHub is not configured on this server (--github-client-id): there is no GitHub token to list repositories with")
	}
	size := int(req.GetPageSize())
	if size < 0 || size > github.MaxPerPage {
		return nil, status.Errorf(codes.InvalidArgument, "page_size: 1 to %d, or 0 for %d", github.MaxPerPage, DefaultRepositoryPage)
	}
	if size == 0 {
		size = DefaultRepositoryPage
	}
	page := 1
	if t := req.GetPageToken(); t != "" {
		if page, size, err = parsePageToken(t); err != nil {
			return nil, status.Error(codes.InvalidArgument, "page_token: not a token this server issued")
		}
	}
	token, err := g.GitHubToken(ctx, user)
	if err != nil {
		return nil, githubTokenError(err)
	}
	ctx, cancel := context.WithTimeout(ctx, repositoryTimeout)
	defer cancel()
	repos, next, err := client.AdminRepositories(ctx, token, page, size)
	if err != nil {
		msg := stripToken(err, token)
		if errors.Is(err, github.ErrTokenRefused) {
			return nil, status.Errorf(codes.FailedPrecondition, "GitHub refused your GitHub token (revoked or expired): sign in again at /auth/github/login (%s)", msg)
		}
		return nil, forgeFailed("list your GitHub repositories: " + msg)
	}
	resp := &apiv1.ListGitHubRepositoriesResponse{}
	for _, rp := range repos {
		resp.Repositories = append(resp.Repositories, &apiv1.GitHubRepository{FullName: rp.FullName, Private: rp.Private,
			DefaultBranch: rp.DefaultBranch, HtmlUrl: rp.HTMLURL})
	}
	if next > page {
		resp.NextPageToken = pageToken(next, size)
	}
	return resp, nil
}

// githubTokenError is the answer when the caller's GitHub token cannot be had: a new
// sign-in is needed (400), or GitHub's token endpoint failed a refresh (502).
func githubTokenError(err error) error {
	var se *errSignIn
	switch {
	case errors.Is(err, ErrSignInAgain):
		return status.Errorf(codes.FailedPrecondition, "no usable GitHub token: sign in with GitHub at /auth/github/login (%s)", forge.Bound(err.Error()))
	case errors.As(err, &se) && se.code == http.StatusBadRequest:
		return status.Errorf(codes.FailedPrecondition, "GitHub refused to refresh your GitHub token: sign in again at /auth/github/login (%s)", forge.Bound(se.msg))
	case errors.As(err, &se):
		return forgeFailed("refresh your GitHub token: " + forge.Bound(se.msg))
	}
	return status.Errorf(codes.Internal, "your GitHub token: %v", err)
}

// forgeFailed is a 502 through the gateway.
func forgeFailed(msg string) error {
	st, err := status.New(codes.Unavailable, msg).WithDetails(&errdetails.ErrorInfo{Reason: reasonForge, Domain: "simpleci"})
	if err != nil {
		return status.Error(codes.Unavailable, msg)
	}
	return st.Err()
}

// pageToken is opaque to clients: GitHub's page and the per_page it belongs to (a
// later page must keep the page size, or GitHub's pages would not line up).
func pageToken(page, size int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("gh1:%d:%d", page, size)))
}

func parsePageToken(t string) (page, size int, err error) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return 0, 0, err
	}
	parts := strings.Split(string(b), ":")
	if len(parts) != 3 || parts[0] != "gh1" {
		return 0, 0, errors.New("bad token")
	}
	page, err1 := strconv.Atoi(parts[1])
	size, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || page < 1 || page > 1_000_000 || size < 1 || size > github.MaxPerPage {
		return 0, 0, errors.New("bad token")
	}
	return page, size, nil
}
