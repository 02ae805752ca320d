package pipeline

import (
	"errors"
	"strings"
	"testing"
)

func templateVars() Vars {
	return Vars{
		Env: map[string]string{"TOKEN": "s3cr3t", "EMPTY": ""},
		Context: map[string]any{
			"event": "push", "branch": "feat/x", "n": 42, "neg": int64(-3), "u": uint(7), "f": 1.5, "big": 1e22, "b": true,
			"list": []any{"a", "b"}, "m": map[string]any{"k": "v"}, "nul": "a\x00b", "nothing": nil, "quote": "it's",
			"pull_request": map[string]any{"title": `Fix "it"`, "number": 12},
		},
		Steps: map[string]StepState{"build": {Status: StatusSucceeded}},
		Run:   RunState{Status: StatusFailed},
	}
}

func TestTemplateRender(t *testing.T) {
	tests := []struct {
		src  string
		q    Quoting
		want string
		err  string // exact RenderError text
	}{
		{src: "plain text, no templates", q: Raw, want: "plain text, no templates"},
		{src: "", q: Shell, want: ""},
		{src: "}} alone is text", q: Shell, want: "}} alone is text"},
		{src: "{{context.event}}", q: Raw, want: "push"},
		{src: "x-{{ context.n }}-{{context.neg}}-{{context.u}}-{{context.f}}-{{context.b}}-{{ 0.1 + 0.2 }}", q: Raw, want: "x-42--3-7-1.5-true-0.30000000000000004"},
		{src: "{{ context.big }} {{ 2.0 }} {{ -0.0 }}", q: Raw, want: "1e+22 2 -0"},
		{src: "{{ env.TOKEN }}{{ env.EMPTY }}", q: Raw, want: "s3cr3t"},
		{src: "{{ steps.build.status }}/{{ run.status }}/{{ failure() }}/{{ success() }}", q: Raw, want: "succeeded/failed/true/false"},
		{src: "{{ context.pull_request.title }} #{{ context.pull_request.number }}", q: Raw, want: `Fix "it" #12`},
		{src: "{{ context.quote }}", q: Raw, want: "it's"},
		{src: "{{ '{{' }}.Id}}", q: Raw, want: "{{.Id}}"},
		{src: "{{ '}}' }}{{ {'a': 'b'}['a'] }}{{ \"x}}\" }}{{ r'\\' }}{{ '''a'b''' }}", q: Raw, want: `}}bx}}\a'b`},
		{src: "{{ context.list.join(',') }} {{ context.branch.upperAscii() }}", q: Raw, want: "a,b FEAT/X"},
		{src: "{{ env.?MISSING.orValue('none') }}", q: Raw, want: "none"},
		{src: "node scripts/{{context.event}}.js", q: Shell, want: "node scripts/'push'.js"},
		{src: "echo {{context.quote}}", q: Shell, want: `echo 'it'\''s'`},
		{src: "echo '{{context.quote}}'", q: Shell, want: `echo 'it'\''s'`},
		{src: `echo "a {{context.quote}} b"`, q: Shell, want: `echo "a "'it'\''s'" b"`},
		{src: `echo "$HOME{{context.event}}"`, q: Shell, want: `echo "$HOME"'push'""`},
		{src: `echo $(echo {{context.event}}) "$(echo {{context.event}})"`, q: Shell, want: `echo $(echo 'push') "$(echo 'push')"`},
		{src: "{{context.event}}", q: Shell, want: "'push'"},
		{src: "{{ context.nope }}", q: Raw, err: `template: {{ context.nope }}: no such key "nope"; a key that may be missing needs a guard such as has(context.nope), 'nope' in context or context.?nope.orValue('') (at column 9 of the expression)`},
		{src: "a {{ env.NOPE }}", q: Shell, err: `template: {{ env.NOPE }}: no such key "NOPE"; a variable that may be unset needs a guard such as has(env.NOPE), 'NOPE' in env or env.?NOPE.orValue('') (at column 5 of the expression)`},
		{src: "{{ context.list }}", q: Raw, err: `template: {{ context.list }}: cannot insert a value of type list: a template inserts strings, numbers and bools (pick an element, or join the list: .join(','))`},
		{src: "{{ context.m }}", q: Raw, err: `template: {{ context.m }}: cannot insert a value of type map: a template inserts strings, numbers and bools (pick a field)`},
		{src: "{{ context.nothing }}", q: Raw, err: `template: {{ context.nothing }}: cannot insert null: a template inserts strings, numbers and bools`},
		{src: "{{ context.nul }}", q: Raw, err: `template: {{ context.nul }}: the value contains a NUL character, which no command or variable can hold`},
		{src: "{{ context.n / 0 }}", q: Raw, err: `template: {{ context.n / 0 }}: division by zero (at column 12 of the expression)`},
		{src: "{{ context.event + 1 }}", q: Raw, err: `template: {{ context.event + 1 }}: no such overload: no function or operator takes arguments of these types (a type mismatch) (at column 16 of the expression)`},
		{src: "{{ [1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, a+b+c+d+e > 0))))) }}", q: Raw,
			err: `template: {{ [1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, a+b+c+d+e > 0))))) }}: too expensive to evaluate (cost limit 100000 exceeded)`},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			tm, err := CompileTemplate(tt.src, tt.q)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			if tm.String() != tt.src || tm.Quoting() != tt.q || tm.Literal() != (!strings.Contains(tt.src, "{{") || strings.HasPrefix(tt.src, "{{ '{{' }}")) {
				t.Errorf("String %q Quoting %v Literal %v", tm.String(), tm.Quoting(), tm.Literal())
			}
			got, err := tm.Render(templateVars())
			if tt.err != "" {
				var re *RenderError
				if !errors.As(err, &re) || err.Error() != tt.err {
					t.Fatalf("err %v\nwant %s", err, tt.err)
				}
				if got != "" {
					t.Errorf("rendered %q with an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestCompileTemplateErrors(t *testing.T) {
	tests := []struct {
		src  string
		q    Quoting
		want string
	}{
		{"echo {{ context.x", Shell, `template:1:6: unclosed template: "{{" without a matching "}}" (a literal "{{" is written {{ '{{' }})`},
		{"a {{ 'x }}", Raw, `template:1:3: unclosed template: "{{" without a matching "}}" (a literal "{{" is written {{ '{{' }})`},
		{"a {{ {'k': 1 }}", Raw, `template:1:3: unclosed template: "{{" without a matching "}}" (a literal "{{" is written {{ '{{' }})`},
		{"{{}}", Raw, `template:1:1: empty template "{{}}" (a literal "{{" is written {{ '{{' }})`},
		{"ok {{ nope }} and\n  {{ context.x +}}", Raw, "template:1:7: template: undeclared reference to 'nope'\n" +
			"template:2:17: template: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}"},
		{"{{ [1] }}", Raw, `template:1:4: cannot insert a value of type list(int): a template inserts strings, numbers and bools (pick an element, or join the list: .join(','))`},
		{"{{ {'a': 1} }}", Raw, `template:1:4: cannot insert a value of type map(string, int): a template inserts strings, numbers and bools (pick a field)`},
		{"{{ env.?X }}", Raw, `template:1:4: cannot insert a value of type optional_type(string): a template inserts strings, numbers and bools (add .orValue(''))`},
		{"{{ null }}", Raw, `template:1:4: cannot insert null: a template inserts strings, numbers and bools`},
		{"{{ b'x' }}", Raw, `template:1:4: cannot insert a value of type bytes: a template inserts strings, numbers and bools (convert it with string(...))`},
		{"{{ .Id }}", Raw, `template:1:5: template: undeclared reference to '.Id' (a literal "{{" is written {{ '{{' }})`},
		{"x\x00{{1}}", Shell, `template:1:2: contains a NUL character`},
		{"echo ${{ context.x }}", Shell, `template:1:7: a template cannot follow $: templates are written {{ expr }}, without a $`},
	}
	for _, tt := range tests {
		_, err := CompileTemplate(tt.src, tt.q)
		var errs Errors
		if !errors.As(err, &errs) || err.Error() != tt.want {
			t.Errorf("%q:\n got %v\nwant %s", tt.src, err, tt.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"": "''", "push": "'push'", "it's": `'it'\''s'`, "''": `''\'''\'''`, "a b\n$(x)`y`\\": "'a b\n$(x)`y`\\'",
	} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestShellPlacements renders the value v'1 into commands of every shape
// the shell lexer knows, and checks the exact text.
func TestShellPlacements(t *testing.T) {
	const v = "{{ context.v }}"
	tests := []struct{ cmd, want string }{
		{"echo " + v, `echo 'v'\''1'`},
		{"echo pre" + v + "post", `echo pre'v'\''1'post`},
		{"echo '" + v + "'", `echo 'v'\''1'`},
		{"echo 'a" + v + "b' " + v, `echo 'av'\''1b' 'v'\''1'`},
		{`echo "` + v + `"`, `echo ""'v'\''1'""`},
		{`echo "$X` + v + `"`, `echo "$X"'v'\''1'""`},
		{`echo "\"` + v + `"`, `echo "\""'v'\''1'""`},
		{`echo \\` + v, `echo \\'v'\''1'`},
		{"echo $(echo " + v + ")", `echo $(echo 'v'\''1')`},
		{`echo "$(echo "` + v + `")"`, `echo "$(echo ""'v'\''1'"")"`},
		{"echo $( (echo " + v + ") )", `echo $( (echo 'v'\''1') )`},
		{"echo ${X} ${#X} $# $$ " + v, `echo ${X} ${#X} $# $$ 'v'\''1'`},
		{"echo a#b " + v, `echo a#b 'v'\''1'`},
		{"echo $((1+2)) `date` " + v, "echo $((1+2)) `date` 'v'\\''1'"},
		{"echo # comment\necho " + v, "echo # comment\necho 'v'\\''1'"},
		{"cat <<EOF\n$(x) ' \"\nEOF\necho " + v, "cat <<EOF\n$(x) ' \"\nEOF\necho 'v'\\''1'"},
		{"cat <<-'E F'\n\tbody\n\tE F\necho " + v, "cat <<-'E F'\n\tbody\n\tE F\necho 'v'\\''1'"},
		{"cat <<A <<B\na\nA\nb\nB\necho " + v, "cat <<A <<B\na\nA\nb\nB\necho 'v'\\''1'"},
		{"cat <<< " + v, `cat <<< 'v'\''1'`},
		{"case " + v + " in a) echo " + v + ";; esac", `case 'v'\''1' in a) echo 'v'\''1';; esac`},
		{"echo a \\\n " + v, "echo a \\\n 'v'\\''1'"},
		{"x # a comment ends at the newline, also after a backslash \\\n" + v, "x # a comment ends at the newline, also after a backslash \\\n'v'\\''1'"},
		{`echo $"` + v + `"`, `echo $""'v'\''1'""`},
		{"echo $'a' " + v, `echo $'a' 'v'\''1'`},
		{"echo [" + v + "] x[1] " + v, `echo ['v'\''1'] x[1] 'v'\''1'`},
		{"[ " + v + " = x ] || [[ " + v + " == x ]]", `[ 'v'\''1' = x ] || [[ 'v'\''1' == x ]]`},
		{"( (echo " + v + ") ) && echo $((1)) " + v, `( (echo 'v'\''1') ) && echo $((1)) 'v'\''1'`},
		{"a[1]=2 " + v, `a[1]=2 'v'\''1'`},
		// A string literal is the author's text: inserted as written, read
		// by the lexer as written, allowed anywhere.
		{"cat <<EOF\n{{ '{{' }} .Values.x }}\nEOF\necho " + v, "cat <<EOF\n{{ .Values.x }}\nEOF\necho 'v'\\''1'"},
		{"echo {{ \"'\" }}" + v + "'", `echo 'v'\''1'`},
		{"echo {{ 'a b' }} # {{ '{{' }}", "echo a b # {{"},
	}
	for _, tt := range tests {
		tm, err := CompileTemplate(tt.cmd, Shell)
		if err != nil {
			t.Errorf("%q: %v", tt.cmd, err)
			continue
		}
		got, err := tm.Render(Vars{Context: map[string]any{"v": "v'1"}})
		if err != nil || got != tt.want {
			t.Errorf("%q:\n got %q %v\nwant %q", tt.cmd, got, err, tt.want)
		}
	}
	refused := map[string]string{
		"echo \\" + v:                               "a template cannot follow a backslash",
		`echo "\` + v + `"`:                         "a template cannot follow a backslash",
		"echo $" + v:                                "a template cannot follow $",
		`echo "$` + v + `"`:                         "a template cannot follow $",
		"echo `" + v + "`":                          "a template cannot stand inside backquotes",
		"echo \"`echo " + v + "`\"":                 "a template cannot stand inside backquotes",
		"echo ${X:-" + v + "}":                      "a template cannot stand inside ${...}",
		"echo $((" + v + "))":                       "a template cannot stand inside arithmetic",
		"(( x = " + v + " ))":                       "a template cannot stand inside arithmetic",
		"for ((i=0; i<" + v + "; i++)); do :; done": "a template cannot stand inside arithmetic",
		"echo $[" + v + "]":                         "a template cannot stand inside arithmetic",
		"a[" + v + "]=1":                            "a template cannot stand inside arithmetic",
		"declare -A m; m[x" + v + "]=1":             "a template cannot stand inside arithmetic",
		"echo $'" + v + "'":                         "a template cannot stand inside $'...'",
		"echo #" + v:                                "a template cannot stand in a shell comment",
		"cat <<E\n" + v + "\nE":                     "a template cannot stand inside a here-document",
		"cat <<" + v + "\nx\n":                      "a template cannot stand in a here-document's delimiter",
		"cat <<'" + v + "'\nx\n":                    "a template cannot stand in a here-document's delimiter",
		"cat <<E\nno end\n" + v:                     "a template cannot stand inside a here-document",
		"echo ${X:-'}'} " + v:                       "a template cannot follow quotes, braces or a backslash inside ${...}",
		"echo $(( '1' )) " + v:                      "a template cannot follow quotes, braces or a backslash inside arithmetic",
		"echo $(case x in x) :;; esac) " + v:        "a template cannot follow a case statement inside $(...)",
		"cat <<\"$E\"\nx\n$E\n" + v:                 "a template cannot follow a here-document delimiter with $, ` or \\",
		"cat << ;" + v:                              "a template cannot follow a here-document operator without a delimiter",
	}
	for cmd, want := range refused {
		_, err := CompileTemplate(cmd, Shell)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", cmd, err, want)
		}
	}
}

func TestStepCommandsAndEnvironment(t *testing.T) {
	p, err := Parse(file, []byte(`{"steps": [{"name": "Deploy",
 "run": ["node scripts/{{ context.event }}.js", "echo \"$TARGET\" {{ env.TARGET }} {{ env.JOB }}", "true"],
 "env": {"TARGET": "{{ context.branch }}-{{ env.JOB }}", "PLAIN": "$HOME {{ '{{' }}", "SEES_JOB_ENV_ONLY": "{{ has(env.TARGET) }}"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	s := p.Steps[0]
	job := Vars{Env: map[string]string{"JOB": "j 1", "TARGET": "job's"}, Context: map[string]any{"event": "push", "branch": "main"}}
	env, err := s.Environment(job)
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := map[string]string{"JOB": "j 1", "TARGET": "main-j 1", "PLAIN": "$HOME {{", "SEES_JOB_ENV_ONLY": "true"}
	if len(env) != len(wantEnv) {
		t.Errorf("env %q", env)
	}
	for k, v := range wantEnv {
		if env[k] != v {
			t.Errorf("env[%s] = %q, want %q", k, env[k], v)
		}
	}
	if job.Env["TARGET"] != "job's" {
		t.Errorf("Environment changed the job's env")
	}
	step := job
	step.Env = env
	cmds, err := s.Commands(step)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"node scripts/'push'.js", `echo "$TARGET" 'main-j 1' 'j 1'`, "true"}
	if strings.Join(cmds, "\n") != strings.Join(want, "\n") {
		t.Errorf("commands %q, want %q", cmds, want)
	}

	// Failures name the step, the field and the template.
	_, err = s.Commands(Vars{Context: map[string]any{"event": "push"}})
	var re *RenderError
	if !errors.As(err, &re) || re.Step != "Deploy" || re.Field != "run command 2" || re.Template != "{{ env.TARGET }}" ||
		err.Error() != `step "Deploy": run command 2: {{ env.TARGET }}: no such key "TARGET"; a variable that may be unset needs a guard such as has(env.TARGET), 'TARGET' in env or env.?TARGET.orValue('') (at column 5 of the expression)` {
		t.Errorf("commands err %v", err)
	}
	// The error names the placeholder that failed, not the whole value.
	_, err = s.Environment(Vars{Env: map[string]string{"JOB": "x"}})
	if err == nil || err.Error() != `step "Deploy": env.TARGET: {{ context.branch }}: no such key "branch"; a key that may be missing needs a guard such as has(context.branch), 'branch' in context or context.?branch.orValue('') (at column 9 of the expression)` {
		t.Errorf("environment err %v", err)
	}

	// A step made by hand, or changed after Parse, is compiled on the fly.
	hand := &Step{Name: "Hand", Run: []string{"echo {{ context.event }}"}, Env: map[string]string{"A": "{{ context.event }}!"}}
	if cmds, err := hand.Commands(job); err != nil || cmds[0] != "echo 'push'" {
		t.Errorf("hand-made commands %q %v", cmds, err)
	}
	if env, err := hand.Environment(job); err != nil || env["A"] != "push!" || env["JOB"] != "j 1" {
		t.Errorf("hand-made env %q %v", env, err)
	}
	s.Run[0] = "echo changed {{ context.branch }}"
	if cmds, err := s.Commands(step); err != nil || cmds[0] != "echo changed 'main'" {
		t.Errorf("changed commands %q %v", cmds, err)
	}
	bad := &Step{Name: "Bad", Run: []string{"echo {{ nope"}}
	if _, err := bad.Commands(job); err == nil || err.Error() != `step "Bad": run: unclosed template: "{{" without a matching "}}" (a literal "{{" is written {{ '{{' }})` {
		t.Errorf("bad: %v", err)
	}
	badEnv := &Step{Name: "Bad", Env: map[string]string{"A": "{{ nope }}"}}
	if _, err := badEnv.Environment(job); err == nil || err.Error() != `step "Bad": env.A: template: undeclared reference to 'nope'` {
		t.Errorf("bad env: %v", err)
	}

	// Rendered commands and variables longer than Linux takes are errors.
	long := &Step{Name: "Long", Run: []string{"echo {{ context.v }}"}, Env: map[string]string{"V": "{{ context.v }}"}}
	big := Vars{Context: map[string]any{"v": strings.Repeat("x", MaxArgSize)}}
	if _, err := long.Commands(big); err == nil || err.Error() != `step "Long": run: the command is 131078 bytes long once rendered, more than the 131071 bytes a command may have` {
		t.Errorf("long command: %v", err)
	}
	if _, err := long.Environment(big); err == nil || err.Error() != `step "Long": env.V: the variable is 131073 bytes long once rendered, more than the 131071 bytes a variable may have` {
		t.Errorf("long env: %v", err)
	}
}
