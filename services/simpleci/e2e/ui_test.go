package e2e_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestUI drives the web UI in a real browser (headless Debian Chromium, playwright-core
// from npm, both installed by deploy/local/browser.sh) against `simpleci dev`, as a user
// would: every step is a node script under testdata/ui that fails on what the user would
// see wrong, and on any script error, console error or CSP violation in the page.
func TestUI(t *testing.T) {
	modules := localTool(t, "browser.sh", "Chromium or playwright-core")
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is needed for the browser tests (Debian: apt-get install nodejs npm)")
	}
	data := t.TempDir()
	// A longer step timeout than the other tests': the slow run below prints for ~8 s.
	a, p := startDevWith(t, nil, data, nil, "--tier", "standard:timeout=2m")

	// The one-click sign-in link `simpleci dev` printed, with the token in the fragment.
	var link string
	eventually(t, 30*time.Second, "the web UI sign-in link in simpleci dev's output", func() bool {
		b, _ := os.ReadFile(p.log)
		m := regexp.MustCompile(`Open the web UI signed in as the admin: (\S+)`).FindSubmatch(b)
		if m != nil {
			link = string(m[1])
		}
		return m != nil
	})
	if want := a.base + "/#token=" + a.token; link != want {
		t.Fatalf("sign-in link %q, want %q", link, want)
	}

	// The UI's answers carry the strict headers, deep links serve the page, and the
	// API's paths never do.
	res, err := http.Get(a.base + "/projects/demo/runs/x")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	csp := res.Header.Get("Content-Security-Policy")
	if res.StatusCode != http.StatusOK || !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
		strings.Contains(csp, "unsafe-inline") || res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("deep link: %d, headers %v", res.StatusCode, res.Header)
	}
	if code, _ := a.do("GET", "/api/v1/nothing-here", nil, nil); code != http.StatusNotFound {
		t.Fatalf("an unknown API path: %d, want 404 (not the UI's page)", code)
	}

	// A project whose run prints for a while, in colour and on stderr, to watch live.
	repo, shas := gitRepo(t, map[string]string{"main": `{"steps": [
		{"name": "prepare", "run": "echo ready"},
		{"name": "count", "run": "printf '\\033[31mred alert\\033[0m plain\\n'; echo 'to stderr' >&2; for i in $(seq 1 16); do echo tick $i; sleep 0.5; done"}]}`,
		"quick": `{"steps": [{"name": "quick", "run": "echo quick"}]}`,
		"big":   `{"steps": [{"name": "big", "run": "awk 'BEGIN { for (i = 1; i <= 100000; i++) print \"line \" i }'"}, {"name": "prepare", "run": "true"}]}`})
	var slow project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "slow", "provider": "local", "repository": repo,
		"events": []string{"push", "manual"}}, http.StatusOK, &slow)
	// A pushed run, for the filter to find among manual ones.
	pushed := a.waitRun(a.push(slow, "main", shas["main"]), 60*time.Second)
	var manual run
	a.json("POST", "/api/v1/projects/slow/runs", map[string]string{"ref": "quick"}, http.StatusOK, &manual)
	a.waitRun(manual.ID, 60*time.Second)
	var big run
	a.json("POST", "/api/v1/projects/slow/runs", map[string]string{"ref": "big"}, http.StatusOK, &big)
	a.waitRun(big.ID, 60*time.Second)
	// A finished demo run, for the deep link.
	var demo run
	a.json("POST", "/api/v1/projects/demo/runs", map[string]string{"ref": "main"}, http.StatusOK, &demo)
	demo = a.waitRun(demo.ID, 60*time.Second)

	// A repository for the project form to create a project of.
	formRepo, _ := gitRepo(t, map[string]string{"main": `{"steps": [{"name": "hello", "run": "echo hello"}]}`})

	env := []string{"SIMPLECI_FORM_REPO=" + formRepo, "SIMPLECI_PLAYWRIGHT=" + modules, "SIMPLECI_BASE=" + a.base, "SIMPLECI_LINK=" + link,
		"SIMPLECI_TOKEN=" + a.token, "SIMPLECI_DEMO_RUN=" + demo.ID, "SIMPLECI_PUSHED_RUN=" + pushed.ID, "SIMPLECI_BIG_RUN=" + big.ID}
	for _, s := range []struct{ name, script string }{
		{"sign in with the one-click link and a pasted token, sign out", "signin.mjs"},
		{"start the demo run, expand a step, download its log, read its events, run it again", "demo.mjs"},
		{"watch a log grow live, in colour, following until scrolled up", "live.mjs"},
		{"filter runs by event and date, kept in the URL; paging", "filter.mjs"},
		{"cancel a running run", "cancel.mjs"},
		{"set a secret: its value is nowhere in the page", "secret.mjs"},
		{"create a project with the form, change its settings, delete it", "project.mjs"},
		{"a link to a log line highlights it in view", "deeplink.mjs"},
		{"usable at phone width", "phone.mjs"},
		{"a 100,000-line log stays responsive", "biglog.mjs"},
	} {
		t.Run(s.name, func(t *testing.T) { runUIScript(t, s.script, env) })
	}
	// SIMPLECI_UI_SCREENSHOTS=$PWD/docs/images refreshes the README's screenshots.
	if dir := os.Getenv("SIMPLECI_UI_SCREENSHOTS"); dir != "" {
		runUIScript(t, "screenshots.mjs", append(env, "SIMPLECI_UI_SCREENSHOTS="+dir))
	}

	// The link carries the admin token, which is printed on the first start only; a later
	// start says where the token is.
	t.Run("a later start prints where the token is, not the token", func(t *testing.T) {
		p.restart(t)
		eventually(t, 60*time.Second, "readiness after the restart", func() bool { return a.up("/readyz") })
		eventually(t, 30*time.Second, "the web UI's address in the output", func() bool {
			b, _ := os.ReadFile(p.log)
			return strings.Contains(string(b), "Open the web UI: "+a.base+"/ (sign in with the admin token from ")
		})
		b, _ := os.ReadFile(p.log)
		if n := strings.Count(string(b), a.token); n != 2 {
			t.Fatalf("the admin token is in the output %d times, want twice (the first start's token line and link)", n)
		}
	})
}

// runUIScript runs testdata/ui/SCRIPT with node; its output is shown when it fails.
func runUIScript(t *testing.T, script string, env []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, _ := filepath.Abs("testdata/ui")
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	if len(out) > 0 {
		t.Logf("%s:\n%s", script, out)
	}
}
