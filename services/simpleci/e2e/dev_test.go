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

// startDev starts `simpleci dev` (one process, SQLite, in-process bus, local runner)
// and returns a client of its HTTP API with the admin token.
func startDev(t testing.TB) *api {
	a, _, _ := startDevIn(t, t.TempDir())
	return a
}

// startDevIn starts `simpleci dev` with its data in data.
func startDevIn(t testing.TB, data string) (*api, *proc, string) {
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	demo, _ := filepath.Abs("../../../docs/examples/demo")
	p := start(t, "dev", nil, "dev", "--data", data, "--http", httpAddr, "--grpc", grpcAddr, "--demo", demo,
		"--tier-timeouts", "standard="+tierTimeout.String())
	var token string
	eventually(t, 60*time.Second, "the admin token and the demo project", func() bool {
		b, err := os.ReadFile(filepath.Join(data, "admin-token"))
		token = strings.TrimSpace(string(b))
		_, serr := os.Stat(filepath.Join(data, "demo-webhook-secret"))
		return err == nil && serr == nil
	})
	a := &api{t: t, base: "http://" + httpAddr, token: token}
	eventually(t, 60*time.Second, "readiness", func() bool { return a.up("/readyz") })
	return a, p, data
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
		streams := map[string]bool{}
		for _, c := range a.waitLogs(r.ID) {
			streams[c.Stream] = true
		}
		if !streams["stdout"] || !streams["stderr"] {
			t.Fatalf("demo logs should hold stdout and stderr, got %v", streams)
		}
	})
	scenarios(t, a)

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
