package pipeline

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// shells are the sh implementations the injection tests run: sh (the one
// the engine uses) and bash, when installed, which reads more syntax.
func shells(t testing.TB) []string {
	out := []string{"sh"}
	if _, err := exec.LookPath("bash"); err == nil {
		out = append(out, "bash")
	}
	return out
}

// runShell runs cmd with `SHELL -e -c` in dir and returns its stderr.
func runShell(t testing.TB, shell, dir, cmd string, env []string) (string, error) {
	t.Helper()
	c := exec.Command(shell, "-e", "-c", cmd)
	c.Dir = dir
	c.Env = env
	var stderr bytes.Buffer
	c.Stderr = &stderr
	err := c.Run()
	return stderr.String(), err
}

// TestShellInjection renders hostile branch names, PR titles and commit
// messages into commands, runs them with sh -e -c (and bash), and checks
// that nothing the values contain was executed and that each value
// arrived byte for byte as the argument.
func TestShellInjection(t *testing.T) {
	nonce := make([]byte, 8)
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	pwned := filepath.Join(os.TempDir(), "pwned-"+hex.EncodeToString(nonce))
	t.Cleanup(func() { os.Remove(pwned) })
	touch := "touch " + pwned
	hostile := []string{
		"$(" + touch + ")",
		"`" + touch + "`",
		"'; " + touch + "; '",
		`"; ` + touch + `; "`,
		"';" + touch + ";'",
		"main\n" + touch,
		"a;" + touch,
		"a && " + touch + " || true",
		"a | " + touch,
		"$(" + touch + ")'\"`" + touch + "`\"'",
		`\'$(` + touch + `)`,
		`\`, `\\`, `'`, `''`, `"`, `\"`, "'\\''",
		"$HOME", "${HOME}", "$0 $1 $@ $* $# $? $$ $!", "$((1+1))", "$'\\x27'",
		"*", "~", "~root", "{a,b}", "a b  c\t d", " leading and trailing ", "-n", "-e", "--", "%s%n%%",
		"!!", "!$", "#not a comment", "x #comment",
		"\n", "\r\n", "line1\nline2\n", "EOF\n" + touch + "\nEOF",
		"", "ünïcødé ✓ 日本", "\x01\x02\x1b[31mred\x7f",
		"\xff\xfe invalid utf-8",
	}
	// Where a value can be used, and what the command must print for v.
	commands := []struct {
		tmpl string
		want func(v string) string
	}{
		{"printf %s {{X}} > out", func(v string) string { return v }},
		{"printf %s {{X}}{{X}} > out", func(v string) string { return v + v }},
		{"printf %s pre{{X}}post > out", func(v string) string { return "pre" + v + "post" }},
		{"printf %s '{{X}}' > out", func(v string) string { return v }},
		{"printf %s 'pre {{X}} post' > out", func(v string) string { return "pre " + v + " post" }},
		{`printf %s "{{X}}" > out`, func(v string) string { return v }},
		{`printf %s "pre $SIMPLE{{X}} post" > out`, func(v string) string { return "pre simple" + v + " post" }},
		{`x=$(printf %s {{X}}; printf .); printf %s "${x%.}" > out`, func(v string) string { return v }},
		{`printf %s "$(printf %s "{{X}}"; printf .)" > out`, func(v string) string { return v + "." }},
		{`X={{X}}; printf %s "$X" > out`, func(v string) string { return v }},
		{"cat > out <<'EOF'\nliteral {{ '{{' }} $(x)\nEOF\nprintf %s {{X}} >> out", func(v string) string { return "literal {{ $(x)\n" + v }},
		{"printf %s {{X}} > out # a comment", func(v string) string { return v }},
		{"case {{X}} in *) printf %s {{X}} > out;; esac", func(v string) string { return v }},
	}
	fields := []struct {
		expr string
		ctx  func(v string) map[string]any
	}{
		{"context.branch", func(v string) map[string]any { return map[string]any{"branch": v} }},
		{"context.pull_request.title", func(v string) map[string]any {
			return map[string]any{"pull_request": map[string]any{"title": v}}
		}},
		{"context.head_commit.message", func(v string) map[string]any {
			return map[string]any{"head_commit": map[string]any{"message": v}}
		}},
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "SIMPLE=simple", "HOME=/nonexistent"}
	runs := 0
	dir := t.TempDir()
	for _, shell := range shells(t) {
		for ci, c := range commands {
			for vi, v := range hostile {
				f := fields[(ci+vi)%len(fields)]
				src := strings.ReplaceAll(c.tmpl, "{{X}}", "{{ "+f.expr+" }}")
				tm, err := CompileTemplate(src, Shell)
				if err != nil {
					t.Fatalf("%q: %v", src, err)
				}
				cmd, err := tm.Render(Vars{Context: f.ctx(v)})
				if err != nil {
					t.Fatalf("%q: %v", src, err)
				}
				stderr, err := runShell(t, shell, dir, cmd, env)
				runs++
				if err != nil {
					t.Errorf("%s: %q with %q: %v: %s\nrendered: %s", shell, src, v, err, stderr, cmd)
					continue
				}
				got, err := os.ReadFile(filepath.Join(dir, "out"))
				if err != nil || string(got) != c.want(v) {
					t.Errorf("%s: %q with %q:\n got %q %v\nwant %q\nrendered: %s", shell, src, v, got, err, c.want(v), cmd)
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 1 {
					t.Errorf("%s: %q with %q: the command created %d files", shell, src, v, len(entries))
				}
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(pwned); err == nil {
					t.Fatalf("%s: %q with %q EXECUTED the value\nrendered: %s", shell, src, v, cmd)
				}
			}
		}
	}
	t.Logf("%d commands run with hostile values, none executed anything", runs)
}

// TestShellInjectionControl shows the check above can see an injection:
// inserting a quoted value blindly inside double quotes, as a naive
// renderer would, does execute it.
func TestShellInjectionControl(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	naive := `printf %s "` + ShellQuote("$(touch "+marker+")") + `" > out`
	if _, err := runShell(t, "sh", dir, naive, []string{"PATH=" + os.Getenv("PATH")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the naive rendering did not execute the value; the injection test would prove nothing")
	}
	tm, err := CompileTemplate(`printf %s "{{ context.v }}" > out`, Shell)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(marker)
	cmd, _ := tm.Render(Vars{Context: map[string]any{"v": "$(touch " + marker + ")"}})
	if _, err := runShell(t, "sh", dir, cmd, []string{"PATH=" + os.Getenv("PATH")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatalf("rendered %s executed the value", cmd)
	}
}

// TestTemplateScriptName is the example from the design: a quoted simple
// word is the word itself to sh.
func TestTemplateScriptName(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scripts", "push.js"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tm, err := CompileTemplate("cat scripts/{{context.event}}.js > out", Shell)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := tm.Render(Vars{Context: map[string]any{"event": "push"}})
	if err != nil || cmd != "cat scripts/'push'.js > out" {
		t.Fatalf("%q %v", cmd, err)
	}
	for _, shell := range shells(t) {
		if stderr, err := runShell(t, shell, dir, cmd, []string{"PATH=" + os.Getenv("PATH")}); err != nil {
			t.Fatalf("%s: %v %s", shell, err, stderr)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "out")); string(got) != "x" {
			t.Errorf("%s: read %q", shell, got)
		}
	}
}
