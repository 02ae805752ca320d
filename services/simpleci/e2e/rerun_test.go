package e2e_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRerunDev re-runs runs through `simpleci dev` (SQLite, in-process bus).
func TestRerunDev(t *testing.T) { rerunFlow(t, startDev(t)) }

// TestRerunServices re-runs runs through the split deployment (PostgreSQL, Kafka).
func TestRerunServices(t *testing.T) { rerunFlow(t, startServices(t)) }

// rerunPipeline's first step succeeds and its second fails; both print who they are.
const rerunPipeline = `{"steps": [
  {"name": "build", "run": "echo original-build"},
  {"name": "test", "run": "echo original-test; exit 3"},
  {"name": "report", "condition": "always()", "run": "echo report"}]}`

type rerunRun struct {
	run
	Ref           string `json:"ref"`
	Branch        string `json:"branch"`
	Trust         string `json:"trust"`
	RerunOf       string `json:"rerunOf"`
	RerunOfNumber string `json:"rerunOfNumber"`
	Trigger       string `json:"trigger"`
}

// rerunFlow: a failed run is re-run from its failed step and as a whole after the
// branch moved on to another pipeline; both re-runs run the original's commit and
// pipeline, the first without its succeeded step.
func rerunFlow(t *testing.T, a *api) {
	repo, shas := gitRepo(t, map[string]string{"main2": rerunPipeline})
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "rerun", "provider": "local", "repository": repo, "events": []string{"push"}}, http.StatusOK, &p)
	var orig rerunRun
	a.json("POST", "/api/v1/projects/rerun/runs", map[string]string{"ref": "main2"}, http.StatusOK, &orig)
	if code, b := a.do("POST", "/api/v1/runs/"+orig.ID+":rerun", map[string]any{}, nil); code != http.StatusBadRequest || !strings.Contains(string(b), "only a finished run") {
		// The run may have finished already on a fast machine: then the answer is a re-run.
		if code != http.StatusOK {
			t.Fatalf("re-run of an unfinished run: %d %s", code, b)
		}
	}
	first := a.waitRun(orig.ID, 60*time.Second)
	if first.Status != "failed" || first.Sha != shas["main2"] {
		t.Fatalf("first run %s at %s: %+v", first.Status, first.Sha, first.Steps)
	}
	// The branch moves on to a pipeline that would succeed with other steps.
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("checkout", "-q", "main2")
	if err := os.WriteFile(filepath.Join(repo, ".simpleci", "pipeline.json"), []byte(`{"steps": [{"name": "changed", "run": "echo changed-pipeline"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	git("commit", "-q", "-am", "another pipeline")
	git("checkout", "-q", "main")

	logText := func(id string) string {
		var b strings.Builder
		for _, c := range a.waitLogs(id) {
			b.WriteString(c.Text)
		}
		return b.String()
	}
	t.Run("from the failed step", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		// Through the CLI, as a user would.
		out, err := exec.Command(bin, "runs", "rerun", orig.ID, "--from-failed", "--server", a.base, "--token", a.token).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "re-run of #"+orig.Number) {
			t.Fatalf("simpleci runs rerun --from-failed: %v\n%s", err, out)
		}
		id := strings.Fields(string(out))[1]
		a.waitRun(id, 60*time.Second)
		var r rerunRun
		a.json("GET", "/api/v1/runs/"+id, nil, http.StatusOK, &r)
		if r.ID == orig.ID || r.Number == orig.Number || r.RerunOf != orig.ID || r.RerunOfNumber != orig.Number ||
			r.Sha != shas["main2"] || r.Branch != "main2" || r.Event != "manual" || r.Trust != "same_repository" {
			t.Fatalf("re-run %+v of %s #%s at %s", r, orig.ID, orig.Number, shas["main2"])
		}
		if r.Status != "failed" || len(r.Steps) != 3 || r.Steps[0].Name != "build" || r.Steps[0].Status != "skipped" ||
			r.Steps[0].Reason != "succeeded in run "+orig.Number || r.Steps[1].Status != "failed" || r.Steps[1].ExitCode != 3 || r.Steps[2].Status != "succeeded" {
			t.Fatalf("re-run from the failed step: %s %+v", r.Status, r.Steps)
		}
		text := logText(id)
		if strings.Contains(text, "original-build") || !strings.Contains(text, "original-test") || strings.Contains(text, "changed-pipeline") {
			t.Fatalf("re-run log (want the original test step only, not build nor the new pipeline):\n%s", text)
		}
		var o rerunRun
		a.json("GET", "/api/v1/runs/"+orig.ID, nil, http.StatusOK, &o)
		if o.RerunOf != "" || o.Status != "failed" || o.Steps[0].Status != "succeeded" {
			t.Fatalf("the original changed: %+v", o)
		}
	})
	t.Run("the whole run", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		var r rerunRun
		a.json("POST", "/api/v1/runs/"+orig.ID+":rerun", map[string]any{}, http.StatusOK, &r)
		r.run = a.waitRun(r.ID, 60*time.Second)
		if r.RerunOf != orig.ID || r.Sha != shas["main2"] || r.Status != "failed" || len(r.Steps) != 3 ||
			r.Steps[0].Status != "succeeded" || r.Steps[1].Status != "failed" {
			t.Fatalf("whole re-run: %+v", r)
		}
		if text := logText(r.ID); !strings.Contains(text, "original-build") || !strings.Contains(text, "original-test") || strings.Contains(text, "changed-pipeline") {
			t.Fatalf("whole re-run log:\n%s", text)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		var ok rerunRun
		a.json("POST", "/api/v1/projects/rerun/runs", map[string]string{"ref": "main2"}, http.StatusOK, &ok)
		if r := a.waitRun(ok.ID, 60*time.Second); r.Status != "succeeded" {
			t.Fatalf("run of the new pipeline: %s %+v", r.Status, r.Steps)
		}
		if code, b := a.do("POST", "/api/v1/runs/"+ok.ID+":rerun", map[string]any{"fromFailed": true}, nil); code != http.StatusBadRequest || !strings.Contains(string(b), "no failed step") {
			t.Fatalf("from the failed step of a succeeded run: %d %s, want 400", code, b)
		}
		if code, b := a.do("POST", "/api/v1/runs/01aaaaaaaaaaaaaaaaaaaaaaaa:rerun", map[string]any{}, nil); code != http.StatusNotFound {
			t.Fatalf("re-run of an unknown run: %d %s, want 404", code, b)
		}
	})
	t.Run("the run list filters by trigger", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		var list struct {
			Runs []rerunRun `json:"runs"`
		}
		eventually(t, 30*time.Second, "two re-runs in the list", func() bool {
			a.json("GET", "/api/v1/projects/rerun/runs?trigger=rerun", nil, http.StatusOK, &list)
			return len(list.Runs) == 2
		})
		for _, r := range list.Runs {
			if r.RerunOf != orig.ID || r.RerunOfNumber != orig.Number || r.Trigger != "rerun" || r.Event != "manual" {
				t.Fatalf("listed re-run %+v", r)
			}
		}
		out, err := exec.Command(bin, "runs", "list", "rerun", "--trigger", "rerun", "--server", a.base, "--token", a.token).CombinedOutput()
		if err != nil || strings.Count(string(out), "re-run of #"+orig.Number) != 2 {
			t.Fatalf("simpleci runs list --trigger rerun: %v\n%s", err, out)
		}
		if code, b := a.do("GET", "/api/v1/projects/rerun/runs?trigger=cron", nil, nil); code != http.StatusBadRequest {
			t.Fatalf("trigger=cron: %d %s, want 400", code, b)
		}
	})
	t.Run("a deleted project's run is not re-run", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		a.json("DELETE", "/api/v1/projects/rerun", nil, http.StatusOK, nil)
		if code, b := a.do("POST", "/api/v1/runs/"+orig.ID+":rerun", map[string]any{}, nil); code != http.StatusBadRequest || !strings.Contains(string(b), "project was deleted") {
			t.Fatalf("re-run after the project was deleted: %d %s, want 400", code, b)
		}
	})
}
