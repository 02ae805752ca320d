package e2e_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/forge/github/githubtest"
)

// TestGitHubAppDev runs `simpleci dev` as a GitHub App against the fake: the hook
// registered, the pipeline read, the clone made and the statuses posted with the
// installation's token, and each run shown as a check run that ends with the
// run's conclusion and its steps.
func TestGitHubAppDev(t *testing.T) {
	gh, _, shas := fakeGitHub(t)
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(keyFile, gh.EnableApp(4242), 0o600); err != nil {
		t.Fatal(err)
	}
	gh.Install("octo")
	gh.CreateRepo("elsewhere/app")
	a, p0 := startDevWith(t, nil, t.TempDir(), nil, "--tier", "standard:timeout=60s",
		"--github-url", gh.WebURL(), "--github-api-url", gh.APIURL(), "--github-app-id", "4242", "--github-app-key-file", keyFile,
		"--allow-repo-network", "127.0.0.1/32", "--public-url", "https://ci.example/")

	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "gh-app", "provider": "github", "repository": "octo/app",
		"events": []string{"push"}}, http.StatusOK, &p)
	if hooks := gh.Hooks("octo/app"); len(hooks) != 1 || hooks[0].Config["secret"] != p.WebhookSecret {
		t.Fatalf("hooks = %+v", hooks)
	}
	// A repository the app is not installed on: the hook cannot be made, and the
	// error says why.
	if code, b := a.do("POST", "/api/v1/projects", map[string]any{"name": "gh-else", "provider": "github", "repository": "elsewhere/app"}, nil); code < 400 || !strings.Contains(string(b), "not installed") {
		t.Errorf("project on a repository without the app: %d %s", code, b)
	}

	runFor := func(branch string) string {
		t.Helper()
		body := githubPush(t, "octo/app", branch, shas[branch])
		code, b := a.do("POST", p.WebhookPath, body, map[string]string{"X-Hub-Signature-256": sign(p.WebhookSecret, body),
			"X-GitHub-Event": "push", "X-GitHub-Delivery": "app-" + branch, "Content-Type": "application/json"})
		var out struct {
			RunIDs []string `json:"runIds"`
		}
		if json.Unmarshal(b, &out); code != http.StatusAccepted || len(out.RunIDs) != 1 {
			t.Fatalf("delivery: %d %s", code, b)
		}
		return out.RunIDs[0]
	}
	checkOf := func(sha string) githubtest.CheckRun {
		t.Helper()
		var c githubtest.CheckRun
		eventually(t, 30*time.Second, "a completed check run on "+sha, func() bool {
			for _, cr := range gh.CheckRuns() {
				if cr.HeadSHA == sha {
					c = cr
				}
			}
			return c.Status == "completed"
		})
		return c
	}

	good := runFor("main")
	if r := a.waitRun(good, 90*time.Second); r.Status != "succeeded" {
		t.Fatalf("run: %s (%s)", r.Status, r.Reason)
	}
	c := checkOf(shas["main"])
	if c.Conclusion != "success" || c.Name != "simpleci" || c.ExternalID != good || c.DetailsURL != "https://ci.example/api/v1/runs/"+good ||
		!strings.Contains(c.Output.Title, "succeeded") || !strings.Contains(c.Output.Summary, "| build | succeeded |") || c.Updates < 1 {
		t.Errorf("check run of the good commit: %+v", c)
	}
	bad := runFor("broken")
	if r := a.waitRun(bad, 90*time.Second); r.Status != "failed" {
		t.Fatalf("run: %s (%s)", r.Status, r.Reason)
	}
	if c := checkOf(shas["broken"]); c.Conclusion != "failure" || !strings.Contains(c.Output.Summary, "| breaks | failed |") {
		t.Errorf("check run of the broken commit: %+v", c)
	}
	// Statuses go on beside the check runs, with the same token.
	var states []string
	for _, s := range gh.Statuses() {
		if s.SHA == shas["main"] {
			states = append(states, s.State)
		}
	}
	if len(states) == 0 || states[len(states)-1] != "success" {
		t.Errorf("statuses of the good commit: %v", states)
	}
	// One installation token served the hook, both runs' reads, clones and reports.
	if n := gh.InstallationTokensMade(); n != 1 {
		t.Errorf("installation tokens made: %d, want 1", n)
	}
	// Neither the key nor an installation token is in a run's log or the process's log.
	code, runLog := a.do("GET", "/api/v1/runs/"+good+"/logs", nil, nil)
	if code != http.StatusOK || !strings.Contains(string(runLog), "built") {
		t.Fatalf("run log: %d %s", code, runLog)
	}
	p0.stop()
	logText, err := os.ReadFile(p0.log)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range [][]byte{logText, runLog} {
		if strings.Contains(string(text), "ghs_") || strings.Contains(string(text), "PRIVATE KEY") {
			t.Errorf("a credential of the app is in a log:\n%s", text)
		}
	}
}
