package e2e_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// bigPipeline is a valid pipeline file of just under 1 MiB (the largest the scheduler
// reads): 16 steps whose commands carry a long shell comment; each prints its number.
func bigPipeline() string {
	var b strings.Builder
	b.WriteString(`{"steps": [`)
	pad := (1<<20 - 4096) / 16
	for i := range 16 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"name": "s%d", "run": "echo big-step-%d # %s"}`, i, i, strings.Repeat("x", pad))
	}
	b.WriteString("]}")
	return b.String()
}

// TestEventSizeServices: on the split deployment (Kafka + PostgreSQL), a pipeline just under
// the 1 MiB file limit runs: its RunQueued carries the file's SHA-256 and size, not the file
// (Kafka's default limit is 1 MB), the runner gets the whole file, and the run's events reach
// the log service (its log completes) and every later run goes on.
func TestEventSizeServices(t *testing.T) {
	c := startClusterWith(t, 1, "--tier", "standard:timeout=60s", "--lease", "10s")
	a := c.api
	content := bigPipeline()
	if len(content) > 1<<20 || len(content) < 1<<20-8192 {
		t.Fatalf("pipeline is %d bytes, want just under 1 MiB", len(content))
	}
	repo, shas := gitRepo(t, map[string]string{"big": content, "small": `{"steps": [{"name": "one", "run": "echo small"}]}`})
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "big", "provider": "local", "repository": repo,
		"events": []string{"push"}}, http.StatusOK, &p)

	id := a.push(p, "big", shas["big"])
	r := a.waitRun(id, 120*time.Second)
	if r.Status != "succeeded" || len(r.Steps) != 16 {
		t.Fatalf("run of the big pipeline: %s (%s), %d steps", r.Status, r.Reason, len(r.Steps))
	}
	log := logText(a.waitLogs(id)) // complete: the log service consumed RunFinished from Kafka
	for i := range 16 {
		if !strings.Contains(log, fmt.Sprintf("big-step-%d\n", i)) {
			t.Fatalf("log lacks step %d's output:\n%.2000s", i, log)
		}
	}
	evs := a.events(id)
	if len(evs) == 0 || evs[0].Type != "RunQueued" {
		t.Fatalf("first event %v", evs)
	}
	q := evs[0].Payload
	sum := sha256.Sum256([]byte(content))
	if q["pipeline"] != nil || q["pipelineSha256"] != hex.EncodeToString(sum[:]) || q["pipelineSize"] != strconv.Itoa(len(content)) {
		t.Fatalf("RunQueued: pipeline %T, sha256 %v, size %v; want the file by reference", q["pipeline"], q["pipelineSha256"], q["pipelineSize"])
	}
	if b, _ := json.Marshal(q); len(b) > 16<<10 {
		t.Fatalf("RunQueued is %d bytes as JSON", len(b))
	}
	// Later runs flow on.
	if r := a.waitRun(a.push(p, "small", shas["small"]), 60*time.Second); r.Status != "succeeded" {
		t.Fatalf("later run: %s (%s)", r.Status, r.Reason)
	}
}

// TestWebhookGuardsDev: against `simpleci dev`, from outside: a signed body replayed under
// a new delivery id is refused (409) and starts no run; past a project's burst, webhooks and
// manual triggers are answered 429 with Retry-After and start nothing, and a delivery after
// Retry-After is accepted.
func TestWebhookGuardsDev(t *testing.T) {
	a, _ := startDevWith(t, nil, t.TempDir(), nil, "--tier", "standard:timeout="+tierTimeout.String(),
		"--webhook-rate", "60/m,burst=3", "--trigger-rate", "60/m,burst=2")
	repo, shas := gitRepo(t, map[string]string{"main2": `{"steps": [{"name": "one", "run": "echo hi"}]}`})
	newProject := func(name string) project {
		var p project
		a.json("POST", "/api/v1/projects", map[string]any{"name": name, "provider": "local", "repository": repo,
			"events": []string{"push"}}, http.StatusOK, &p)
		return p
	}
	type answer struct {
		code       int
		retryAfter string
		message    string
		runIDs     []string
	}
	send := func(p project, body []byte, delivery string) answer {
		t.Helper()
		req, _ := http.NewRequest("POST", a.base+p.WebhookPath, strings.NewReader(string(body)))
		req.Header.Set("X-Hub-Signature-256", sign(p.WebhookSecret, body))
		req.Header.Set("X-GitHub-Event", "push")
		if delivery != "" {
			req.Header.Set("X-GitHub-Delivery", delivery)
		}
		return do(t, req)
	}
	body := func(actor string) []byte {
		b, _ := json.Marshal(map[string]any{"ref": "refs/heads/main2", "after": shas["main2"], "sender": map[string]string{"login": actor}})
		return b
	}

	t.Run("a replayed signed body is refused and starts no run", func(t *testing.T) {
		p := newProject("replayed")
		b := body("alice")
		first := send(p, b, "delivery-1")
		if first.code != http.StatusAccepted || len(first.runIDs) != 1 {
			t.Fatalf("first delivery: %d %s", first.code, first.message)
		}
		replay := send(p, b, "delivery-2")
		if replay.code != http.StatusConflict || !strings.Contains(replay.message, "already delivered") ||
			!strings.Contains(replay.message, `delivery "delivery-1"`) {
			t.Fatalf("replay: %d %q, want 409 naming the first delivery", replay.code, replay.message)
		}
		if r := a.waitRun(first.runIDs[0], 60*time.Second); r.Status != "succeeded" {
			t.Fatalf("first run: %s (%s)", r.Status, r.Reason)
		}
		time.Sleep(500 * time.Millisecond) // what the replay could have started would be listed by now
		if n := a.runCount(p); n != 1 {
			t.Fatalf("%d runs, want 1: the replay started one", n)
		}
	})

	t.Run("a burst past the limit gets 429 with Retry-After, a later delivery succeeds", func(t *testing.T) {
		p := newProject("flooded")
		var runs []string
		for i := range 3 {
			ans := send(p, body(fmt.Sprint("burst-", i)), fmt.Sprint("burst-", i))
			if ans.code != http.StatusAccepted {
				t.Fatalf("delivery %d of the burst: %d %s", i+1, ans.code, ans.message)
			}
			runs = append(runs, ans.runIDs...)
		}
		over := send(p, body("over"), "over")
		after, err := strconv.Atoi(over.retryAfter)
		if over.code != http.StatusTooManyRequests || err != nil || after < 1 || !strings.Contains(over.message, "too many webhook deliveries for project flooded") {
			t.Fatalf("past the burst: %d Retry-After %q %q", over.code, over.retryAfter, over.message)
		}
		// Other projects are not held back.
		if other := send(newProject("neighbour"), body("neighbour"), "neighbour-1"); other.code != http.StatusAccepted {
			t.Fatalf("another project's delivery: %d %s", other.code, other.message)
		}
		time.Sleep(time.Duration(after) * time.Second)
		later := send(p, body("later"), "later")
		if later.code != http.StatusAccepted {
			t.Fatalf("after Retry-After: %d %s", later.code, later.message)
		}
		runs = append(runs, later.runIDs...)
		for _, id := range runs {
			a.waitRun(id, 60*time.Second)
		}
		if n := a.runCount(p); n != 4 {
			t.Fatalf("%d runs, want 4: the refused delivery started one", n)
		}
	})

	t.Run("manual triggers past the limit get 429 with Retry-After", func(t *testing.T) {
		p := newProject("triggered")
		trigger := func() answer {
			req, _ := http.NewRequest("POST", a.base+"/api/v1/projects/"+p.Name+"/runs", strings.NewReader(`{"ref": "main2"}`))
			req.Header.Set("Authorization", "Bearer "+a.token)
			return do(t, req)
		}
		for i := range 2 {
			if ans := trigger(); ans.code != http.StatusOK {
				t.Fatalf("trigger %d: %d %s", i+1, ans.code, ans.message)
			}
		}
		over := trigger()
		if after, err := strconv.Atoi(over.retryAfter); over.code != http.StatusTooManyRequests || err != nil || after < 1 ||
			!strings.Contains(over.message, "too many manual triggers for project triggered") {
			t.Fatalf("past the burst: %d Retry-After %q %q", over.code, over.retryAfter, over.message)
		}
	})
}

// do sends req and decodes the answer: a run id list or the API's error shape.
func do(t *testing.T, req *http.Request) (ans struct {
	code       int
	retryAfter string
	message    string
	runIDs     []string
}) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	var body struct {
		Message string   `json:"message"`
		RunIDs  []string `json:"runIds"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	ans.code, ans.retryAfter, ans.message, ans.runIDs = resp.StatusCode, resp.Header.Get("Retry-After"), body.Message, body.RunIDs
	return ans
}
