package e2e_test

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// concurrencyRun is a run with its steps' times, as GET /api/v1/runs/{run} gives them
// (the times come from the runner's StepStarted and StepFinished events).
type concurrencyRun struct {
	run
	Steps []struct {
		Name     string    `json:"name"`
		Status   string    `json:"status"`
		Started  time.Time `json:"startedAt"`
		Finished time.Time `json:"finishedAt"`
	} `json:"steps"`
}

// TestConcurrencyServices: with the services apart on Kafka and PostgreSQL and two
// runners free (concurrencyFlow), two pushes to one branch under a concurrency key of limit 1 run one after
// the other in the order they were pushed, the second saying which run holds the key;
// with cancelInProgress the second push supersedes the first, which ends cancelled with
// reason "superseded by run N", and the second succeeds.
func TestConcurrencyServices(t *testing.T) {
	concurrencyFlow(t, startClusterWith(t, 2, "--tier", "standard:timeout="+tierTimeout.String(), "--lease", "10s").api)
}

// TestConcurrencyDev is TestConcurrencyServices through `simpleci dev` (SQLite, the
// in-process bus, one runner with a job slot per CPU).
func TestConcurrencyDev(t *testing.T) { concurrencyFlow(t, startDev(t)) }

func concurrencyFlow(t *testing.T, a *api) {
	pipeline := func(cancel bool) string {
		return fmt.Sprintf(`{"concurrency": {"key": "deploy-{{ context.branch }}", "limit": 1, "cancelInProgress": %t},
  "steps": [{"name": "deploy", "run": "echo deploying; sleep 2"}]}`, cancel)
	}
	repo, shas := gitRepo(t, map[string]string{"serial": pipeline(false), "latest": pipeline(true)})
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "conc", "provider": "local", "repository": repo, "events": []string{"push"}}, http.StatusOK, &p)
	get := func(id string) concurrencyRun {
		var r concurrencyRun
		eventually(t, 30*time.Second, "run "+id+" to be queued", func() bool {
			code, b := a.do("GET", "/api/v1/runs/"+id, nil, nil)
			return code == http.StatusOK && jsonInto(b, &r)
		})
		return r
	}
	ended := func(id string) concurrencyRun {
		a.waitRun(id, 60*time.Second)
		return get(id)
	}

	t.Run("limit 1: one after the other in order", func(t *testing.T) {
		first := a.push(p, "serial", shas["serial"])
		eventually(t, 30*time.Second, "the first run to start", func() bool { return get(first).Status == "running" })
		second := a.push(p, "serial", shas["serial"])
		want := fmt.Sprintf(`waiting for concurrency key "deploy-serial" (limit 1): held by run %s`, get(first).Number)
		var r concurrencyRun
		eventually(t, 30*time.Second, "the second run to say which run holds the key", func() bool {
			r = get(second)
			return r.Status == "queued" && r.Reason == want
		})
		// The CLI shows the same reason.
		if out, err := exec.Command(bin, "runs", "show", second, "--server", a.base, "--token", a.token).CombinedOutput(); err != nil ||
			!strings.Contains(string(out), want) {
			t.Fatalf("simpleci runs show: %v\n%s", err, out)
		}
		r1, r2 := ended(first), ended(second)
		if r1.Status != "succeeded" || r2.Status != "succeeded" {
			t.Fatalf("runs %s and %s: %s %q, %s %q", r1.Number, r2.Number, r1.Status, r1.Reason, r2.Status, r2.Reason)
		}
		if len(r1.Steps) != 1 || len(r2.Steps) != 1 || r2.Steps[0].Started.Before(r1.Steps[0].Finished) {
			t.Fatalf("run %s's step started at %v, before run %s's ended at %v (a free runner must not start it)",
				r2.Number, r2.Steps[0].Started, r1.Number, r1.Steps[0].Finished)
		}
	})

	t.Run("cancelInProgress: the newer run supersedes the older", func(t *testing.T) {
		first := a.push(p, "latest", shas["latest"])
		eventually(t, 30*time.Second, "the first run to start its step", func() bool {
			r := get(first)
			return r.Status == "running" && len(r.Steps) == 1 && r.Steps[0].Status == "running"
		})
		second := a.push(p, "latest", shas["latest"])
		r2 := ended(second)
		r1 := ended(first)
		if want := "superseded by run " + r2.Number; r1.Status != "cancelled" || r1.Reason != want {
			t.Fatalf("the first run: %s %q, want cancelled %q", r1.Status, r1.Reason, want)
		}
		if r2.Status != "succeeded" || r2.Steps[0].Started.Before(r1.Finished()) {
			t.Fatalf("the second run: %s %q, its step started at %v (the first ended at %s)", r2.Status, r2.Reason, r2.Steps[0].Started, r1.run.Finished)
		}
	})
}

// Finished is when the run ended.
func (r concurrencyRun) Finished() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, r.run.Finished)
	return t
}
