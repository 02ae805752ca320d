package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/sqldb"
)

// TestRepositoryBinding tries, from outside against `simpleci dev`, to bind projects to
// repositories a tenant must not reach: each is refused with its status and a message
// saying why, and nothing of a credential comes back.
func TestRepositoryBinding(t *testing.T) {
	a, _, data := startDevIn(t, t.TempDir())

	theirs, _ := gitRepo(t, map[string]string{"main2": `{"steps": [{"name": "x", "run": "true"}]}`})
	outside := filepath.Join(t.TempDir(), "outside")
	if out, err := exec.Command("git", "init", "-q", outside).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	escape := filepath.Join(repoDir(t), "escape")
	if err := os.Symlink(outside, escape); err != nil {
		t.Fatal(err)
	}
	// A project of another organisation bound to theirs (dev has one organisation: the
	// other's project is written to the project service's database as it would store it).
	// And a project of this organisation bound to /etc before repositories were checked:
	// the scheduler refuses to read it when a run starts.
	var demo struct {
		OrgID string `json:"orgId"`
	}
	a.json("GET", "/api/v1/projects/demo", nil, http.StatusOK, &demo)
	db, err := sqldb.Open(context.Background(), filepath.Join(data, "project.db"))
	if err != nil {
		t.Fatal(err)
	}
	insert := db.Q(`INSERT INTO projects (id, org_id, name, provider, repository, events, tier, webhook_secret, created_at, network)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	_, err = db.ExecContext(context.Background(), insert, "01otherorgproject", "01otherorg", "theirs", "local", theirs, "push", "standard", "x", time.Now().UnixNano(), "default")
	if err == nil {
		_, err = db.ExecContext(context.Background(), insert, "01legacyproject", demo.OrgID, "legacy", "local", "/etc", "manual", "standard", "x", time.Now().UnixNano(), "default")
	}
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a project bound to /etc before the check cannot run", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		var r run
		a.json("POST", "/api/v1/projects/legacy/runs", map[string]string{"ref": "main"}, http.StatusOK, &r)
		r = a.waitRun(r.ID, 30*time.Second)
		if r.Status != "errored" || !strings.Contains(r.Reason, "/etc is not under a repository directory") || len(r.Reason) > 512 ||
			strings.Contains(r.Reason, "fatal:") {
			t.Fatalf("run %s, reason %q: want errored, saying the path is not allowed, no git text", r.Status, r.Reason)
		}
	})

	refuseBindings(t, a, append([]bindingAttack{
		{"outside the roots", outside, http.StatusForbidden, "not under a repository directory"},
		{"symbolic link out of a root", escape, http.StatusForbidden, "symbolic link"},
		{"dot-dot", reposRoot + "/../" + filepath.Base(reposRoot), http.StatusBadRequest, `\"..\"`},
		{"another organisation's repository", theirs, http.StatusForbidden, "another organisation"},
		{"its git directory", filepath.Join(theirs, ".git"), http.StatusForbidden, "another organisation"},
	}, bindingAttacks...))
	// The demo repository and the directories of --local-repos stay usable.
	mine, _ := gitRepo(t, map[string]string{"main2": `{"steps": [{"name": "x", "run": "true"}]}`})
	a.json("POST", "/api/v1/projects", map[string]any{"name": "mine", "provider": "local", "repository": mine}, http.StatusOK, nil)
}

// bindingAttack is a repository a project must not be bound to, and the answer.
type bindingAttack struct {
	name, repo string
	status     int
	says       string
}

// bindingAttacks are refused by every deployment.
var bindingAttacks = []bindingAttack{
	{"etc", "/etc", http.StatusForbidden, "not under a repository directory"},
	{"loopback URL", "https://127.0.0.1:9/x", http.StatusForbidden, "127.0.0.1 is a loopback address"},
	{"metadata URL", "https://169.254.169.254/latest/meta-data", http.StatusForbidden, "link-local"},
	{"credentials in the URL", "https://user:secret@example.com/x", http.StatusBadRequest, "may not hold credentials"},
}

// refuseBindings tries to create a project on each repository of attacks.
func refuseBindings(t *testing.T, a *api, attacks []bindingAttack) {
	for i, tt := range attacks {
		t.Run(tt.name, func(t *testing.T) {
			a := &api{t: t, base: a.base, token: a.token}
			code, b := a.do("POST", "/api/v1/projects", map[string]any{"name": fmt.Sprintf("bind-%d", i),
				"provider": "local", "repository": tt.repo}, nil)
			if code != tt.status || !strings.Contains(string(b), tt.says) {
				t.Fatalf("%s: %d %s; want %d saying %q", tt.repo, code, b, tt.status, tt.says)
			}
			if strings.Contains(string(b), "user:secret") || strings.Contains(string(b), "01otherorg") || len(b) > 1024 {
				t.Fatalf("the answer shows too much: %s", b)
			}
		})
	}
}

// TestPullRequestTrust sends pull request deliveries from outside: one whose head is a
// fork and one the forge cannot place get neither the project's secret (the step prints
// it: empty) nor a network (only the loopback interface), whatever their payload claims;
// one within the repository gets both. The run shows its trust.
func TestPullRequestTrust(t *testing.T) {
	pullRequestTrust(t, startDev(t))
}

// trustSecret is the secret pullRequestTrust gives its project.
const trustSecret = "fork-must-never-see-this-4711"

func pullRequestTrust(t *testing.T, a *api) {
	const secret = trustSecret
	repo, shas := gitRepo(t, map[string]string{"pr": pipelineJSON(map[string]any{"name": "probe", "run": []string{
		`echo "secret=[$TRUST_SECRET]"`,
		`echo "interfaces=[$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' ')]"`}})})
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "trust", "provider": "local", "repository": repo,
		"events": []string{"push", "pull_request"}}, http.StatusOK, &p)
	a.json("PUT", "/api/v1/projects/trust/secrets/TRUST_SECRET", map[string]string{"value": secret}, http.StatusOK, nil)

	pr := func(head string, extra string) string {
		body := `{"event": "pull_request", "ref": "refs/heads/pr", "after": "` + shas["pr"] + `"` + extra
		if head != "" {
			body += `, "pull_request": {"head": {"repo": ` + head + `}, "base": {"repo": {"full_name": "acme/app"}}}`
		}
		body += `}`
		code, b := a.do("POST", p.WebhookPath, []byte(body), map[string]string{"X-Hub-Signature-256": sign(p.WebhookSecret, []byte(body)),
			"X-GitHub-Delivery": fmt.Sprintf("pr-%d", time.Now().UnixNano())})
		if code != http.StatusAccepted {
			t.Fatalf("pull request delivery: %d %s", code, b)
		}
		var resp struct {
			RunIDs []string `json:"runIds"`
		}
		json.Unmarshal(b, &resp)
		return resp.RunIDs[0]
	}
	for _, tt := range []struct {
		name, head, extra, trust string
		trusted                  bool
	}{
		{"from a fork", `{"full_name": "mallory/app"}`, "", "fork", false},
		{"head unknown, payload claims trust", "", `, "fork": false, "trust": "same_repository"`, "unknown", false},
		{"within the repository", `{"full_name": "acme/app"}`, "", "same_repository", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := &api{t: t, base: a.base, token: a.token}
			id := pr(tt.head, tt.extra)
			r := a.waitRun(id, 60*time.Second)
			if r.Status != "succeeded" {
				t.Fatalf("run %s (%s) %+v", r.Status, r.Reason, r.Steps)
			}
			var shown struct {
				Trust string `json:"trust"`
			}
			a.json("GET", "/api/v1/runs/"+id, nil, http.StatusOK, &shown)
			if shown.Trust != tt.trust {
				t.Errorf("the run shows trust %q, want %q", shown.Trust, tt.trust)
			}
			text, _ := a.logOf(id)
			if strings.Contains(text, secret) {
				t.Fatalf("the secret's value is in the log: %q", text)
			}
			onlyLoopback := strings.Contains(text, "interfaces=[lo ]")
			switch {
			case !tt.trusted && (!strings.Contains(text, "secret=[]") || !onlyLoopback):
				t.Fatalf("log %q: want no secret and only the loopback interface", text)
			case tt.trusted && (!strings.Contains(text, "secret=[***]") || onlyLoopback || !strings.Contains(text, "interfaces=[")):
				t.Fatalf("log %q: want the secret (masked) and a network", text)
			}
		})
	}
}
