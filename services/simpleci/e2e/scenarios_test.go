package e2e_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tierTimeout is the standard tier's run timeout in these tests (--tier standard:timeout=...).
const tierTimeout = 6 * time.Second

type project struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	WebhookSecret string `json:"webhookSecret"`
	WebhookPath   string `json:"webhookPath"`
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// push delivers a signed push webhook and returns the run id.
func (a *api) push(p project, branch, sha string) string {
	a.t.Helper()
	return a.deliver(p, branch, sha, fmt.Sprintf("d-%d", time.Now().UnixNano()))
}

// deliver sends a signed push webhook with the given delivery id and returns the run id.
// The body names the delivery, as a forge's bodies differ between pushes (times, "before"):
// the gateway refuses a body it accepted before under another delivery id (a replay).
func (a *api) deliver(p project, branch, sha, delivery string) string {
	a.t.Helper()
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/" + branch, "after": sha, "sender": map[string]string{"login": "alice"},
		"delivery": delivery})
	code, b := a.do("POST", p.WebhookPath, body, map[string]string{"X-Hub-Signature-256": sign(p.WebhookSecret, body),
		"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery})
	if code != http.StatusAccepted {
		a.t.Fatalf("webhook: status %d: %s", code, b)
	}
	var out struct {
		RunIDs []string `json:"runIds"`
	}
	json.Unmarshal(b, &out)
	if len(out.RunIDs) != 1 {
		a.t.Fatalf("webhook: want one run id, got %s", b)
	}
	return out.RunIDs[0]
}

// runCountAfter returns the project's run count once the run list (a projection that
// follows the event log asynchronously) shows at least n runs.
func (a *api) runCountAfter(p project, n int) int {
	a.t.Helper()
	var got int
	eventually(a.t, 10*time.Second, fmt.Sprintf("the run list to show %d runs", n), func() bool { got = a.runCount(p); return got >= n })
	return got
}

func (a *api) runCount(p project) int {
	a.t.Helper()
	count := func() int {
		var out struct {
			Runs []run `json:"runs"`
		}
		a.json("GET", "/api/v1/projects/"+p.Name+"/runs?page_size=200", nil, http.StatusOK, &out)
		return len(out.Runs)
	}
	// The run list follows the event log asynchronously (behind transactions still open
	// anywhere on the PostgreSQL server): take a count that holds for 300 ms.
	n := count()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		m := count()
		if m == n {
			break
		}
		n = m
	}
	return n
}

// scenarios drives a running SimpleCI through the gateway at a, the way a user would:
// a project, signed webhooks, run and step outcomes, logs, and bad input.
func scenarios(t *testing.T, a *api) {
	// The steps run as users of their own in a PID namespace of their own: they cannot
	// write the test's files, and the pids they see are not the host's. Their processes
	// are found on the host by a command line no other process has.
	slowSleep, longSleep := uniqueSleep(), uniqueSleep()
	repo, shas := gitRepo(t, map[string]string{
		"good": `{"steps": [
			{"name": "out", "run": ["echo line-1", "echo line-2 >&2", "echo line-3"]},
			{"name": "tag only", "condition": "context.event == 'tag'", "run": "echo never"},
			{"name": "last", "condition": "context.event == 'push' && context.branch == 'good'", "run": "echo done"}]}`,
		"fail": `{"steps": [
			{"name": "ok", "run": "echo before"},
			{"name": "breaks", "run": ["echo breaking", "exit 3", "echo unreachable"]},
			{"name": "after", "run": "echo after"}]}`,
		"slow": `{"steps": [
			{"name": "hang", "run": "sh -c '` + slowSleep + ` & sh -c \"` + slowSleep + ` & wait\" ; wait'"},
			{"name": "never", "run": "echo never"}]}`,
		"long": `{"steps": [
			{"name": "started", "run": "echo started"},
			{"name": "long", "run": "` + longSleep + ` & wait"},
			{"name": "never", "run": "echo never"}]}`,
		"bad": "{\"steps\": [\n  {\"name\": \"a\", \"run\": \"true\", \"bogus\": 1}\n]}",
	})
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "e2e", "provider": "local", "repository": repo,
		"events": []string{"push"}}, http.StatusOK, &p)
	if p.WebhookSecret == "" || p.WebhookPath == "" {
		t.Fatalf("project without webhook secret or path: %+v", p)
	}

	t.Run("succeeds with a skipped step and ordered logs", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		id := a.push(p, "good", shas["good"])
		r := a.waitRun(id, 60*time.Second)
		if r.Status != "succeeded" {
			t.Fatalf("run %s: %s (%s), want succeeded; steps %+v", id, r.Status, r.Reason, r.Steps)
		}
		want := map[string]string{"out": "succeeded", "tag only": "skipped", "last": "succeeded"}
		if got := stepStatuses(r); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("steps %v, want %v", got, want)
		}
		if r.Sha != shas["good"] {
			t.Fatalf("run sha %s, want %s", r.Sha, shas["good"])
		}
		var text strings.Builder
		streams := map[string]bool{}
		chunks := a.waitLogs(id)
		for i, c := range chunks {
			if c.Sequence != strconv.Itoa(i+1) {
				t.Fatalf("chunk %d has sequence %s: gap or disorder", i, c.Sequence)
			}
			streams[c.Stream] = true
			if c.Stream != "system" {
				text.WriteString(c.Text)
			}
		}
		// The runner's isolation line comes first.
		if len(chunks) == 0 || chunks[0].Stream != "system" || !strings.HasPrefix(chunks[0].Text, "isolation: ") {
			t.Fatalf("the log does not start with the isolation line: %+v", chunks)
		}
		if got, want := text.String(), "line-1\nline-2\nline-3\ndone\n"; got != want {
			t.Fatalf("logs %q, want %q", got, want)
		}
		if !streams["stdout"] || !streams["stderr"] {
			t.Fatalf("logs should hold stdout and stderr chunks, got %v", streams)
		}
	})

	t.Run("a failing step fails the run and later steps do not run", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		r := a.waitRun(a.push(p, "fail", shas["fail"]), 60*time.Second)
		if r.Status != "failed" {
			t.Fatalf("run: %s (%s), want failed", r.Status, r.Reason)
		}
		want := map[string]string{"ok": "succeeded", "breaks": "failed", "after": "skipped"}
		if got := stepStatuses(r); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("steps %v, want %v", got, want)
		}
		if r.Steps[1].ExitCode != 3 {
			t.Fatalf("failing step exit code %d, want 3", r.Steps[1].ExitCode)
		}
		var all strings.Builder
		for _, c := range a.waitLogs(r.ID) {
			all.WriteString(c.Text)
		}
		if s := all.String(); !strings.Contains(s, "breaking") || strings.Contains(s, "unreachable") || strings.Contains(s, "after\n") {
			t.Fatalf("logs %q: want the output up to the failure and nothing after", s)
		}
	})

	// Processes that leave the job's process group (setsid, a double fork) are
	// isolation_test.go's.
	t.Run("a step outliving the timeout is killed with its children", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		id := a.push(p, "slow", shas["slow"])
		eventually(t, 60*time.Second, "the step's two background processes to run", func() bool {
			return countExactly(processesWith(slowSleep), slowSleep) == 2
		})
		r := a.waitRun(id, tierTimeout+60*time.Second)
		if r.Status != "timed_out" {
			t.Fatalf("run: %s (%s), want timed_out", r.Status, r.Reason)
		}
		if got := stepStatuses(r); got["hang"] != "timed_out" || got["never"] != "skipped" {
			t.Fatalf("steps %v, want hang timed_out and never skipped", got)
		}
		// The runner reports the run's end once every process of the job is gone.
		if left := processesWith(slowSleep); len(left) > 0 {
			t.Fatalf("processes of the timed-out step survived the run: %q", left)
		}
	})

	t.Run("cancelling a running run stops it and its processes", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		id := a.push(p, "long", shas["long"])
		a.waitStepRunning(id, 1, 3)
		eventually(t, 10*time.Second, "the step's background process to start", func() bool {
			return countExactly(processesWith(longSleep), longSleep) == 1
		})
		var r run
		sent := time.Now()
		a.json("POST", "/api/v1/runs/"+id+":cancel", map[string]any{}, http.StatusOK, &r)
		r = a.waitRun(id, 30*time.Second)
		took := time.Since(sent)
		if r.Status != "cancelled" {
			t.Fatalf("run: %s (%s), want cancelled", r.Status, r.Reason)
		}
		t.Logf("cancel to cancelled: %s", took)
		if took > 2*time.Second {
			t.Errorf("the run took %s to stop after the cancel, want within 2s", took)
		}
		want := map[string]string{"started": "succeeded", "long": "cancelled", "never": "skipped"}
		if got := stepStatuses(r); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("steps %v, want %v", got, want)
		}
		if left := processesWith(longSleep); len(left) > 0 {
			t.Fatalf("processes of the cancelled step survived the run: %q", left)
		}
		var logs strings.Builder
		for _, c := range a.waitLogs(id) {
			logs.WriteString(c.Text)
		}
		if !strings.Contains(logs.String(), "started") {
			t.Fatalf("the logs before the cancel are lost: %q", logs.String())
		}
		// Cancelling again, or a finished run, changes nothing.
		a.json("POST", "/api/v1/runs/"+id+":cancel", map[string]any{}, http.StatusOK, &r)
		if r.Status != "cancelled" {
			t.Fatalf("second cancel: %s", r.Status)
		}
	})

	t.Run("an invalid pipeline errors the run with the place of the problem", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		r := a.waitRun(a.push(p, "bad", shas["bad"]), 60*time.Second)
		if r.Status != "errored" {
			t.Fatalf("run: %s, want errored", r.Status)
		}
		if !strings.Contains(r.Reason, ".simpleci/pipeline.json:2:") || !strings.Contains(r.Reason, "bogus") {
			t.Fatalf("reason %q should name the file, line and the unknown field", r.Reason)
		}
	})

	t.Run("a webhook with a wrong signature gets 401 and creates nothing", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		before := a.runCount(p)
		body := []byte(`{"ref":"refs/heads/good","after":"` + shas["good"] + `"}`)
		for name, sig := range map[string]string{"wrong": sign("not-the-secret", body), "missing": "", "garbage": "sha256=zz"} {
			hdr := map[string]string{"X-GitHub-Event": "push"}
			if sig != "" {
				hdr["X-Hub-Signature-256"] = sig
			}
			if code, b := a.do("POST", p.WebhookPath, body, hdr); code != http.StatusUnauthorized {
				t.Fatalf("%s signature: status %d (%s), want 401", name, code, b)
			}
		}
		if code, _ := a.do("POST", "/api/v1/webhooks/local/no-such-project", body, nil); code != http.StatusNotFound {
			t.Fatalf("unknown project: status %d, want 404", code)
		}
		// A correctly signed delivery afterwards is processed; the bad ones created no run.
		a.waitRun(a.push(p, "good", shas["good"]), 60*time.Second)
		if after := a.runCountAfter(p, before+1); after != before+1 {
			t.Fatalf("runs: %d before, %d after one good and three bad deliveries", before, after)
		}
	})

	t.Run("the same delivery five times makes one run", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		before := a.runCount(p)
		delivery := fmt.Sprintf("dup-%d", time.Now().UnixNano())
		ids := make(chan string, 5)
		var wg sync.WaitGroup
		for range 3 { // concurrently
			wg.Add(1)
			go func() { defer wg.Done(); ids <- a.deliver(p, "good", shas["good"], delivery) }()
		}
		wg.Wait()
		for range 2 { // and in sequence, after the run exists
			a.waitRun(a.deliver(p, "good", shas["good"], delivery), 60*time.Second)
			ids <- a.deliver(p, "good", shas["good"], delivery)
		}
		close(ids)
		first := ""
		for id := range ids {
			if first == "" {
				first = id
			}
			if id != first {
				t.Fatalf("deliveries with one id answered with different runs %s and %s", first, id)
			}
		}
		a.waitRun(first, 60*time.Second)
		if after := a.runCountAfter(p, before+1); after != before+1 {
			t.Fatalf("runs: %d before, %d after five deliveries of one webhook; want one more", before, after)
		}
	})

	t.Run("the run's events are served in order", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		r := a.waitRun(a.push(p, "good", shas["good"]), 60*time.Second)
		var out struct {
			Events []struct {
				Version string         `json:"version"`
				Type    string         `json:"type"`
				Payload map[string]any `json:"payload"`
			} `json:"events"`
		}
		a.json("GET", "/api/v1/runs/"+r.ID+"/events", nil, http.StatusOK, &out)
		var types []string
		for i, e := range out.Events {
			if e.Version != strconv.Itoa(i+1) {
				t.Fatalf("event %d has version %s", i, e.Version)
			}
			if e.Payload["runId"] != r.ID {
				t.Fatalf("event %d payload %v does not name the run", i, e.Payload)
			}
			types = append(types, strings.TrimPrefix(e.Type, "simpleci.events.v1."))
		}
		want := "RunQueued RunStarted RunIsolation StepStarted StepFinished StepSkipped StepStarted StepFinished RunFinished"
		if got := strings.Join(types, " "); got != want {
			t.Fatalf("events %s, want %s", got, want)
		}
	})

	t.Run("the API refuses callers without a valid token", func(t *testing.T) {
		anon := &api{t: t, base: a.base}
		if code, _ := anon.do("GET", "/api/v1/projects", nil, nil); code != http.StatusUnauthorized {
			t.Fatalf("no token: %d, want 401", code)
		}
		bad := &api{t: t, base: a.base, token: "sci_not-a-real-token-000000000000000000000"}
		if code, _ := bad.do("GET", "/api/v1/projects/e2e/runs", nil, nil); code != http.StatusUnauthorized {
			t.Fatalf("bad token: %d, want 401", code)
		}
	})
}

// uniqueSleep returns a sleep command of about 11 days whose command line no other
// process has, to find its processes on the host.
func uniqueSleep() string {
	return fmt.Sprintf("sleep 1%06d", rand.IntN(1000000))
}
