package githubtest_test

import (
	"context"
	"net/http"
	"testing"

	gh "github.com/google/go-github/v60/github"

	"github.com/simpleci/simpleci/libs/forge/github/githubtest"
)

func client(t *testing.T, srv *githubtest.Server, token string) *gh.Client {
	t.Helper()
	c, err := gh.NewClient(nil).WithAuthToken(token).WithEnterpriseURLs(srv.APIURL(), srv.APIURL())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHooks(t *testing.T) {
	srv := githubtest.New(t, "tok")
	srv.CreateRepo("octo/app")
	c := client(t, srv, "tok")
	ctx := context.Background()
	h, _, err := c.Repositories.CreateHook(ctx, "octo", "app", &gh.Hook{
		Events: []string{"push", "pull_request"}, Active: gh.Bool(true),
		Config: &gh.HookConfig{URL: gh.String("https://ci.example/api/v1/webhooks/github/p1"), ContentType: gh.String("json"), Secret: gh.String("s")},
	})
	if err != nil || h.GetID() == 0 {
		t.Fatalf("CreateHook = %v, %v", h, err)
	}
	list, _, err := c.Repositories.ListHooks(ctx, "octo", "app", nil)
	if err != nil || len(list) != 1 || list[0].GetID() != h.GetID() || list[0].GetConfig().GetSecret() == "s" {
		t.Fatalf("ListHooks = %v, %v", list, err)
	}
	if got := srv.Hooks("octo/app"); len(got) != 1 || got[0].Config["secret"] != "s" || len(got[0].Events) != 2 {
		t.Errorf("recorded hooks = %+v", got)
	}
	if _, err := c.Repositories.DeleteHook(ctx, "octo", "app", h.GetID()); err != nil {
		t.Fatal(err)
	}
	if got := srv.Hooks("octo/app"); len(got) != 0 {
		t.Errorf("hook not deleted: %+v", got)
	}
}

func TestTokenChecked(t *testing.T) {
	srv := githubtest.New(t, "tok")
	srv.CreateRepo("octo/app")
	_, resp, err := client(t, srv, "other").Repositories.ListHooks(context.Background(), "octo", "app", nil)
	if err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token: %v", err)
	}
	r, err := http.Get(srv.URL + "/octo/app.git/info/refs?service=git-upload-pack")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("git without a token: %d", r.StatusCode)
	}
}
