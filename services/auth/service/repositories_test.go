package service_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/forge/github"
	"github.com/simpleci/simpleci/libs/forge/github/githubtest"
	"github.com/simpleci/simpleci/libs/platform/auth"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	. "github.com/simpleci/simpleci/services/auth/service"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestListGitHubRepositories: a signed-in user pages through the repositories they
// administer with their own GitHub token; a user without sign-in, a refused token and
// GitHub down each get the answer the API documents.
func TestListGitHubRepositories(t *testing.T) {
	r := newSignInRig(t, openSQLite(t))
	for _, name := range []string{"octo/a", "octo/b", "octo/c", "octo/d", "octo/e"} {
		r.gh.CreateRepo(name)
	}
	r.gh.SetRepo("octo/b", true, false) // read only: left out
	r.gh.SetRepo("octo/c", true, true)
	r.gh.Set(func(k *githubtest.Knobs, _ *githubtest.User) { k.MaxPerPage = 2 })
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	client, err := github.NewUserClient(github.Options{APIURL: r.gh.APIURL(), AllowNetworks: loopback})
	if err != nil {
		t.Fatal(err)
	}
	repos := &Repositories{}
	p := r.principal(r.signIn())
	ctx := auth.WithPrincipal(testCtx(t), p)

	if _, err := repos.ListGitHubRepositories(ctx, &apiv1.ListGitHubRepositoriesRequest{}); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "not configured") {
		t.Fatalf("without sign-in configured: %v", err)
	}
	repos.SetSignIn(r.g, client)

	var got []string
	req := &apiv1.ListGitHubRepositoriesRequest{PageSize: 5}
	pages := 0
	for {
		resp, err := repos.ListGitHubRepositories(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, rp := range resp.Repositories {
			got = append(got, rp.FullName)
			if rp.FullName == "octo/c" && (!rp.Private || rp.DefaultBranch != "main" || rp.HtmlUrl != r.gh.URL+"/octo/c") {
				t.Errorf("octo/c shown as %v", rp)
			}
		}
		if resp.NextPageToken == "" {
			break
		}
		req.PageToken = resp.NextPageToken
	}
	if strings.Join(got, " ") != "octo/a octo/c octo/d octo/e" || pages != 3 {
		t.Errorf("%d pages of %v, want 3 pages of octo/a, c, d, e", pages, got)
	}

	for _, tt := range []struct {
		name string
		ctx  func() (*apiv1.ListGitHubRepositoriesRequest, func())
		code codes.Code
		msg  string
		bad  bool // a 502 (FORGE_FAILED)
	}{
		{"bad token", func() (*apiv1.ListGitHubRepositoriesRequest, func()) {
			return &apiv1.ListGitHubRepositoriesRequest{PageToken: "nonsense"}, func() {}
		}, codes.InvalidArgument, "page_token", false},
		{"too large", func() (*apiv1.ListGitHubRepositoriesRequest, func()) {
			return &apiv1.ListGitHubRepositoriesRequest{PageSize: 101}, func() {}
		}, codes.InvalidArgument, "page_size", false},
		{"GitHub down", func() (*apiv1.ListGitHubRepositoriesRequest, func()) {
			r.gh.Set(func(k *githubtest.Knobs, _ *githubtest.User) { k.UserDown = true })
			return &apiv1.ListGitHubRepositoriesRequest{}, func() { r.gh.Set(func(k *githubtest.Knobs, _ *githubtest.User) { k.UserDown = false }) }
		}, codes.Unavailable, "503", true},
	} {
		req, undo := tt.ctx()
		_, err := repos.ListGitHubRepositories(ctx, req)
		undo()
		st := status.Convert(err)
		if st.Code() != tt.code || !strings.Contains(st.Message(), tt.msg) || forgeReason(st) != tt.bad {
			t.Errorf("%s: %v (forge failed %v)", tt.name, err, forgeReason(st))
		}
		for _, tok := range r.gh.IssuedTokens() {
			if err != nil && strings.Contains(err.Error(), tok) {
				t.Errorf("%s: the error shows the GitHub token", tt.name)
			}
		}
	}

	// The user revoked the app on GitHub: their token is refused (401), sign in again.
	r.gh.RevokeAccessTokens()
	if _, err := repos.ListGitHubRepositories(ctx, &apiv1.ListGitHubRepositoriesRequest{}); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "sign in again") || forgeReason(status.Convert(err)) {
		t.Errorf("a revoked GitHub token: %v", err)
	}

	// A user who never signed in with GitHub.
	local := auth.WithPrincipal(testCtx(t), &authv1.Principal{UserId: "u-local", OrgId: p.GetOrgId(), Login: "local", Role: "owner"})
	if _, err := repos.ListGitHubRepositories(local, &apiv1.ListGitHubRepositoriesRequest{}); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "sign in with GitHub") {
		t.Errorf("a user without GitHub: %v", err)
	}
}

func forgeReason(st *status.Status) bool {
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == "FORGE_FAILED" {
			return true
		}
	}
	return false
}
