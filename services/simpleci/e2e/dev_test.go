package e2e_test

import (
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDev starts `simpleci dev` (one process, SQLite, in-process bus, local runner)
// and returns a client of its HTTP API with the admin token.
func startDev(t testing.TB) *api {
	a, _, _ := startDevIn(t, t.TempDir())
	return a
}

// startDevIn starts `simpleci dev` with its data in data.
func startDevIn(t testing.TB, data string) (*api, *proc, string) {
	a, p := startDevWith(t, nil, data, nil, "--tier", "standard:timeout="+tierTimeout.String())
	return a, p, data
}

// startDevWith starts `simpleci dev` as the user cred (nil: the test's), with its data in
// data, env added to its environment and more flags.
func startDevWith(t testing.TB, cred *syscall.Credential, data string, env []string, flags ...string) (*api, *proc) {
	a, p := startDevUnready(t, cred, data, env, flags...)
	eventually(t, 60*time.Second, "readiness", func() bool { return a.up("/readyz") })
	return a, p
}

// startDevUnready is startDevWith without waiting for /readyz.
func startDevUnready(t testing.TB, cred *syscall.Credential, data string, env []string, flags ...string) (*api, *proc) {
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	demo, _ := filepath.Abs("../../../docs/examples/demo")
	args := append([]string{"dev", "--data", data, "--http", httpAddr, "--grpc", grpcAddr, "--demo", demo}, flags...)
	p := startAs(t, cred, "dev", env, args...)
	var token string
	eventually(t, 60*time.Second, "the admin token and the demo project", func() bool {
		b, err := os.ReadFile(filepath.Join(data, "admin-token"))
		token = strings.TrimSpace(string(b))
		_, serr := os.Stat(filepath.Join(data, "demo-webhook-secret"))
		return err == nil && serr == nil
	})
	return &api{t: t, base: "http://" + httpAddr, token: token}, p
}

// TestDev drives `simpleci dev` over HTTP: the demo project's run, then the shared
// scenarios.
func TestDev(t *testing.T) {
	a, p, data := startDevIn(t, t.TempDir())
	t.Run("demo", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		var r run
		a.json("POST", "/api/v1/projects/demo/runs", map[string]string{"ref": "main"}, http.StatusOK, &r)
		r = a.waitRun(r.ID, 60*time.Second)
		if r.Status != "succeeded" {
			t.Fatalf("demo run: %s (%s) %+v", r.Status, r.Reason, r.Steps)
		}
		if st := stepStatuses(r); st["Deploy (tags only)"] != "skipped" {
			t.Fatalf("demo steps %v: the tag-only step should be skipped", st)
		}
		// The commit's message, read from the demo repository when the run was queued,
		// on the run and in the run list.
		if r.CommitMessage != "SimpleCI demo" {
			t.Errorf("GET run: commitMessage %q, want the demo commit's %q", r.CommitMessage, "SimpleCI demo")
		}
		var list struct {
			Runs []run `json:"runs"`
		}
		a.json("GET", "/api/v1/projects/demo/runs", nil, http.StatusOK, &list)
		if len(list.Runs) == 0 || list.Runs[0].ID != r.ID || list.Runs[0].CommitMessage != "SimpleCI demo" {
			t.Errorf("run list %+v: want run %s first with commitMessage %q", list.Runs, r.ID, "SimpleCI demo")
		}
		streams := map[string]bool{}
		for _, c := range a.waitLogs(r.ID) {
			streams[c.Stream] = true
		}
		if !streams["stdout"] || !streams["stderr"] {
			t.Fatalf("demo logs should hold stdout and stderr, got %v", streams)
		}
	})
	scenarios(t, a)

	t.Run("project secrets reach the steps, masked, and are never shown", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		const value = "hunter2-very-secret"
		var sec struct {
			Name string `json:"name"`
		}
		a.json("PUT", "/api/v1/projects/demo/secrets/DEPLOY_TOKEN", map[string]string{"value": value}, http.StatusOK, &sec)
		if code, b := a.do("PUT", "/api/v1/projects/demo/secrets/SHORT", map[string]string{"value": "abc"}, nil); code != http.StatusBadRequest || !strings.Contains(string(b), "could not be masked") {
			t.Fatalf("a 3-character secret: %d %s, want 400 saying why", code, b)
		}
		code, b := a.do("GET", "/api/v1/projects/demo/secrets", nil, nil)
		if code != http.StatusOK || !strings.Contains(string(b), "DEPLOY_TOKEN") || strings.Contains(string(b), value) {
			t.Fatalf("list secrets: %d %s", code, b)
		}
		// The demo's Greet step prints nothing secret; a run of a pipeline that echoes
		// the variable must show *** instead.
		repo, shas := gitRepo(t, map[string]string{"main2": `{"steps": [{"name": "leak", "run": "echo token=$DEPLOY_TOKEN; printf '%s' \"$DEPLOY_TOKEN\" | base64"}]}`})
		var p project
		a.json("POST", "/api/v1/projects", map[string]any{"name": "secrets", "provider": "local", "repository": repo, "events": []string{"push"}}, http.StatusOK, &p)
		a.json("PUT", "/api/v1/projects/secrets/secrets/DEPLOY_TOKEN", map[string]string{"value": value}, http.StatusOK, nil)
		r := a.waitRun(a.push(p, "main2", shas["main2"]), 60*time.Second)
		var text strings.Builder
		for _, c := range a.waitLogs(r.ID) {
			text.WriteString(c.Text)
		}
		if r.Status != "succeeded" || !strings.Contains(text.String(), "token=***") || strings.Contains(text.String(), value) ||
			strings.Contains(text.String(), base64.StdEncoding.EncodeToString([]byte(value))) {
			t.Fatalf("run %s, log %q: want the secret in the step's env and masked (also base64)", r.Status, text.String())
		}
		if code, b := a.do("GET", "/api/v1/runs/"+r.ID+"/events", nil, nil); code != http.StatusOK || strings.Contains(string(b), value) {
			t.Fatalf("the run's events hold the secret: %d", code)
		}
		if code, _ := a.do("DELETE", "/api/v1/projects/demo/secrets/DEPLOY_TOKEN", nil, nil); code != http.StatusOK {
			t.Fatalf("delete secret: %d", code)
		}
	})

	t.Run("the command-line client", func(t *testing.T) {
		cli := func(args ...string) string {
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), "SIMPLECI_SERVER="+a.base, "SIMPLECI_TOKEN="+a.token)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("simpleci %v: %v\n%s", args, err, out)
			}
			return string(out)
		}
		out := cli("trigger", "demo", "--ref", "main")
		id := strings.Fields(out)[1]
		logs := cli("runs", "logs", id, "-f") // follows until the log is complete
		if !strings.Contains(logs, "build ok") || !strings.Contains(logs, "warning: this is a demo") {
			t.Fatalf("runs logs -f: %s", logs)
		}
		if show := cli("runs", "show", id); !strings.Contains(show, "succeeded") || !strings.Contains(show, "Deploy (tags only)") ||
			!strings.Contains(show, "trust same_repository") {
			t.Fatalf("runs show: %s", show)
		}
		if list := cli("runs", "list", "demo"); !strings.Contains(list, id) {
			t.Fatalf("runs list: %s", list)
		}
		if evs := cli("runs", "events", id); !strings.Contains(evs, "RunQueued") || !strings.Contains(evs, "RunFinished") {
			t.Fatalf("runs events: %s", evs)
		}
		if ps := cli("projects", "list"); !strings.Contains(ps, "demo") {
			t.Fatalf("projects list: %s", ps)
		}
	})

	t.Run("the pipeline schema is served to editors without a token", func(t *testing.T) {
		anon := &api{t: t, base: a.base}
		code, b := anon.do("GET", "/api/v1/schema/pipeline.json", nil, nil)
		if code != http.StatusOK || !strings.Contains(string(b), `"$schema"`) || !strings.Contains(string(b), `"condition"`) {
			t.Fatalf("schema: %d %.200s", code, b)
		}
	})

	t.Run("the run list rebuilt from the event log equals the live one", func(t *testing.T) {
		list := func(a *api) string {
			_, b := a.do("GET", "/api/v1/projects/e2e/runs?page_size=200", nil, nil)
			return string(b)
		}
		live := list(&api{t: t, base: a.base, token: a.token})
		if !strings.Contains(live, `"status":"timed_out"`) {
			t.Fatalf("the live list lacks the scenarios' runs: %s", live)
		}
		p.stop()
		out, err := exec.Command(bin, "admin", "rebuild-projections", "--data", data).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "run list rebuilt from") {
			t.Fatalf("rebuild-projections: %v\n%s", err, out)
		}
		again, _, _ := startDevIn(t, data)
		if rebuilt := list(&api{t: t, base: again.base, token: again.token}); rebuilt != live {
			t.Fatalf("rebuilt run list differs from the live one:\nlive:    %s\nrebuilt: %s", live, rebuilt)
		}
	})
}
