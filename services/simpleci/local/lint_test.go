package local

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/lint")

func TestMain(m *testing.M) {
	// Golden output must not depend on the checkout the tests run in.
	readGitFn = func(string) gitInfo {
		return gitInfo{branch: "main", ref: "refs/heads/main", sha: "0123456789abcdef0123456789abcdef01234567", top: "/src/demo"}
	}
	os.Setenv("USER", "tester")
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// lintRun runs Lint in dir and returns its exit code and output.
func lintRun(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Lint(args, Stdio{Stdout: &out, Stderr: &errOut, Dir: dir, Getenv: func(string) string { return "" }})
	return code, out.String(), errOut.String()
}

func TestLintGolden(t *testing.T) {
	tests := []struct {
		golden string
		args   []string
	}{
		{"seed", []string{"-f", "seed.json"}},
		{"seed-preview-push", []string{"-f", "seed.json", "--event", "push", "--env", "ENABLE_TESTS=true"}},
		{"seed-preview-unset-env", []string{"-f", "seed.json", "--event", "push"}},
		{"seed-preview-tag", []string{"-f", "seed.json", "--event", "tag"}},
		{"statuses-preview-push", []string{"-f", "statuses.json", "--event", "push"}},
		{"statuses-preview-tag-branch", []string{"-f", "statuses.json", "--event", "tag", "--context", "branch=release", "--env", "DEPLOY=yes"}},
		{"errors", []string{"-f", "errors.json", "--event", "push"}},
		{"syntax", []string{"-f", "syntax.json"}},
		{"empty", []string{"-f", "empty.json"}},
		{"seed-yaml-preview-push", []string{"-f", "seed.yaml", "--event", "push", "--env", "ENABLE_TESTS=true"}},
		{"errors-yaml", []string{"-f", "errors.yaml"}},
		{"templates-preview", []string{"-f", "templates.json", "--event", "push"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errOut := lintRun(t, "testdata/lint", tt.args...)
			got := fmt.Sprintf("$ simpleci lint %s\n%sexit %d\n", strings.Join(tt.args, " "), out, code)
			if errOut != "" {
				t.Errorf("stderr: %q", errOut)
			}
			path := filepath.Join("testdata", "lint", tt.golden+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (go test -update rewrites it)\n--- got\n%s--- want\n%s", path, got, want)
			}
		})
	}
}

func TestLintExitCodes(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		code    int
		stderr  string
		stdout  string
		prepare func()
	}{
		{name: "no pipeline", code: 2, stderr: "no pipeline here"},
		{name: "missing -f", args: []string{"-f", "nope.json"}, code: 2, stderr: "nope.json: no such file"},
		{name: "unknown flag", args: []string{"--bogus"}, code: 2, stderr: "flag provided but not defined: -bogus"},
		{name: "argument", args: []string{"pipeline.json"}, code: 2, stderr: `unexpected argument "pipeline.json"`},
		{name: "secret is exec only", args: []string{"--secret", "A=abcd"}, code: 2, stderr: "-secret"},
		{name: "bad env", args: []string{"--env", "=x"}, code: 2, stderr: "want KEY=VALUE"},
		{name: "env from missing variable", args: []string{"--env", "NOT_SET_ANYWHERE"}, code: 2, stderr: "NOT_SET_ANYWHERE is not set"},
		{name: "help", args: []string{"-h"}, code: 0, stderr: "usage: simpleci lint"},
		{name: "default json", code: 0, stdout: ".simpleci/pipeline.json: ok, 1 step\n", prepare: func() {
			writeFile(t, filepath.Join(dir, ".simpleci", "pipeline.json"), `{"steps": [{"name": "a", "run": "true"}]}`)
		}},
		{name: "invalid", code: 1, stdout: `.simpleci/pipeline.json:1:26: step "a": unknown field "command", did you mean "run"?` + "\n", prepare: func() {
			writeFile(t, filepath.Join(dir, ".simpleci", "pipeline.json"), `{"steps": [{"name": "a", "command": "true"}]}`)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prepare != nil {
				tt.prepare()
			}
			code, out, errOut := lintRun(t, dir, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", errOut, tt.stderr)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout %q, want %q", out, tt.stdout)
			}
		})
	}
}

func TestLintPrefersJSONThenYAML(t *testing.T) {
	dir := t.TempDir()
	// JSON is YAML too, so this file is valid whichever parser reads it.
	writeFile(t, filepath.Join(dir, ".simpleci", "pipeline.yaml"), `{"steps": [{"name": "a", "run": "true"}]}`)
	if code, out, _ := lintRun(t, dir); code != 0 || out != ".simpleci/pipeline.yaml: ok, 1 step\n" {
		t.Errorf("only yaml: exit %d %q", code, out)
	}
	writeFile(t, filepath.Join(dir, ".simpleci", "pipeline.json"), `{"steps": [{"name": "a", "run": "true"}, {"name": "b", "run": "true"}]}`)
	if code, out, _ := lintRun(t, dir); code != 0 || out != ".simpleci/pipeline.json: ok, 2 steps\n" {
		t.Errorf("both: exit %d %q", code, out)
	}
}

var jsonBlock = regexp.MustCompile("(?s)```json\n(.*?)```")

// TestDesignExamplesPassLint lints every JSON block of the design's
// PIPELINE.md (copied to testdata/examples, since the design folder is
// outside the repository) and the demo project's pipeline.
func TestDesignExamplesPassLint(t *testing.T) {
	md, err := os.ReadFile("testdata/examples/PIPELINE.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := jsonBlock.FindAllSubmatch(md, -1)
	if len(blocks) < 2 {
		t.Fatalf("found %d json blocks in PIPELINE.md", len(blocks))
	}
	for i, b := range blocks {
		t.Run(fmt.Sprintf("PIPELINE.md block %d", i+1), func(t *testing.T) {
			data := bytes.TrimSpace(b[1])
			dec := json.NewDecoder(bytes.NewReader(data))
			var first map[string]any
			if err := dec.Decode(&first); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			if _, whole := first["steps"]; whole {
				if dec.More() {
					t.Fatal("a whole pipeline followed by more JSON")
				}
				dir := t.TempDir()
				writeFile(t, filepath.Join(dir, ".simpleci", "pipeline.json"), string(data))
				if code, out, errOut := lintRun(t, dir, "--event", "push"); code != 0 {
					t.Errorf("exit %d\n%s%s", code, out, errOut)
				}
				return
			}
			// A block of step objects (the cache-files / store-files
			// examples): lint them as the steps of a pipeline.
			steps := []string{}
			dec = json.NewDecoder(bytes.NewReader(data))
			for dec.More() {
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					t.Fatalf("not JSON: %v", err)
				}
				steps = append(steps, string(raw))
			}
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, ".simpleci", "pipeline.json"), `{"steps": [`+strings.Join(steps, ",\n")+`]}`)
			if code, out, errOut := lintRun(t, dir, "--event", "push"); code != 0 {
				t.Errorf("exit %d\n%s%s", code, out, errOut)
			}
		})
	}
	t.Run("docs/examples/demo", func(t *testing.T) {
		for _, event := range []string{"push", "tag", "manual"} {
			code, out, errOut := lintRun(t, "../../../docs/examples/demo", "--event", event)
			if code != 0 {
				t.Errorf("--event %s: exit %d\n%s%s", event, code, out, errOut)
			}
		}
	})
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"a == 'x  y'":            "a == 'x  y'",
		"  always() &&\n   b  ":  "always() && b",
		"a ||\r\n b\n\n|| c":     "a || b || c",
		"":                       "",
		"context.event == 'tag'": "context.event == 'tag'",
	} {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
