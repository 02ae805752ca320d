package local

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe to read while Exec writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type execResult struct {
	code           int
	stdout, stderr string
}

func execIn(ctx context.Context, dir string, color bool, env map[string]string, args ...string) execResult {
	var out, errOut syncBuffer
	code := Exec(ctx, args, Stdio{Stdout: &out, Stderr: &errOut, Dir: dir, Color: color,
		Getenv: func(k string) string { return env[k] }})
	return execResult{code, out.String(), errOut.String()}
}

// pipelineDir writes a pipeline to a new directory's .simpleci/pipeline.json.
func pipelineDir(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".simpleci", "pipeline.json"), content)
	return dir
}

const demo = `{"steps": [
  {"name": "Hello", "run": ["echo hello", "echo to-stderr >&2"]},
  {"name": "Env", "run": "echo \"var=$VAR token=$TOKEN\"; printf %s \"$TOKEN\" | base64"},
  {"name": "Deploy", "condition": "context.event == 'tag'", "run": "echo deploying"},
  {"name": "Branch", "condition": "context.branch == 'main' && env.VAR == 'v'", "run": "printf 'no newline'"}
]}`

func TestExec(t *testing.T) {
	tests := []struct {
		name     string
		pipeline string // default: demo
		files    map[string]string
		args     []string
		env      map[string]string
		color    bool
		code     int
		stdout   []string // substrings, in this order
		absent   []string
		stderr   string
	}{
		{
			name: "success", args: []string{"--env", "VAR=v", "--secret", "TOKEN=s3cr3t-value"},
			stdout: []string{
				".simpleci/pipeline.json: 4 steps, event push, branch main at 0123456789ab\n",
				"==> Hello\nhello\nto-stderr\n",
				"==> Env\nvar=v token=***\n***\n",
				"--> Deploy: skipped (condition is false: context.event == 'tag')\n",
				"==> Branch\nno newline\n",
				"\nSTEP    STATUS     DURATION\nHello   succeeded  ",
				"Deploy  skipped    -\n",
				"\nrun succeeded in ",
			},
			absent: []string{"s3cr3t", "\x1b["},
		},
		{
			name: "colors on a terminal", args: []string{"--env", "VAR=v"}, color: true,
			stdout: []string{"\x1b[1m\x1b[36m==> Hello\x1b[0m\n", "hello\n\x1b[31mto-stderr\x1b[0m\n", "\x1b[32msucceeded"},
		},
		{
			name: "secret and env from the caller's environment", args: []string{"--env", "VAR", "--secret", "TOKEN"},
			env:    map[string]string{"VAR": "v", "TOKEN": "from-env-secret"},
			stdout: []string{"var=v token=***\n***\n"}, absent: []string{"from-env-secret"},
		},
		{
			name: "event and context flags", args: []string{"--event", "tag", "--context", "branch=dev", "--env", "VAR=v"},
			stdout: []string{"event tag, branch dev at 0123456789ab\n", "==> Deploy\ndeploying\n", "--> Branch: skipped (condition is false: context.branch == 'main' && env.VAR == 'v')"},
		},
		{
			name: "condition error fails the run", code: 1,
			stdout: []string{"<== Branch: failed (condition: no such key \"VAR\"", "Branch  failed", "run failed in "},
		},
		{
			name: "failing step", pipeline: `{"steps": [{"name": "Bad", "run": ["true", "exit 3"]}, {"name": "After", "run": "echo no"}, {"name": "Cleanup", "condition": "failure()", "run": "echo cleaning"}]}`,
			code:   1,
			stdout: []string{"<== Bad: failed (exit code 3 (command 2 of 2))", "--> After: skipped (an earlier step failed)", "==> Cleanup\ncleaning\n", `run failed in `, `step "Bad" failed: exit code 3`},
		},
		{
			name: "continueOnError", pipeline: `{"steps": [{"name": "Bad", "continueOnError": true, "run": "exit 1"}, {"name": "After", "run": "echo yes"}]}`,
			stdout: []string{"==> After\nyes\n", "run succeeded"},
		},
		{
			name: "timeout", pipeline: `{"steps": [{"name": "Slow", "run": "sleep 10"}, {"name": "Always", "condition": "always()", "run": "echo always"}]}`,
			args: []string{"--timeout", "300ms"}, code: 1,
			stdout: []string{"<== Slow: timed out (the job exceeded its time limit of 300ms)", "==> Always\nalways\n", "Slow    timed_out", "run timed out in"},
		},
		{
			name: "yaml default", files: map[string]string{".simpleci/pipeline.yaml": `{"steps": [{"name": "Y", "run": "echo from yaml"}]}`},
			stdout: []string{".simpleci/pipeline.yaml: 1 step", "from yaml"},
		},
		{
			name: "-f", files: map[string]string{"ci/other.json": `{"steps": [{"name": "Other", "run": "pwd"}]}`},
			args: []string{"-f", "ci/other.json"}, stdout: []string{"ci/other.json: 1 step", "==> Other\n"},
		},
		{
			name: "invalid pipeline", pipeline: `{"steps": [{"name": "A", "run": "true", "condition": "nope == 1"}, {"name": "A", "run": 3}]}`,
			code: 2, stderr: ".simpleci/pipeline.json:1:55: step \"A\": condition: undeclared reference to 'nope'\n" +
				".simpleci/pipeline.json:1:77: step \"A\": duplicate step name \"A\": the first step with this name is at 1:21\n" +
				".simpleci/pipeline.json:1:89: step \"A\": \"run\" must be a command or a list of commands, not a number\n",
		},
		{name: "no pipeline", files: map[string]string{}, code: 2, stderr: "no pipeline here"},
		{name: "short secret", args: []string{"--secret", "PIN=123"}, code: 2, stderr: "--secret PIN: the value has 3 characters; secrets need at least 4, because every occurrence"},
		{name: "short multi-byte secret", args: []string{"--secret", "K=äöü"}, code: 2, stderr: "has 3 characters"},
		{name: "secret without value", args: []string{"--secret", "MISSING"}, code: 2, stderr: "MISSING is not set in the environment"},
		{name: "unknown flag", args: []string{"--nope"}, code: 2, stderr: "flag provided but not defined: -nope\nusage: simpleci exec"},
		{name: "stray argument", args: []string{"build"}, code: 2, stderr: `unexpected argument "build"`},
		{name: "bad context", args: []string{"--context", "novalue"}, code: 2, stderr: `want KEY=VALUE, got "novalue"`},
		{name: "negative timeout", args: []string{"--timeout", "-1s"}, code: 2, stderr: "--timeout must not be negative"},
		{name: "help", args: []string{"--help"}, code: 0, stderr: "usage: simpleci exec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			switch {
			case tt.files != nil:
				for name, content := range tt.files {
					writeFile(t, filepath.Join(dir, name), content)
				}
			case tt.pipeline != "":
				writeFile(t, filepath.Join(dir, ".simpleci", "pipeline.json"), tt.pipeline)
			default:
				writeFile(t, filepath.Join(dir, ".simpleci", "pipeline.json"), demo)
			}
			r := execIn(context.Background(), dir, tt.color, tt.env, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tt.code, r.stdout, r.stderr)
			}
			rest := r.stdout
			for _, want := range tt.stdout {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Errorf("stdout lacks %q (in order)\nstdout:\n%s", want, r.stdout)
					break
				}
				rest = rest[i+len(want):]
			}
			for _, bad := range tt.absent {
				if strings.Contains(r.stdout, bad) {
					t.Errorf("stdout contains %q:\n%s", bad, r.stdout)
				}
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr %q lacks %q", r.stderr, tt.stderr)
			}
			if tt.code == 0 && tt.stderr == "" && r.stderr != "" {
				t.Errorf("stderr: %q", r.stderr)
			}
		})
	}
}

func TestExecCancel(t *testing.T) {
	dir := pipelineDir(t, `{"steps": [
		{"name": "Long", "run": "echo started; echo $$ > pid; sleep 30"},
		{"name": "Never", "run": "echo never"},
		{"name": "On cancel", "condition": "cancelled()", "run": "echo cleanup"}]}`)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Exec(ctx, nil, Stdio{Stdout: &out, Stderr: &out, Dir: dir})
	}()
	waitFor(t, func() bool { return strings.Contains(out.String(), "started\n") })
	start := time.Now()
	cancel()
	select {
	case code := <-done:
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Exec did not return after the cancel")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to stop", d)
	}
	got := out.String()
	for _, want := range []string{"<== Long: cancelled (the run was cancelled)", "--> Never: skipped (the run was cancelled)",
		"==> On cancel\ncleanup\n", "Long       cancelled", "run cancelled in"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReadGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	dir := t.TempDir()
	if g := readGit(dir); g != (gitInfo{}) {
		t.Errorf("not a repository: %+v", g)
	}
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q", "-b", "feature/x")
	if g := readGit(dir); g != (gitInfo{}) {
		t.Errorf("no commit yet: %+v", g)
	}
	git("commit", "-q", "--allow-empty", "-m", "first")
	g := readGit(filepath.Join(dir))
	real, _ := filepath.EvalSymlinks(dir)
	if g.branch != "feature/x" || g.ref != "refs/heads/feature/x" || !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(g.sha) || g.top != real {
		t.Errorf("on a branch: %+v", g)
	}
	git("checkout", "-q", "--detach")
	if g2 := readGit(dir); g2.branch != "" || g2.ref != "" || g2.sha != g.sha {
		t.Errorf("detached: %+v", g2)
	}
}

func TestBuildContext(t *testing.T) {
	o := options{event: "pull_request", context: &kvFlag{list: []kv{{"actor", "me"}, {"event", "manual"}, {"extra", "1"}}}}
	calls := 0
	ctx := buildContext("/work/proj", &o, func() gitInfo {
		calls++
		return gitInfo{branch: "b", ref: "refs/heads/b", sha: "abc", top: "/work/repo"}
	})
	want := map[string]any{"event": "manual", "provider": "local", "repository": "repo", "branch": "b", "ref": "refs/heads/b",
		"sha": "abc", "actor": "me", "run_id": "local", "run_number": "0", "extra": "1"}
	for k, v := range want {
		if ctx[k] != v {
			t.Errorf("context.%s = %v, want %v", k, ctx[k], v)
		}
	}
	if len(ctx) != len(want) || calls != 1 {
		t.Errorf("context %v, git calls %d", ctx, calls)
	}
	o.context.list = append(o.context.list, kv{"branch", "x"}, kv{"ref", "y"}, kv{"sha", "z"})
	buildContext("/work/proj", &o, func() gitInfo { calls++; return gitInfo{} })
	if calls != 1 {
		t.Error("git asked although --context gave branch, ref and sha")
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		1234 * time.Microsecond:    "1.2ms",
		120 * time.Microsecond:     "100µs",
		1234567 * time.Microsecond: "1.23s",
		125 * time.Second:          "2m5s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
	}
}
