package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// payloadExpectation is an entry of the payloads' expected.json (see its README): the
// trigger a delivery makes, or Ignored (answered 200) and why.
type payloadExpectation struct {
	Event   string `json:"event"`
	Ref     string `json:"ref"`
	SHA     string `json:"sha"`
	Trust   string `json:"trust"`
	Ignored string `json:"ignored"`
}

// exampleSHAs are the commit ids of GitHub's published examples: the push's, the pull
// request's on github.com and on GitHub Enterprise Server.
var exampleSHAs = []string{"6113728f27ae82c7b1a177c8d03f9e96e0adf246", "ec26c3e57ca3a959ca5aad62de7213c562f8c821", "14977a7b5485400124827221a04bfb474bcd72d1"}

// forFakeRepo rewrites one of GitHub's example bodies for the fake GitHub: the example
// repository Codertocat/Hello-World (full_name and the URLs naming it, so the base and,
// for a pull request of the same repository, the head) becomes repo, and the example
// commit ids become sha, a commit of repo. Nothing else changes: a fork stays
// Octocat-fork/Hello-World, an annotated tag's object id stays in "after".
func forFakeRepo(body []byte, repo, sha string) []byte {
	s := strings.ReplaceAll(string(body), "Codertocat/Hello-World", repo)
	for _, example := range exampleSHAs {
		s = strings.ReplaceAll(s, example, sha)
	}
	return []byte(s)
}

// TestGitHubPayloads posts every delivery of libs/forge/github/testdata/payloads (all of
// GitHub's published push, pull_request and ping examples and the variants derived from
// them) to `simpleci dev`, signed with the project's secret, each under its own
// X-GitHub-Delivery: none gets a 5xx; a run starts exactly for those expected.json says
// start one (202 with the run id, the run's event, commit and trust as expected), the
// others are answered 200 and start nothing. Then a redelivery starts nothing new, the
// same body under a new delivery id is refused (409, ADR 12), and a bad or missing
// signature is 401.
func TestGitHubPayloads(t *testing.T) {
	gh, tokenFile, shas := fakeGitHub(t)
	a, _ := startDevWith(t, nil, t.TempDir(), nil, "--tier", "standard:timeout=60s",
		"--github-url", gh.WebURL(), "--github-api-url", gh.APIURL(), "--github-token-file", tokenFile,
		"--allow-repo-network", "127.0.0.1/32", "--public-url", "https://ci.example/")
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "gh-payloads", "provider": "github", "repository": "octo/app",
		"events": []string{"push", "tag", "pull_request"}}, http.StatusOK, &p)
	sha := shas["main"]

	var want map[string]payloadExpectation
	b, err := os.ReadFile(githubPayloads + "expected.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(githubPayloads + "*/*/*.json")
	if err != nil || len(files) < 60 {
		t.Fatalf("payloads: %d files, %v", len(files), err)
	}
	sort.Strings(files)

	deliver := func(event string, body []byte, delivery, signature string) (int, []byte) {
		h := map[string]string{"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}
		if signature != "" {
			h["X-Hub-Signature-256"] = signature
		}
		return a.do("POST", p.WebhookPath, body, h)
	}
	type started struct {
		name, runID string
		body        []byte
		delivery    string
	}
	var runs []started
	for i, f := range files {
		name := strings.TrimPrefix(filepath.ToSlash(f), githubPayloads)
		w, ok := want[name]
		if !ok {
			t.Fatalf("%s has no expectation in expected.json", name)
		}
		event := strings.Split(name, "/")[1]
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		body := forFakeRepo(raw, "octo/app", sha)
		delivery := fmt.Sprintf("e2e-payload-%d", i)
		code, b := deliver(event, body, delivery, sign(p.WebhookSecret, body))
		if code >= 500 {
			t.Errorf("%s: %d %s", name, code, b)
			continue
		}
		if w.Ignored != "" {
			if code != http.StatusOK || !strings.Contains(string(b), `"ignored"`) {
				t.Errorf("%s: %d %s, want 200 ignored (%s)", name, code, b, w.Ignored)
			}
			continue
		}
		var out struct {
			RunIDs []string `json:"runIds"`
		}
		if code != http.StatusAccepted || json.Unmarshal(b, &out) != nil || len(out.RunIDs) != 1 {
			t.Errorf("%s: %d %s, want 202 with one run", name, code, b)
			continue
		}
		runs = append(runs, started{name, out.RunIDs[0], body, delivery})
	}
	if len(runs) < 15 {
		t.Fatalf("%d deliveries started a run", len(runs))
	}
	// Each run is the one its delivery asked for: event, commit and trust.
	for _, r := range runs {
		w := want[r.name]
		var shown struct {
			Event string `json:"event"`
			Sha   string `json:"sha"`
			Trust string `json:"trust"`
		}
		eventually(t, 30*time.Second, "run "+r.runID+" of "+r.name, func() bool {
			code, b := a.do("GET", "/api/v1/runs/"+r.runID, nil, nil)
			return code == http.StatusOK && json.Unmarshal(b, &shown) == nil
		})
		if shown.Event != w.Event || shown.Sha != sha || shown.Trust != w.Trust {
			t.Errorf("%s: run %+v, want event %s, sha %s, trust %s", r.name, shown, w.Event, sha, w.Trust)
		}
	}
	// Exactly those runs, no more (the ignored deliveries started none).
	n := a.runCountAfter(p, len(runs))
	if n != len(runs) {
		t.Errorf("%d runs after the deliveries, want %d", n, len(runs))
	}

	// GitHub's "Redeliver": the same delivery id and body names the same run, no new one.
	first := runs[0]
	event := strings.Split(first.name, "/")[1]
	code, b := deliver(event, first.body, first.delivery, sign(p.WebhookSecret, first.body))
	if code != http.StatusAccepted || !strings.Contains(string(b), first.runID) {
		t.Errorf("redelivery of %s: %d %s, want 202 naming run %s", first.name, code, b, first.runID)
	}
	// The same signed body under another delivery id is a replay: 409 (ADR 12).
	if code, b := deliver(event, first.body, "e2e-replay", sign(p.WebhookSecret, first.body)); code != http.StatusConflict {
		t.Errorf("replay of %s under a new delivery id: %d %s, want 409", first.name, code, b)
	}
	// A body signed with another secret, or not signed: 401, whatever the event.
	for _, r := range runs[:3] {
		event := strings.Split(r.name, "/")[1]
		if code, b := deliver(event, r.body, r.delivery+"-badsig", sign("not the project's secret", r.body)); code != http.StatusUnauthorized {
			t.Errorf("%s with a bad signature: %d %s, want 401", r.name, code, b)
		}
		if code, b := deliver(event, r.body, r.delivery+"-nosig", ""); code != http.StatusUnauthorized {
			t.Errorf("%s without a signature: %d %s, want 401", r.name, code, b)
		}
	}
	ping := forFakeRepo(mustRead(t, githubPayloads+"api.github.com/ping/payload.json"), "octo/app", sha)
	if code, b := deliver("ping", ping, "e2e-ping-badsig", sign("not the project's secret", ping)); code != http.StatusUnauthorized {
		t.Errorf("ping with a bad signature: %d %s, want 401", code, b)
	}
	if n := a.runCount(p); n != len(runs) {
		t.Errorf("%d runs after the redelivery, the replay and the bad signatures, want %d", n, len(runs))
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
