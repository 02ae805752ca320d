package e2e_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestQueueLimitServices: with the services apart on Kafka and PostgreSQL, a run of a
// tier no runner serves says why it waits and where it is in the queue, then ends
// errored once it has waited longer than the tier's queue limit, saying so.
func TestQueueLimitServices(t *testing.T) {
	c := startClusterWith(t, 1, "--tier", "large:queue=4s", "--lease", "3s")
	a := c.api
	repo, _ := gitRepo(t, map[string]string{"main": pipelineJSON(map[string]any{"name": "never", "run": []string{"true"}})})
	a.json("POST", "/api/v1/projects", map[string]any{"name": "big", "provider": "local", "repository": repo,
		"events": []string{"manual"}, "tier": "large"}, http.StatusOK, nil)
	var r run
	a.json("POST", "/api/v1/projects/big/runs", map[string]string{"ref": "main"}, http.StatusOK, &r)
	a.json("GET", "/api/v1/runs/"+r.ID, nil, http.StatusOK, &r)
	if r.Status != "queued" || r.Reason != "waiting: no runner for tier large is connected; 1 of 1 in the tier's queue" {
		t.Fatalf("the queued run: %s %q", r.Status, r.Reason)
	}
	done := a.waitRun(r.ID, 60*time.Second)
	if done.Status != "errored" || !strings.HasPrefix(done.Reason, "queued for more than 4s without starting (no runner for tier large is connected") {
		t.Fatalf("after the queue limit: %s %q", done.Status, done.Reason)
	}
}
