package e2e_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDevSecretNotQuoted plants a project secret in `simpleci dev` and runs a pipeline
// whose condition and templates fail on it: the run fails with reasons that say what
// failed, and the value (nor its base64) is in none of GET /runs/{run}, its events, its
// (masked) log, nor, once the server stopped, in any file of the data directory (the
// SQLite databases, their journals, the bus) or in the services' log.
func TestDevSecretNotQuoted(t *testing.T) {
	a, p, data := startDevIn(t, t.TempDir())
	secret := plant("the project secret", "zq9-Plant(ed)-S3cret\"<&>(")
	src, _ := json.Marshal(leakPipeline)
	repo, shas := gitRepo(t, map[string]string{"main": string(src)})
	var pr project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "quoting", "provider": "local", "repository": repo, "events": []string{"push"}}, http.StatusOK, &pr)
	a.json("PUT", "/api/v1/projects/quoting/secrets/DEPLOY_TOKEN", map[string]string{"value": string(secret.forms[0])}, http.StatusOK, nil)
	r := a.waitRun(a.push(pr, "main", shas["main"]), 60*time.Second)

	if r.Status != "failed" || !strings.Contains(r.Reason, `step "cond" failed: condition: type conversion error`) {
		t.Errorf("run %s, reason %q: want failed by the condition's conversion error", r.Status, r.Reason)
	}
	for _, s := range r.Steps {
		if w, ok := leakReasons[s.Name]; ok && (s.Status != "failed" || !strings.Contains(s.Reason, w)) {
			t.Errorf("step %s: %s %q, want failed with %q", s.Name, s.Status, s.Reason, w)
		}
	}
	var logText strings.Builder
	for _, c := range a.waitLogs(r.ID) {
		logText.WriteString(c.Text)
	}
	if !strings.Contains(logText.String(), "token=***") {
		t.Errorf("log %q: want the secret in the step's env and masked", logText.String())
	}

	holds := func(where string, b []byte) {
		t.Helper()
		for _, l := range leaks(where, b, secret) {
			t.Error(l)
		}
	}
	for _, path := range []string{"/api/v1/runs/" + r.ID, "/api/v1/runs/" + r.ID + "/events", "/api/v1/runs/" + r.ID + "/logs"} {
		code, b := a.do("GET", path, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, b)
		}
		holds("GET "+path, b)
	}

	// The embedded default keeps everything in the data directory: none of its files,
	// read as bytes, may hold the value (the secret itself is stored sealed).
	p.stop()
	files := 0
	filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("read %s: %v", path, err)
			return nil
		}
		files++
		holds(path, b)
		return nil
	})
	if files == 0 {
		t.Fatalf("no files in the data directory %s", data)
	}
	// Nor the services' own log lines ("run finished ... reason=").
	b, err := os.ReadFile(p.log)
	if err != nil || !bytes.Contains(b, []byte("run finished")) {
		t.Fatalf("the dev log: %v", err)
	}
	holds("the dev log", b)
}
