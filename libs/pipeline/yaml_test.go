package pipeline

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const yamlFile = ".simpleci/pipeline.yaml"

// The YAML tests mirror the JSON ones in parse_test.go: the same model,
// the same rules, the same messages, with YAML positions.

func TestParseYAMLValid(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []Step
	}{
		{
			name: "seed format",
			src: `steps:
  - name: Install dependencies
    condition: context.event == 'push'
    run:
      - echo "Starting installation"
      - npm install
  - name: Run build
    condition: "context.event == 'push' && env.ENABLE_TESTS == 'true'"
    run: npm run test
`,
			want: []Step{
				{Name: "Install dependencies", ID: "install_dependencies", Run: []string{`echo "Starting installation"`, "npm install"}, Pos: Position{2, 5}},
				{Name: "Run build", ID: "run_build", Run: []string{"npm run test"}, Pos: Position{7, 5}},
			},
		},
		{
			name: "every field",
			src: `steps:
- name: Deploy
  id: deploy_prod
  condition: always()
  run: make deploy
  env: {TARGET: prod, _X1: ""}
  timeout: 90s
  continueOnError: true
  workingDirectory: ./deploy//k8s/
`,
			want: []Step{{Name: "Deploy", ID: "deploy_prod", Run: []string{"make deploy"}, Env: map[string]string{"TARGET": "prod", "_X1": ""},
				Timeout: 90 * time.Second, ContinueOnError: true, WorkingDirectory: "deploy/k8s", Pos: Position{2, 3}}},
		},
		{
			name: "flow style, JSON is YAML",
			src:  `{"steps": [{"name": "Build!", "run": "a"}, {"name": "build", "run": "b"}, {"name": "2nd", "run": "c"}, {"name": "¡¿", "run": "d"}, {"name": "x", "id": "build_2", "run": "e"}]}`,
			want: []Step{
				{Name: "Build!", ID: "build", Run: []string{"a"}, Pos: Position{1, 12}},
				{Name: "build", ID: "build_3", Run: []string{"b"}, Pos: Position{1, 44}},
				{Name: "2nd", ID: "step_2nd", Run: []string{"c"}, Pos: Position{1, 75}},
				{Name: "¡¿", ID: "step_4", Run: []string{"d"}, Pos: Position{1, 104}},
				{Name: "x", ID: "build_2", Run: []string{"e"}, Pos: Position{1, 132}},
			},
		},
		{
			name: "block scalars, quoting, comments, templates, $schema, a date-like string",
			src: `# yaml-language-server: $schema=pipeline.schema.json
$schema: ./pipeline.schema.json
steps:
  - name: 'Script: it''s "quoted"'   # a comment
    run: |
      set -e
      node scripts/{{ context.event }}.js
    env:
      RELEASE: 2024-01-01
      FOLDED: >
        a
        b
  - name: "tab\there"
    run: ["{{ '{{' }}.Id}}"]
`,
			want: []Step{
				{Name: `Script: it's "quoted"`, ID: "script_it_s_quoted", Run: []string{"set -e\nnode scripts/{{ context.event }}.js\n"},
					Env: map[string]string{"RELEASE": "2024-01-01", "FOLDED": "a b\n"}, Pos: Position{4, 5}},
				{Name: "tab\there", ID: "tab_here", Run: []string{"{{ '{{' }}.Id}}"}, Pos: Position{13, 5}},
			},
		},
		{
			name: "working directory dot is the checkout",
			src:  "steps:\n  - {name: a, run: x, workingDirectory: .}\n",
			want: []Step{{Name: "a", ID: "a", Run: []string{"x"}, Pos: Position{2, 5}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(yamlFile, []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(p.Steps) != len(tt.want) {
				t.Fatalf("%d steps, want %d", len(p.Steps), len(tt.want))
			}
			for i, s := range p.Steps {
				want := tt.want[i]
				want.Index = i
				if got := exported(s); !reflect.DeepEqual(got, want) {
					t.Errorf("step %d:\n got %+v\nwant %+v", i, got, want)
				}
			}
		})
	}
}

func TestParseYAMLErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"empty file", "", []string{`1:1: empty file: expected a YAML mapping with "steps"`}},
		{"only comments", "# nothing\n\n", []string{`1:1: empty file: expected a YAML mapping with "steps"`}},
		{"not a mapping", "- a\n", []string{`1:1: the pipeline must be a YAML mapping with "steps", not a list`}},
		{"a scalar", "steps\n", []string{`1:1: the pipeline must be a YAML mapping with "steps", not a string`}},
		{"missing steps", "{}", []string{`1:1: missing "steps": a pipeline needs a list of steps`}},
		{"steps not a list", "steps: {}\n", []string{`1:8: "steps" must be a list of steps, not a mapping`}},
		{"steps null", "steps:\n", []string{`1:7: "steps" must be a list of steps, not null`}},
		{"no steps", "steps: []\n", []string{`1:8: "steps" is empty: a pipeline needs at least one step`}},
		{"unknown top field", "stpes: []\nsteps: [{name: a, run: x}]\n", []string{`1:1: unknown field "stpes", did you mean "steps"?`}},
		{"step not a mapping", "steps:\n  - echo\n", []string{`2:5: step #1: a step must be a mapping with "name" and "run", not a string`}},
		{"missing name and run", "steps:\n  - {}\n", []string{`2:5: step #1: missing "name"`, `2:5: step #1: missing "run": a command or a list of commands`}},
		{"name not a string", "steps:\n  - name: 1\n    run: x\n", []string{`2:11: step #1: "name" must be a string, not a number`}},
		{"name empty", "steps:\n  - name: ' '\n    run: x\n", []string{`2:11: step #1: "name" is empty`}},
		{"name multi-line", "steps:\n  - name: \"a\\nb\"\n    run: x\n", []string{`2:11: step "a\nb": "name" must be a single line`}},
		{"duplicate name", "steps:\n  - name: Build\n    run: a\n  - name: Test\n    run: b\n  - name: Build\n    run: c\n",
			[]string{`6:11: step "Build": duplicate step name "Build": the first step with this name is at 2:11`}},
		{"duplicate field", "steps:\n  - name: a\n    run: x\n    run: y\n", []string{`4:5: step "a": duplicate field "run" (first at 3:5)`}},
		{"duplicate top field", "steps: [{name: a, run: x}]\nsteps: []\n", []string{`2:1: duplicate field "steps" (first at 1:1)`}},
		{"id invalid", "steps:\n  - name: a\n    id: my-id\n    run: x\n",
			[]string{`3:9: step "a": "id" "my-id" must be a letter or _ followed by letters, digits or _ (at most 64), so that steps.my-id works in conditions`}},
		{"id not a string", "steps:\n  - name: a\n    id: 7\n    run: x\n", []string{`3:9: step "a": "id" must be a string, not a number`}},
		{"duplicate id", "steps:\n  - {name: a, id: x, run: x}\n  - {name: b, id: x, run: x}\n",
			[]string{`3:19: step "b": duplicate step id "x": the first step with this id is at 2:19`}},
		{"run empty string", "steps:\n  - name: a\n    run: '  '\n", []string{`3:10: step "a": "run" is empty`}},
		{"run empty list", "steps:\n  - name: a\n    run: []\n", []string{`3:10: step "a": "run" is an empty list: give at least one command`}},
		{"run null", "steps:\n  - name: a\n    run:\n", []string{`3:9: step "a": "run" must be a command or a list of commands, not null`}},
		{"run bad items", "steps:\n  - name: a\n    run:\n      - ok\n      - ''\n      - 1\n      - ~\n", []string{
			`5:9: step "a": "run" command 2 is empty`,
			`6:9: step "a": "run" command 3 must be a string, not a number`,
			`7:9: step "a": "run" command 4 must be a string, not null`}},
		{"run wrong type", "steps:\n  - name: a\n    run: true\n", []string{`3:10: step "a": "run" must be a command or a list of commands, not a boolean`}},
		{"env not a mapping", "steps:\n  - name: a\n    run: x\n    env: [A=1]\n", []string{`4:10: step "a": "env" must be a mapping of variable names to string values, not a list`}},
		{"env bad name and value", "steps:\n  - name: a\n    run: x\n    env:\n      A-B: '1'\n      N: 1\n      B: true\n      OK: x\n", []string{
			`5:7: step "a": env: "A-B" is not a valid variable name (letters, digits and _, not starting with a digit)`,
			`6:10: step "a": env: the value of N must be a string, not a number (quote it)`,
			`7:10: step "a": env: the value of B must be a string, not a boolean (quote it)`}},
		{"duplicate env variable", "steps:\n  - name: a\n    run: x\n    env: {A: '1', A: '2'}\n", []string{`4:19: step "a": duplicate env variable "A" (first at 4:11)`}},
		{"timeout unparsable", "steps:\n  - name: a\n    run: x\n    timeout: 5 minutes\n", []string{`4:14: step "a": timeout: "5 minutes" is not a duration such as "90s" or "5m"`}},
		{"timeout zero", "steps:\n  - name: a\n    run: x\n    timeout: 0s\n", []string{`4:14: step "a": timeout: "0s" must be greater than zero`}},
		{"timeout number", "steps:\n  - name: a\n    run: x\n    timeout: 90\n", []string{`4:14: step "a": "timeout" must be a duration string such as "90s" or "5m", not a number`}},
		{"continueOnError not bool", "steps:\n  - name: a\n    run: x\n    continueOnError: yes\n", []string{`4:22: step "a": "continueOnError" must be true or false, not a string`}},
		{"workingDirectory absolute", "steps:\n  - name: a\n    run: x\n    workingDirectory: /etc\n", []string{`4:23: step "a": workingDirectory "/etc" must be relative to the checkout`}},
		{"workingDirectory escapes", "steps:\n  - name: a\n    run: x\n    workingDirectory: src/../../x\n", []string{`4:23: step "a": workingDirectory "src/../../x" escapes the checkout`}},
		{"cache step expiry", "steps:\n  - name: a\n    type: cache-files\n    key: k\n    fileNames: [d]\n    expiry: 7 days\n", []string{`6:13: step "a": expiry: "7 days" is not an expiry such as "7d" or "12h"`}},
		{"unknown step field", "steps:\n  - name: a\n    run: x\n    if: 'true'\n", []string{`4:5: step "a": unknown field "if", did you mean "condition"?`}},
		{"typo in step field", "steps:\n  - name: a\n    run: x\n    continueOnErorr: true\n", []string{`4:5: step "a": unknown field "continueOnErorr", did you mean "continueOnError"?`}},
		{"condition not a string", "steps:\n  - name: a\n    run: x\n    condition: true\n", []string{`4:16: step "a": "condition" must be a string (a CEL expression), not a boolean`}},
		{"condition undeclared, plain", "steps:\n  - name: Run build\n    run: x\n    condition: context.event == 'push' && enviroment.X == 'true'\n", []string{
			`4:43: step "Run build": condition: undeclared reference to 'enviroment'`}},
		{"condition undeclared, double-quoted with escapes", "steps:\n  - name: a\n    run: x\n    condition: \"'\\u00e9\\\"\\t' == 'x' && nope\"\n", []string{
			`4:40: step "a": condition: undeclared reference to 'nope'`}},
		{"condition undeclared, single-quoted", "steps:\n  - name: a\n    run: x\n    condition: '''日本'' == ''x'' && nope'\n", []string{
			`4:36: step "a": condition: undeclared reference to 'nope'`}},
		{"condition on several lines, plain", "steps:\n  - name: a\n    run: x\n    condition: true &&\n      nope\n", []string{
			`5:7: step "a": condition: undeclared reference to 'nope'`}},
		{"condition in a folded block", "steps:\n  - name: a\n    run: x\n    condition: >-\n      true &&\n\n        (nope)\n", []string{
			`7:10: step "a": condition: undeclared reference to 'nope'`}},
		{"template in a literal block", "steps:\n  - name: a\n    run: |\n      set -e\n        echo {{ context.x + }} \\\n          {{ nope }}\n", []string{
			`5:29: step "a": run: template: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`,
			`6:14: step "a": run: template: undeclared reference to 'nope'`}},
		{"template in a list, after a tag", "steps:\n  - name: a\n    run:\n      - echo ok\n      - !!str echo {{ nope }}\n", []string{
			`5:23: step "a": run command 2: template: undeclared reference to 'nope'`}},
		{"template unclosed in env", "steps:\n  - name: a\n    run: x\n    env:\n      A: \"x {{ context.y\"\n", []string{
			`5:13: step "a": env.A: unclosed template: "{{" without a matching "}}" (a literal "{{" is written {{ '{{' }})`}},
		{"template in a shell comment", "steps:\n  - name: a\n    run: \"make # {{ context.branch }}\"\n", []string{
			`3:18: step "a": run: a template cannot stand in a shell comment (after #)`}},
		{"several steps, all errors", "steps:\n- name: a\n- run: x\n  timeout: x\n- name: a\n  run: ''\n", []string{
			`2:3: step "a": missing "run": a command or a list of commands`,
			`3:3: step #2: missing "name"`,
			`4:12: step #2: timeout: "x" is not a duration such as "90s" or "5m"`,
			`5:9: step "a": duplicate step name "a": the first step with this name is at 2:9`,
			`6:8: step "a": "run" is empty`}},
		{"malformed: unclosed flow", "steps: [\n  {name: a, run: x}\n", []string{`3:1: invalid YAML: did not find expected ',' or ']'`}},
		{"malformed: mapping in a scalar", "steps:\n  - name: a: b\n", []string{`2:3: invalid YAML: mapping values are not allowed in this context`}},
		{"malformed: tab indentation", "steps:\n\t- name: a\n", []string{`2:1: invalid YAML: found character that cannot start any token (indent with spaces, not tabs)`}},
		{"malformed: unterminated quote", "steps:\n  - name: 'a\n", []string{`2:3: invalid YAML: found unexpected end of stream`}},
		{"malformed: bad escape", "steps:\n  - name: a\n    run: \"\\q\"\n", []string{`3:5: invalid YAML: found unknown escape character`}},
		{"malformed: first line", "a: b: c\n", []string{`1:1: invalid YAML: mapping values are not allowed in this context`}},
		{"malformed: control character", "steps:\n  - name: a\x01\n", []string{`2:12: invalid YAML: control character U+0001 is not allowed`}},
		{"malformed: not UTF-8", "steps:\n  - name: a\xff\n", []string{`2:12: invalid YAML: the file is not valid UTF-8`}},
		{"malformed: deep nesting", "steps: " + strings.Repeat("[", 100) + strings.Repeat("]", 100), []string{`1:71: invalid YAML: nested deeper than 64 levels`}},
		{"a second document", "steps: [{name: a, run: x}]\n---\nsteps: []\n", []string{`3:1: a second YAML document: the file must hold exactly one`}},
		{"aliases", "x: &a [echo]\nsteps:\n  - name: a\n    run: *a\n", []string{`4:10: YAML aliases (*a) are not supported: write the value out`}},
		{"merge keys", "steps:\n  - <<: {name: a}\n    run: x\n", []string{`2:5: YAML merge keys (<<) are not supported: write the fields out`}},
		{"custom tag", "steps:\n  - name: !secret a\n    run: x\n", []string{`2:11: YAML tag !secret is not supported`}},
		{"binary", "steps:\n  - name: a\n    run: !!binary aGk=\n", []string{`3:10: YAML tag !!binary is not supported`}},
		{"complex key", "steps:\n  - ? [a]\n    : x\n    run: x\n", []string{`2:7: a key must be a plain string`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(yamlFile, []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", p)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T is not Errors", err)
			}
			var got []string
			for _, e := range errs {
				if e.File != yamlFile {
					t.Errorf("File %q", e.File)
				}
				got = append(got, strings.TrimPrefix(e.Error(), yamlFile+":"))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestYAMLMatchesJSON parses the same pipeline written both ways.
func TestYAMLMatchesJSON(t *testing.T) {
	j, err := Parse(file, []byte(`{"steps": [{"name": "Build", "id": "b", "condition": "failure() || env.X == 'y'", "run": ["make", "make {{ context.event }}"],
 "env": {"A": "{{ context.branch }}"}, "timeout": "5m", "continueOnError": true, "workingDirectory": "sub"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	y, err := Parse(yamlFile, []byte(`steps:
  - name: Build
    id: b
    condition: failure() || env.X == 'y'
    run:
      - make
      - make {{ context.event }}
    env:
      A: "{{ context.branch }}"
    timeout: 5m
    continueOnError: true
    workingDirectory: sub
`))
	if err != nil {
		t.Fatal(err)
	}
	js, ys := exported(j.Steps[0]), exported(y.Steps[0])
	js.Pos, ys.Pos = Position{}, Position{}
	if !reflect.DeepEqual(js, ys) || j.Steps[0].Condition.String() != y.Steps[0].Condition.String() {
		t.Errorf("json %+v\nyaml %+v", js, ys)
	}
	v := Vars{Context: map[string]any{"event": "push", "branch": "main"}}
	jc, _ := j.Steps[0].Commands(v)
	yc, _ := y.Steps[0].Commands(v)
	je, _ := j.Steps[0].Environment(v)
	ye, _ := y.Steps[0].Environment(v)
	if !reflect.DeepEqual(jc, yc) || !reflect.DeepEqual(je, ye) || yc[1] != "make 'push'" || ye["A"] != "main" {
		t.Errorf("rendered json %q %q, yaml %q %q", jc, je, yc, ye)
	}
}
