package e2e_test

import (
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestRunnerDrain: SIGTERM to a runner lets its job finish and makes it take no new one;
// the next run waits in the queue for another runner.
func TestRunnerDrain(t *testing.T) {
	c := startCluster(t, 1)
	repo, shas := gitRepo(t, map[string]string{"slow": `{"steps": [
		{"name": "begin", "run": "echo begin"},
		{"name": "work", "run": "sleep 3; echo finished"}]}`})
	var p project
	c.api.json("POST", "/api/v1/projects", map[string]any{"name": "drain", "provider": "local", "repository": repo,
		"events": []string{"push"}}, http.StatusOK, &p)
	id := c.api.push(p, "slow", shas["slow"])
	eventually(t, 60*time.Second, "the work step to run", func() bool {
		var r run
		code, b := c.api.do("GET", "/api/v1/runs/"+id, nil, nil)
		return code == http.StatusOK && jsonInto(b, &r) && len(r.Steps) == 2 && r.Steps[1].Status == "running"
	})
	runner := c.procs["runner-1"]
	if err := runner.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if r := c.api.waitRun(id, 60*time.Second); r.Status != "succeeded" {
		t.Fatalf("the job in progress during the drain: %s (%s), want succeeded", r.Status, r.Reason)
	}
	select {
	case <-runner.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the draining runner did not exit after its job")
	}
	next := c.api.push(p, "slow", shas["slow"])
	var r run
	eventually(t, 30*time.Second, "the next run to be queued", func() bool {
		code, b := c.api.do("GET", "/api/v1/runs/"+next, nil, nil)
		return code == http.StatusOK && jsonInto(b, &r) && r.Status == "queued"
	})
	runner.restart(t)
	if r := c.api.waitRun(next, 60*time.Second); r.Status != "succeeded" {
		t.Fatalf("the queued run after a runner came back: %s (%s)", r.Status, r.Reason)
	}
}
