package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"steps":[{"name":"a","run":"x"}]}`,
		`{"steps":[{"name":"Install","condition":"context.event == 'push'","run":["echo \"hi\"","npm install"]}]}`,
		`{"steps":[{"name":"a","id":"b","condition":"failure() || env.?X.orValue('') == 'y'","run":"x","env":{"A":"1"},"timeout":"90s","continueOnError":true,"workingDirectory":"sub"}]}`,
		`{"steps":[{"name":"a","condition":"'\u00e9\ud83d\ude00' == x","run":"x"}]}`,
		`{"steps":[{"name":"a","condition":"\ud800 && nope","run":"x"}]}`,
		`{"steps":[{"name":"a","run":"x","run":"y"},{"name":"a"}]}`,
		`{"steps":[{"name":"a","run":["echo {{ context.branch }} '{{context.x}}' \"{{ env.A }}\"","cat <<E\n{{ '{{' }}\nE\n$(( {{1}} ))"],"env":{"A":"{{ context.sha }}"}}]}`,
		`{"$schema":"x","steps":[{"name":"a","run":"echo {{ nope","env":{"B":"{{ [1] }}"}}]}`,
		`{"steps":[]}`, `[]`, ``, `{`, `{"steps":[{"name":"a","run":"x",}]}`, "{\"steps\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.json", data)
		if err != nil {
			if p != nil {
				t.Fatal("pipeline and error")
			}
			checkErrors(t, err, data, "f.json")
			return
		}
		if len(p.Steps) == 0 {
			t.Fatal("no steps")
		}
		ids := map[string]bool{}
		for _, s := range p.Steps {
			if ids[s.ID] {
				t.Fatalf("duplicate id %q", s.ID)
			}
			ids[s.ID] = true
			checkStep(t, s)
		}
	})
}

// FuzzParseYAML is FuzzParse for the YAML reader, plus a cross-check: a
// valid YAML pipeline, written out as JSON, parses to the same steps.
func FuzzParseYAML(f *testing.F) {
	for _, seed := range []string{
		"steps:\n  - name: a\n    run: x\n",
		"steps:\n  - name: Install\n    condition: context.event == 'push'\n    run:\n      - echo \"hi\"\n      - npm install\n",
		"steps:\n- name: a\n  id: b\n  condition: failure() || env.?X.orValue('') == 'y'\n  run: |\n    echo {{ context.branch }}\n    make\n  env: {A: \"{{ env.B }}\"}\n  timeout: 90s\n  continueOnError: true\n  workingDirectory: sub\n",
		"steps:\n  - name: a\n    condition: >-\n      true &&\n        nope\n    run: x\n",
		"steps:\n  - name: \"\\u00e9\\t{{\"\n    run: 'it''s'\n",
		"{\"steps\": [{\"name\": \"a\", \"run\": \"x\"}]}",
		"steps: &a [1]\nx: *a\n", "steps:\n  - <<: {name: a}\n", "steps: []\n", "- a\n", "", "a: [\n", "steps:\n\t- x\n",
		"steps: [{name: a, run: x}]\n---\nsteps: []\n", "steps:\n  - name: !!binary aGk=\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.yaml", data)
		if err != nil {
			checkErrors(t, err, data, "f.yaml")
			return
		}
		steps := make([]map[string]any, len(p.Steps))
		for i, s := range p.Steps {
			checkStep(t, s)
			m := map[string]any{"name": s.Name, "id": s.ID, "condition": s.Condition.String(), "run": s.Run}
			if s.Env != nil {
				m["env"] = s.Env
			}
			if s.Timeout > 0 {
				m["timeout"] = s.Timeout.String()
			}
			if s.ContinueOnError {
				m["continueOnError"] = true
			}
			if s.WorkingDirectory != "" {
				m["workingDirectory"] = s.WorkingDirectory
			}
			steps[i] = m
		}
		js, err := json.Marshal(map[string]any{"steps": steps})
		if err != nil {
			t.Fatal(err)
		}
		q, err := Parse("f.json", js)
		if err != nil {
			t.Fatalf("the YAML pipeline as JSON does not parse: %v\n%s", err, js)
		}
		for i := range p.Steps {
			a, b := exported(p.Steps[i]), exported(q.Steps[i])
			a.Pos, b.Pos = Position{}, Position{}
			if len(a.Env) == 0 {
				a.Env = nil
			}
			if len(b.Env) == 0 {
				b.Env = nil
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("step %d differs:\nyaml %+v\njson %+v", i, a, b)
			}
		}
	})
}

func checkErrors(t *testing.T, err error, data []byte, name string) {
	t.Helper()
	var errs Errors
	if !errors.As(err, &errs) || len(errs) == 0 {
		t.Fatalf("error %T %v", err, err)
	}
	lines := bytes.Count(data, []byte("\n")) + 1
	for _, e := range errs {
		if e.Line < 1 || e.Line > lines || e.Col < 1 || e.Msg == "" || e.File != name {
			t.Fatalf("bad error %+v", e)
		}
	}
}

func checkStep(t *testing.T, s *Step) {
	t.Helper()
	if s.Condition == nil || len(s.Run) == 0 || s.Name == "" || len(s.run) != len(s.Run) || len(s.env) != len(s.Env) {
		t.Fatalf("bad step %+v", s)
	}
	v := Vars{Env: map[string]string{"A": "1"}, Context: map[string]any{"event": "push", "branch": "x"}}
	_, _ = s.Condition.Eval(v)
	_, _ = s.Commands(v)
	_, _ = s.Environment(v)
}

// FuzzTemplate compiles and renders any template with any value. Never a
// panic; and when the template is a plain variable in one of the shell
// contexts, sh reads the rendered command back as exactly the value (sh
// runs only for short values, without PATH, in a fresh directory where
// nothing but the output file may appear).
func FuzzTemplate(f *testing.F) {
	for _, seed := range []struct {
		tmpl, value string
		ctx         uint8
	}{
		{"node scripts/{{context.event}}.js", "push", 0},
		{"echo '{{ context.v }}' \"{{ context.v }}\" $(echo {{ context.v }})", "$(touch x)", 1},
		{"{{ '}}' }} {{ {'a': 'b'}['a'] }} {{ context.v.size() }}", "'\"`\\", 2},
		{"cat <<EOF\n{{ '{{' }}\nEOF\n{{ context.v }}", "a\nEOF\nb", 3},
		{"echo ${{ context.v }} \\{{ context.v }} `{{ context.v }}`", "\x00", 4},
		{"{{ context.v + 'x' }}{{", "", 5},
		{"{{ [1,2][context.n] }} {{ context.n / 0 }} {{ context.list }}", "x", 6},
		{"echo $'\\'' {{ context.v }} # {{ context.v }}", "\xff", 7},
	} {
		f.Add(seed.tmpl, seed.value, seed.ctx)
	}
	wrappers := []struct{ before, after string }{
		{"printf %s ", ""},
		{"printf %s '", "'"},
		{`printf %s "`, `"`},
		{"printf %s x", "y"},
		{`printf %s "$(printf %s "`, `"; printf .)"`},
		{"x=$(printf %s ", "; printf .); printf %s \"${x%.}\""},
		{"case a in *) printf %s ", ";; esac"},
		{"printf %s '<'", "'>'"},
	}
	f.Fuzz(func(t *testing.T, tmpl, value string, ctx uint8) {
		vars := Vars{
			Env:     map[string]string{"V": value},
			Context: map[string]any{"v": value, "event": value, "n": int64(len(value)), "list": []any{value}},
			Steps:   map[string]StepState{"s": {Status: value}},
			Run:     RunState{Status: value},
		}
		for _, q := range []Quoting{Raw, Shell} {
			tm, err := CompileTemplate(tmpl, q)
			if err != nil {
				var errs Errors
				if !errors.As(err, &errs) || len(errs) == 0 {
					t.Fatalf("compile error %T %v", err, err)
				}
				continue
			}
			out, err := tm.Render(vars)
			if err == nil && tm.Literal() && q == Raw && !strings.Contains(tmpl, "{{") && out != tmpl {
				t.Fatalf("literal %q rendered as %q", tmpl, out)
			}
		}

		// The round trip through sh, for a plain variable.
		w := wrappers[int(ctx)%len(wrappers)]
		src := w.before + "{{ context.v }}" + w.after
		tm, err := CompileTemplate(src, Shell)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		cmd, err := tm.Render(vars)
		if strings.IndexByte(value, 0) >= 0 {
			if err == nil {
				t.Fatalf("a value with NUL rendered: %q", cmd)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q with %q: %v", src, value, err)
		}
		if len(value) > 64 {
			return
		}
		dir := t.TempDir()
		c := exec.Command("sh", "-e", "-c", cmd+" > out")
		c.Dir, c.Env = dir, []string{"PATH=/nonexistent"}
		if msg, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%q with %q: %v %s\nrendered %q", src, value, err, msg, cmd)
		}
		got, _ := os.ReadFile(filepath.Join(dir, "out"))
		want := value
		switch ctx % uint8(len(wrappers)) {
		case 3:
			want = "x" + value + "y"
		case 4:
			want = value + "."
		case 7:
			want = "<" + value + ">"
		}
		if string(got) != want {
			t.Fatalf("%q with %q: sh printed %q\nrendered %q", src, value, got, cmd)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Fatalf("%q with %q created files\nrendered %q", src, value, cmd)
		}
	})
}
