package e2e_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/forge/github/githubtest"
)

// githubPayloads is the directory of GitHub's published deliveries (see its README.md).
const githubPayloads = "../../../libs/forge/github/testdata/payloads/"

// githubPush is GitHub's published push payload (a new branch) for repository repo,
// branch and commit sha.
func githubPush(t *testing.T, repo, branch, sha string) []byte {
	t.Helper()
	b, err := os.ReadFile(githubPayloads + "api.github.com/push/with-new-branch.payload.json")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "Codertocat/Hello-World", repo)
	s = strings.ReplaceAll(s, "6113728f27ae82c7b1a177c8d03f9e96e0adf246", sha)
	return []byte(strings.ReplaceAll(s, `"refs/heads/master"`, `"refs/heads/`+branch+`"`))
}

// fakeGitHub starts a fake GitHub with repository octo/app (branches main, feature and
// broken) and returns it, the token file and the commits.
func fakeGitHub(t *testing.T) (gh *githubtest.Server, tokenFile string, shas map[string]string) {
	const token = githubToken
	gh = githubtest.New(t, token)
	gh.CreateRepo("octo/app")
	shas = map[string]string{
		"main":    gh.Commit("octo/app", "main", map[string]string{".simpleci/pipeline.json": `{"steps": [{"name": "build", "run": "test -f .simpleci/pipeline.json && echo built"}]}`}),
		"feature": gh.Commit("octo/app", "feature", map[string]string{".simpleci/pipeline.json": `{"steps": [{"name": "probe", "run": "echo \"secret=[$PR_SECRET]\""}]}`}),
		"broken":  gh.Commit("octo/app", "broken", map[string]string{".simpleci/pipeline.json": `{"steps": [{"name": "breaks", "run": "exit 3"}]}`}),
	}
	tokenFile = filepath.Join(t.TempDir(), "github-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return gh, tokenFile, shas
}

const githubToken = "ghp_e2e_fake_token_0123456789"

// TestGitHubDev runs `simpleci dev` against a fake GitHub: a project of provider
// github, signed push deliveries as GitHub sends them, the pipeline read through the
// contents API, the checkout over smart HTTP with the token, and the commit statuses.
func TestGitHubDev(t *testing.T) {
	gh, tokenFile, shas := fakeGitHub(t)
	a, _ := startDevWith(t, nil, t.TempDir(), nil, "--tier", "standard:timeout=60s",
		"--github-url", gh.WebURL(), "--github-api-url", gh.APIURL(), "--github-token-file", tokenFile,
		"--allow-repo-network", "127.0.0.1/32", "--public-url", "https://ci.example/")
	githubFlow(t, a, gh, shas)
}

// TestGitHubServices is the whole GitHub flow with the six services apart on Kafka and
// PostgreSQL, configured through the environment, against the fake GitHub: a user signs
// in with GitHub through the auth process (as a browser, behind the public URL), lists
// the repositories they administer page by page with the session token, and creates the
// project from one; then githubFlow (hook, signed pushes, statuses, deletion) as that
// user. The gateway parses, the scheduler reads the pipeline and posts the statuses, the
// runner clones, each with the token.
func TestGitHubServices(t *testing.T) {
	gh, tokenFile, shas := fakeGitHub(t)
	gh.EnableOAuth(fakeClientID, fakeClientSecret, githubtest.User{ID: 9001, Login: "e2e-octocat"})
	gh.CreateRepo("octo/lib")
	gh.CreateRepo("octo/readonly")
	gh.SetRepo("octo/readonly", true, false)
	gh.Set(func(k *githubtest.Knobs, _ *githubtest.User) { k.MaxPerPage = 1 })
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "client-secret")
	if err := os.WriteFile(secretFile, []byte(fakeClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startClusterEnv(t, 1, []string{"SIMPLECI_GITHUB_URL=" + gh.WebURL(), "SIMPLECI_GITHUB_API_URL=" + gh.APIURL(),
		"SIMPLECI_GITHUB_TOKEN_FILE=" + tokenFile, "SIMPLECI_ALLOW_REPO_NETWORK=127.0.0.1/32", "SIMPLECI_PUBLIC_URL=https://ci.example/",
		"SIMPLECI_GITHUB_CLIENT_ID=" + fakeClientID, "SIMPLECI_GITHUB_CLIENT_SECRET_FILE=" + secretFile,
		"SIMPLECI_GITHUB_TOKEN_KEYRING=" + filepath.Join(dir, "github-tokens.keyring")},
		"--tier", "standard:timeout=60s", "--lease", "10s")

	// Before signing in with GitHub, the admin has no GitHub token: 400, saying so.
	if code, b := c.api.do("GET", "/api/v1/github/repositories", nil, nil); code != http.StatusBadRequest || !strings.Contains(string(b), "sign in with GitHub") {
		t.Errorf("repositories of a user without GitHub: %d %s", code, b)
	}
	// The browser reaches https://ci.example/auth/github/... at the gateway, which
	// forwards it to the auth process (--auth-http-url).
	_, _, session := signInBehind(t, "https://ci.example", strings.TrimPrefix(c.api.base, "http://"))
	user := &api{t: t, base: c.api.base, token: session}

	var names []string
	pages, token := 0, ""
	for {
		var page struct {
			Repositories []struct {
				FullName      string `json:"fullName"`
				Private       bool   `json:"private"`
				DefaultBranch string `json:"defaultBranch"`
				HTMLURL       string `json:"htmlUrl"`
			} `json:"repositories"`
			NextPageToken string `json:"nextPageToken"`
		}
		user.json("GET", "/api/v1/github/repositories?page_size=50&page_token="+token, nil, http.StatusOK, &page)
		pages++
		for _, r := range page.Repositories {
			names = append(names, r.FullName)
			if r.DefaultBranch != "main" || r.HTMLURL != gh.URL+"/"+r.FullName || r.Private {
				t.Errorf("repository shown as %+v", r)
			}
		}
		if page.NextPageToken == "" || pages > 5 {
			break
		}
		token = page.NextPageToken
	}
	// One repository per GitHub page (the fake's per_page cap); the read-only one is left out.
	if !slices.Equal(names, []string{"octo/app", "octo/lib"}) || pages != 3 {
		t.Fatalf("%d pages listing %v, want 3 pages listing octo/app and octo/lib", pages, names)
	}
	// The CLI lists every page.
	if out, err := runCLI(user.base, session, "repos", "list"); err != nil || !strings.Contains(out, "octo/app  ") ||
		!strings.Contains(out, "octo/lib  ") || strings.Contains(out, "octo/readonly") {
		t.Errorf("simpleci repos list: %v\n%s", err, out)
	}
	if code, b := user.do("GET", "/api/v1/github/repositories?page_token=%21%21", nil, nil); code != http.StatusBadRequest {
		t.Errorf("a bad page token: %d %s", code, b)
	}
	for _, tok := range gh.IssuedTokens() {
		if strings.Contains(strings.Join(names, " "), tok) {
			t.Fatal("the listing shows the GitHub token")
		}
	}
	githubFlow(t, user, gh, shas)
}

// signInBehind signs in with GitHub at public (the deployment's public URL) as a
// browser would, following redirects with a cookie jar, its requests for public's host
// sent to the auth process at authAddr (when set, as a reverse proxy would), and
// returns the token page and the session token it shows.
func signInBehind(t *testing.T, public, authAddr string) (*http.Response, []byte, string) {
	t.Helper()
	pub, err := url.Parse(public)
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	proxy := roundTripper(func(r *http.Request) (*http.Response, error) {
		if authAddr != "" && r.URL.Host == pub.Host {
			r = r.Clone(r.Context())
			r.URL.Scheme, r.URL.Host = "http", authAddr
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: proxy}
	resp, err := browser.Get(public + "/auth/github/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`<code id="token">(sci_[0-9a-f]+)</code>`).FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, page)
	}
	return resp, page, string(m[1])
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// githubFlow drives a SimpleCI configured for the fake GitHub gh.
func githubFlow(t *testing.T, a *api, gh *githubtest.Server, shas map[string]string) {
	const token = githubToken
	good, feature, bad := shas["main"], shas["feature"], shas["broken"]
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "gh-app", "provider": "github", "repository": "octo/app",
		"events": []string{"push", "pull_request"}}, http.StatusOK, &p)
	code, b := a.do("POST", "/api/v1/projects", map[string]any{"name": "gh-bad", "provider": "github", "repository": "not/a/repo"}, nil)
	if code != http.StatusBadRequest {
		t.Errorf("project with repository not/a/repo: %d %s", code, b)
	}
	checkHook(t, a, gh, p, []string{"pull_request", "push"})
	// The hook is live: GitHub (the fake) signs a ping with the secret it was given, the
	// gateway accepts it, and the project shows that delivery as GitHub reports it.
	hook := gh.Hooks("octo/app")[0]
	if lr := lastResponse(t, a, p); lr.Status != "unused" || lr.Code != 0 {
		t.Errorf("the hook before any delivery: %+v, want status unused", lr)
	}
	if code, b := gh.Deliver("octo/app", hook.ID, "ping", []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`), a.base); code != http.StatusOK {
		t.Errorf("GitHub's ping, signed with the secret GitHub holds: %d %s", code, b)
	}
	if lr := lastResponse(t, a, p); lr.Code != http.StatusOK || lr.Status != "active" || lr.Message != "OK" {
		t.Errorf("the hook after GitHub's ping: %+v, want 200 active OK", lr)
	}
	// A repository GitHub will not give a hook for: 502, saying so, and no project.
	code, b = a.do("POST", "/api/v1/projects", map[string]any{"name": "gh-none", "provider": "github", "repository": "octo/none"}, nil)
	if code != http.StatusBadGateway || !strings.Contains(string(b), "webhook") || strings.Contains(string(b), token) {
		t.Errorf("project of a repository without a hook: %d %s", code, b)
	}
	if code, b := a.do("GET", "/api/v1/projects/gh-none", nil, nil); code != http.StatusNotFound {
		t.Errorf("the project whose hook was refused: %d %s, want 404", code, b)
	}

	deliver := func(body []byte, delivery, signature string) (int, []byte) {
		return a.do("POST", p.WebhookPath, body, map[string]string{"X-Hub-Signature-256": signature,
			"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "Content-Type": "application/json"})
	}
	runOf := func(code int, b []byte) string {
		t.Helper()
		if code != http.StatusAccepted {
			t.Fatalf("delivery: %d %s", code, b)
		}
		var out struct {
			RunIDs []string `json:"runIds"`
		}
		json.Unmarshal(b, &out)
		if len(out.RunIDs) != 1 {
			t.Fatalf("delivery: want one run, got %s", b)
		}
		return out.RunIDs[0]
	}
	statesOf := func(sha string) ([]string, []githubtest.Status) {
		var states []string
		var all []githubtest.Status
		for _, s := range gh.Statuses() {
			if s.SHA == sha {
				states = append(states, s.State)
				all = append(all, s)
			}
		}
		return states, all
	}
	waitStatus := func(sha, final string) []githubtest.Status {
		t.Helper()
		var all []githubtest.Status
		eventually(t, 30*time.Second, "status "+final+" on "+sha, func() bool {
			var states []string
			states, all = statesOf(sha)
			return len(states) > 0 && states[len(states)-1] == final
		})
		return all
	}

	body := githubPush(t, "octo/app", "main", good)
	id := runOf(deliver(body, "d-good", sign(p.WebhookSecret, body)))
	if r := a.waitRun(id, 90*time.Second); r.Status != "succeeded" || r.Sha != good {
		t.Fatalf("run: %s (%s) sha %s", r.Status, r.Reason, r.Sha)
	}
	sts := waitStatus(good, "success")
	if sts[0].State != "pending" {
		t.Errorf("first status %q, want pending", sts[0].State)
	}
	for _, s := range sts {
		if s.Context != "simpleci" || s.TargetURL != "https://ci.example/api/v1/runs/"+id || s.Repo != "octo/app" {
			t.Errorf("status %+v: want context simpleci, the run's URL, repository octo/app", s)
		}
	}

	// A manual run of a branch: the ref resolved through the commits API.
	var manual run
	a.json("POST", "/api/v1/projects/gh-app/runs", map[string]string{"ref": "main"}, http.StatusOK, &manual)
	if r := a.waitRun(manual.ID, 90*time.Second); r.Status != "succeeded" || r.Sha != good {
		t.Fatalf("manual run: %s (%s) sha %s", r.Status, r.Reason, r.Sha)
	}

	// A redelivery (GitHub's "Redeliver": same delivery id, same body) starts nothing new.
	if again := runOf(deliver(body, "d-good", sign(p.WebhookSecret, body))); again != id {
		t.Errorf("redelivery started run %s, the first was %s", again, id)
	}
	if n := a.runCountAfter(p, 2); n != 2 {
		t.Errorf("%d runs after a redelivery, want 2 (the push and the manual run)", n)
	}

	// A failing pipeline: failure on its commit.
	body = githubPush(t, "octo/app", "broken", bad)
	if r := a.waitRun(runOf(deliver(body, "d-bad", sign(p.WebhookSecret, body))), 90*time.Second); r.Status != "failed" {
		t.Fatalf("failing run: %s (%s)", r.Status, r.Reason)
	}
	waitStatus(bad, "failure")

	// A bad signature: 401; a delivery for another repository: 400; a branch deletion: 200, nothing.
	if code, b := deliver(body, "d-sig", sign("wrong secret", body)); code != http.StatusUnauthorized {
		t.Errorf("bad signature: %d %s", code, b)
	}
	other := githubPush(t, "octo/other", "main", good)
	if code, b := deliver(other, "d-other", sign(p.WebhookSecret, other)); code != http.StatusBadRequest {
		t.Errorf("delivery for another repository: %d %s", code, b)
	}
	del, err := os.ReadFile(githubPayloads + "derived/push/derived-branch-deleted.json")
	if err != nil {
		t.Fatal(err)
	}
	del = []byte(strings.ReplaceAll(string(del), "Codertocat/Hello-World", "octo/app"))
	if code, b := deliver(del, "d-del", sign(p.WebhookSecret, del)); code != http.StatusOK {
		t.Errorf("branch deletion: %d %s", code, b)
	}
	if n := a.runCount(p); n != 3 {
		t.Errorf("%d runs, want 3", n)
	}
	// Pull requests as GitHub sends them: same repository and fork are told apart by the
	// payload, a fork's run gets no secret; a closed pull request starts nothing.
	a.json("PUT", "/api/v1/projects/gh-app/secrets/PR_SECRET", map[string]string{"value": "pr-secret-4711"}, http.StatusOK, nil)
	pull := func(fixture, delivery string) (int, []byte) {
		b, err := os.ReadFile(githubPayloads + fixture)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "Codertocat/Hello-World", "octo/app")
		body := []byte(strings.ReplaceAll(s, "ec26c3e57ca3a959ca5aad62de7213c562f8c821", feature))
		return a.do("POST", p.WebhookPath, body, map[string]string{"X-Hub-Signature-256": sign(p.WebhookSecret, body),
			"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": delivery, "Content-Type": "application/json"})
	}
	for _, tt := range []struct{ fixture, trust, secret string }{
		{"api.github.com/pull_request/opened.payload.json", "same_repository", "secret=[***]"},
		{"derived/pull_request/derived-synchronize-fork.json", "fork", "secret=[]"},
	} {
		id := runOf(pull(tt.fixture, "d-"+path.Base(tt.fixture)))
		r := a.waitRun(id, 90*time.Second)
		if r.Status != "succeeded" || r.Event != "pull_request" || r.Sha != feature {
			t.Fatalf("%s: run %s (%s) event %s sha %s", tt.fixture, r.Status, r.Reason, r.Event, r.Sha)
		}
		var shown struct {
			Trust string `json:"trust"`
		}
		a.json("GET", "/api/v1/runs/"+id, nil, http.StatusOK, &shown)
		if shown.Trust != tt.trust {
			t.Errorf("%s: trust %q, want %q", tt.fixture, shown.Trust, tt.trust)
		}
		if text, _ := a.logOf(id); !strings.Contains(text, tt.secret) {
			t.Errorf("%s: log %q, want %q", tt.fixture, text, tt.secret)
		}
	}
	waitStatus(feature, "success")
	if code, b := pull("api.github.com/pull_request/closed.payload.json", "d-closed"); code != http.StatusOK {
		t.Errorf("closed pull request: %d %s", code, b)
	}
	ping, err := os.ReadFile(githubPayloads + "api.github.com/ping/payload.json")
	if err != nil {
		t.Fatal(err)
	}
	code, b = a.do("POST", p.WebhookPath, ping, map[string]string{"X-Hub-Signature-256": sign(p.WebhookSecret, ping),
		"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d-ping", "Content-Type": "application/json"})
	if code != http.StatusOK || !strings.Contains(string(b), "ignored") {
		t.Errorf("ping: %d %s", code, b)
	}
	if n := a.runCount(p); n != 5 {
		t.Errorf("%d runs, want 5", n)
	}

	// The token never shows in the server's answers about the runs.
	_, b = a.do("GET", "/api/v1/runs/"+id+"/events", nil, nil)
	if strings.Contains(string(b), token) {
		t.Error("the run's events show the GitHub token")
	}

	// New events reach the hook; deleting the project removes it.
	a.json("PATCH", "/api/v1/projects/gh-app", map[string]any{"events": []string{"push", "tag", "manual"}}, http.StatusOK, nil)
	checkHook(t, a, gh, p, []string{"push"})
	a.json("DELETE", "/api/v1/projects/gh-app", nil, http.StatusOK, nil)
	if hooks := gh.Hooks("octo/app"); len(hooks) != 0 {
		t.Errorf("hooks after the project was deleted: %+v", hooks)
	}
}

// checkHook asserts that octo/app has exactly the hook of p: its webhook URL under
// --public-url, its secret, JSON, certificates checked, the GitHub events want; and
// that the project shows the hook's id but never its secret.
func checkHook(t *testing.T, a *api, gh *githubtest.Server, p project, want []string) {
	t.Helper()
	hooks := gh.Hooks("octo/app")
	if len(hooks) != 1 {
		t.Fatalf("hooks of octo/app: %+v, want one", hooks)
	}
	h := hooks[0]
	c := h.Config
	if c["url"] != "https://ci.example"+p.WebhookPath || c["secret"] != p.WebhookSecret || c["content_type"] != "json" ||
		c["insecure_ssl"] != "0" || !h.Active || !slices.Equal(h.Events, want) {
		t.Errorf("hook %+v: want url https://ci.example%s, the project's secret, json, events %v", h, p.WebhookPath, want)
	}
	var shown struct {
		Webhook struct {
			ID     string `json:"id"`
			Active bool   `json:"active"`
		} `json:"webhook"`
	}
	code, b := a.do("GET", "/api/v1/projects/"+p.ID, nil, nil)
	if err := json.Unmarshal(b, &shown); code != http.StatusOK || err != nil {
		t.Fatalf("GET project: %d %s", code, b)
	}
	if shown.Webhook.ID != strconv.FormatInt(h.ID, 10) || !shown.Webhook.Active || strings.Contains(string(b), p.WebhookSecret) {
		t.Errorf("project %s: want webhook {id %d, active} and no secret", b, h.ID)
	}
}

type hookResponse struct {
	Code    int    `json:"code"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// lastResponse is the project's webhook.lastResponse from GET /api/v1/projects/{id}.
func lastResponse(t *testing.T, a *api, p project) hookResponse {
	t.Helper()
	var shown struct {
		Webhook struct {
			LastResponse            *hookResponse `json:"lastResponse"`
			LastResponseUnavailable string        `json:"lastResponseUnavailable"`
		} `json:"webhook"`
	}
	a.json("GET", "/api/v1/projects/"+p.ID, nil, http.StatusOK, &shown)
	if shown.Webhook.LastResponse == nil {
		t.Fatalf("the project shows no last delivery: %q", shown.Webhook.LastResponseUnavailable)
	}
	return *shown.Webhook.LastResponse
}
