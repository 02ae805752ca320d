package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTemplatesInStep runs a pipeline whose commands and env use
// templates fed with hostile context values: the values arrive exactly,
// nothing they contain runs.
func TestTemplatesInStep(t *testing.T) {
	nonce := make([]byte, 8)
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	pwned := filepath.Join(os.TempDir(), "pwned-"+hex.EncodeToString(nonce))
	t.Cleanup(func() { os.Remove(pwned) })
	branch := "feat/$(touch " + pwned + ")`touch " + pwned + "`'\"; touch " + pwned + "\n\\$HOME"
	title := "It's \"fixed\"; touch " + pwned + " #"
	p := mustPipeline(t,
		step{"name": "Show", "env": map[string]string{"BRANCH": "{{ context.branch }}", "TITLE_UPPER": "{{ context.pull_request.title.upperAscii() }}", "MODE_SEEN": "{{ env.MODE }}"},
			"condition": "env.MODE_SEEN == 'ci'",
			"run":       []string{"printf '%s' {{ context.branch }} > branch", `printf '%s' "{{ context.pull_request.title }}" > title`, `printf '%s' "$BRANCH" > env-branch`, `printf '%s|%s' "$TITLE_UPPER" "$MODE_SEEN" > env-more`}},
		step{"name": "Script", "run": "sh scripts/{{ context.event }}.sh"},
	)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scripts", "push.sh"), []byte("echo pushed > pushed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, rec := run(t, context.Background(), Job{Pipeline: p, Dir: dir, Env: map[string]string{"MODE": "ci"},
		Context: map[string]any{"event": "push", "branch": branch, "pull_request": map[string]any{"title": title}}})
	if res.Status != StatusSucceeded {
		t.Fatalf("status %s %q: %s", res.Status, res.Reason, rec.output(0, "stderr"))
	}
	for file, want := range map[string]string{"branch": branch, "title": title, "env-branch": branch,
		"env-more": strings.ToUpper(title) + "|ci", "pushed": "pushed\n"} {
		if got, err := os.ReadFile(filepath.Join(dir, file)); err != nil || string(got) != want {
			t.Errorf("%s: %q %v, want %q", file, got, err, want)
		}
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("a context value was executed")
	}
}

// TestTemplateFailureFailsStep: a template that cannot be rendered fails
// its step before any command runs, naming the step and the template.
func TestTemplateFailureFailsStep(t *testing.T) {
	p := mustPipeline(t,
		step{"name": "Build", "run": []string{"touch ran", "echo {{ context.nope }}"}},
		step{"name": "Env", "condition": "always()", "env": map[string]string{"X": "{{ context.missing }}"}, "run": "touch ran-env"},
		step{"name": "Skipped env", "condition": "always() && context.event == 'tag'", "env": map[string]string{"X": "{{ context.missing }}"}, "run": "touch ran-skipped"},
		step{"name": "Cleanup", "condition": "always()", "run": "echo {{ context.event }} > cleanup"},
	)
	dir := t.TempDir()
	res, rec := run(t, context.Background(), Job{Pipeline: p, Dir: dir, Context: map[string]any{"event": "push"}})
	if res.Status != StatusFailed {
		t.Fatalf("status %s", res.Status)
	}
	if got, want := rec.statuses(), "0:failed 1:failed 2:skipped 3:succeeded"; got != want {
		t.Errorf("statuses %q, want %q", got, want)
	}
	want0 := `step "Build": run command 2: {{ context.nope }}: no such key "nope"; a key that may be missing needs a guard such as has(context.nope), 'nope' in context or context.?nope.orValue('') (at column 9 of the expression)`
	if got := rec.reason(0); got != want0 {
		t.Errorf("reason %q\nwant %q", got, want0)
	}
	if got := rec.reason(1); !strings.HasPrefix(got, `step "Env": env.X: {{ context.missing }}: no such key "missing"`) {
		t.Errorf("reason %q", got)
	}
	if res.Steps[0].ExitCode != -1 || res.Reason != `step "Build" failed: `+want0 {
		t.Errorf("exit %d, run reason %q", res.Steps[0].ExitCode, res.Reason)
	}
	for _, f := range []string{"ran", "ran-env", "ran-skipped"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s: a command ran although its step's templates failed", f)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "cleanup")); string(got) != "push\n" {
		t.Errorf("cleanup wrote %q", got)
	}
}
