package githubtest_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
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

// TestHookLastResponse: a new hook's last_response is "unused"; a delivery signed with the
// hook's secret reaches the target and its answer becomes the hook's last_response.
func TestHookLastResponse(t *testing.T) {
	srv := githubtest.New(t, "tok")
	srv.CreateRepo("octo/app")
	c := client(t, srv, "tok")
	ctx := context.Background()
	var got struct{ sig, event string }
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.sig, got.event = r.Header.Get("X-Hub-Signature-256"), r.Header.Get("X-GitHub-Event")
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(target.Close)
	h, _, err := c.Repositories.CreateHook(ctx, "octo", "app", &gh.Hook{Events: []string{"push"}, Active: gh.Bool(true),
		Config: &gh.HookConfig{URL: gh.String("https://ci.example/hook/1"), ContentType: gh.String("json"), Secret: gh.String("s3cret")}})
	if err != nil {
		t.Fatal(err)
	}
	fresh, _, err := c.Repositories.GetHook(ctx, "octo", "app", h.GetID())
	if err != nil || fresh.LastResponse["status"] != "unused" || fresh.LastResponse["code"] != nil {
		t.Fatalf("new hook: %v %v", fresh.LastResponse, err)
	}
	body := []byte(`{"zen":"hi"}`)
	if code, _ := srv.Deliver("octo/app", h.GetID(), "ping", body, target.URL); code != http.StatusAccepted {
		t.Fatalf("delivery answered %d", code)
	}
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write(body)
	if got.sig != "sha256="+hex.EncodeToString(mac.Sum(nil)) || got.event != "ping" {
		t.Errorf("delivered %+v", got)
	}
	after, _, err := c.Repositories.GetHook(ctx, "octo", "app", h.GetID())
	if err != nil || after.LastResponse["code"] != float64(202) || after.LastResponse["status"] != "active" {
		t.Fatalf("after a delivery: %v %v", after.LastResponse, err)
	}
}

// TestUserRepos pages GET /user/repos through go-github, following its Link header.
func TestUserRepos(t *testing.T) {
	srv := githubtest.New(t, "tok")
	for _, r := range []string{"octo/c", "octo/a", "octo/b"} {
		srv.CreateRepo(r)
	}
	srv.SetRepo("octo/b", true, false)
	srv.Set(func(k *githubtest.Knobs, _ *githubtest.User) { k.MaxPerPage = 2 })
	c := client(t, srv, "tok")
	opts := &gh.RepositoryListByAuthenticatedUserOptions{ListOptions: gh.ListOptions{PerPage: 50}}
	var names []string
	var pages int
	for {
		repos, resp, err := c.Repositories.ListByAuthenticatedUser(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range repos {
			names = append(names, fmt.Sprintf("%s:%v:%v", r.GetFullName(), r.GetPrivate(), r.GetPermissions()["admin"]))
		}
		if resp.NextPage == 0 {
			if resp.PrevPage != 1 || resp.FirstPage != 1 {
				t.Errorf("last page: prev %d first %d", resp.PrevPage, resp.FirstPage)
			}
			break
		}
		if resp.LastPage != 2 {
			t.Errorf("first page: last %d", resp.LastPage)
		}
		opts.Page = resp.NextPage
	}
	if want := "octo/a:false:true octo/b:true:false octo/c:false:true"; strings.Join(names, " ") != want || pages != 2 {
		t.Errorf("%d pages %v, want 2 pages %s", pages, names, want)
	}
}

// TestOAuthFlow: the web flow's code is good once; the token it gives reads /user.
func TestOAuthFlow(t *testing.T) {
	srv := githubtest.New(t, "tok")
	srv.EnableOAuth("cid", "csecret", githubtest.User{ID: 7, Login: "octocat"})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(srv.URL + "/login/oauth/authorize?client_id=cid&state=xyz&redirect_uri=" + url.QueryEscape("https://ci.example/cb"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("state") != "xyz" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %d %s", resp.StatusCode, loc)
	}
	exchange := func(code string) map[string]any {
		req, _ := http.NewRequest("POST", srv.URL+"/login/oauth/access_token",
			strings.NewReader(url.Values{"client_id": {"cid"}, "client_secret": {"csecret"}, "code": {code}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return out
	}
	tok := exchange(loc.Query().Get("code"))
	if tok["access_token"] == nil {
		t.Fatalf("exchange: %v", tok)
	}
	if again := exchange(loc.Query().Get("code")); again["error"] != "bad_verification_code" {
		t.Errorf("a spent code: %v", again)
	}
	u, _, err := client(t, srv, tok["access_token"].(string)).Users.Get(context.Background(), "")
	if err != nil || u.GetID() != 7 || u.GetLogin() != "octocat" {
		t.Fatalf("GET /user: %v %v", u, err)
	}
}
