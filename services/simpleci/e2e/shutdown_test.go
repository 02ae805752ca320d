package e2e_test

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDevShutdown: Ctrl-C (SIGINT) on `simpleci dev` stops intake, lets the job in
// progress finish while the services it reports to still answer, then exits; a second
// Ctrl-C exits at once and hands the job back, so its run is queued again (RunRequeued)
// and runs when the process starts again on the same data.
func TestDevShutdown(t *testing.T) {
	data := t.TempDir()
	flags := []string{"--tier", "standard:timeout=120s"}
	a, p := startDevWith(t, nil, data, nil, flags...)
	repo, shas := gitRepo(t, map[string]string{
		"short": `{"steps": [{"name": "begin", "run": "echo begin"}, {"name": "work", "run": "sleep 3; echo finished"}]}`,
		"long":  `{"steps": [{"name": "begin", "run": "echo begin"}, {"name": "work", "run": "sleep 100; echo finished"}]}`,
	})
	var pr project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "shutdown", "provider": "local", "repository": repo,
		"events": []string{"push"}}, http.StatusOK, &pr)
	workRunning := func(a *api, id string) func() bool {
		return func() bool {
			var r run
			code, b := a.do("GET", "/api/v1/runs/"+id, nil, nil)
			return code == http.StatusOK && jsonInto(b, &r) && len(r.Steps) == 2 && r.Steps[1].Status == "running"
		}
	}

	// First interrupt during a 3-second job: it finishes, the process exits soon after.
	short := a.push(pr, "short", shas["short"])
	eventually(t, 60*time.Second, "the short job's work step to run", workRunning(a, short))
	signalled := time.Now()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "/readyz to say draining", func() bool {
		code, body := get(a.base + "/readyz")
		return code == 0 || (code == http.StatusServiceUnavailable && strings.Contains(body, "draining"))
	})
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("simpleci dev still runs 30 s after SIGINT during a 3-second job")
	}
	took := time.Since(signalled)
	t.Logf("exited %s after SIGINT", took.Round(time.Millisecond))
	if took > 12*time.Second {
		t.Fatalf("exited %s after SIGINT during a 3-second job, want within seconds of the job's end", took)
	}
	if !p.cmd.ProcessState.Success() {
		t.Fatalf("exit status after SIGINT: %v", p.cmd.ProcessState)
	}

	// The run ended succeeded before the process left.
	a, p = startDevWith(t, nil, data, nil, flags...)
	if r := a.waitRun(short, 5*time.Second); r.Status != "succeeded" {
		t.Fatalf("the run of the job in progress at SIGINT: %s (%s), want succeeded", r.Status, r.Reason)
	}

	// Second interrupt during a long job: the process exits at once, the job is handed back.
	long := a.push(pr, "long", shas["long"])
	eventually(t, 60*time.Second, "the long job's work step to run", workRunning(a, long))
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "/readyz to say draining", func() bool {
		code, body := get(a.base + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "draining")
	})
	if code, _ := a.do("POST", "/api/v1/projects/"+pr.Name+"/runs", []byte(`{"ref": "long"}`), nil); code != http.StatusServiceUnavailable {
		t.Fatalf("a manual trigger while draining: %d, want 503", code)
	}
	// A webhook is still accepted (forges do not retry): recorded in the gateway's outbox,
	// it runs once simpleci dev is back.
	lateDelivery := a.push(pr, "long", shas["long"])
	signalled = time.Now()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("simpleci dev still runs 10 s after the second SIGINT")
	}
	t.Logf("exited %s after the second SIGINT", time.Since(signalled).Round(time.Millisecond))

	// Started again on the same data: the run was requeued (attempt 2) and runs again.
	a, _ = startDevWith(t, nil, data, nil, flags...)
	var out struct {
		Events []struct {
			Type    string         `json:"type"`
			Payload map[string]any `json:"payload"`
		} `json:"events"`
	}
	a.json("GET", "/api/v1/runs/"+long+"/events", nil, http.StatusOK, &out)
	var types []string
	requeued := ""
	for _, e := range out.Events {
		typ := strings.TrimPrefix(e.Type, "simpleci.events.v1.")
		types = append(types, typ)
		if typ == "RunRequeued" {
			requeued, _ = e.Payload["reason"].(string)
		}
	}
	if !strings.Contains(requeued, "handed back") {
		t.Fatalf("events of the handed-back run: %v (requeue reason %q), want RunRequeued saying it was handed back", types, requeued)
	}
	if strings.Contains(strings.Join(types, " "), "RunFinished") {
		t.Fatalf("the handed-back run finished: %v", types)
	}
	var r run
	eventually(t, 60*time.Second, "the requeued run's work step to run again, as attempt 2", func() bool {
		code, b := a.do("GET", "/api/v1/runs/"+long, nil, nil)
		return code == http.StatusOK && jsonInto(b, &r) && r.Status == "running" && r.Attempt == 2 &&
			len(r.Steps) == 2 && r.Steps[1].Status == "running"
	})
	a.json("POST", "/api/v1/runs/"+long+":cancel", nil, http.StatusOK, nil)
	if r := a.waitRun(long, 30*time.Second); r.Status != "cancelled" {
		t.Fatalf("the requeued run after its cancel: %s (%s)", r.Status, r.Reason)
	}
	// The delivery accepted while draining was kept and runs now.
	eventually(t, 60*time.Second, "the run of the delivery accepted while draining", func() bool {
		code, _ := a.do("GET", "/api/v1/runs/"+lateDelivery, nil, nil)
		return code == http.StatusOK
	})
	a.json("POST", "/api/v1/runs/"+lateDelivery+":cancel", nil, http.StatusOK, nil)
}
