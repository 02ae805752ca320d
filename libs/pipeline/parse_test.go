package pipeline

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const file = ".simpleci/pipeline.json"

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []Step // Condition compared by source only
	}{
		{
			name: "seed format",
			src: `{
  "steps": [
    {
      "name": "Install dependencies",
      "condition": "context.event == 'push'",
      "run": ["echo \"Starting installation\"", "npm install"]
    },
    {
      "name": "Run build",
      "condition": "context.event == 'push' && env.ENABLE_TESTS == 'true'",
      "run": "npm run test"
    }
  ]
}`,
			want: []Step{
				{Index: 0, Name: "Install dependencies", ID: "install_dependencies", Run: []string{`echo "Starting installation"`, "npm install"}, Pos: Position{3, 5}},
				{Index: 1, Name: "Run build", ID: "run_build", Run: []string{"npm run test"}, Pos: Position{8, 5}},
			},
		},
		{
			name: "every field",
			src: `{"steps": [{"name": "Deploy", "id": "deploy_prod", "condition": "always()", "run": "make deploy",
 "env": {"TARGET": "prod", "_X1": ""}, "timeout": "90s", "continueOnError": true, "workingDirectory": "./deploy//k8s/"}]}`,
			want: []Step{{Name: "Deploy", ID: "deploy_prod", Run: []string{"make deploy"}, Env: map[string]string{"TARGET": "prod", "_X1": ""},
				Timeout: 90 * time.Second, ContinueOnError: true, WorkingDirectory: "deploy/k8s", Pos: Position{1, 12}}},
		},
		{
			name: "ids from names are unique",
			src:  `{"steps": [{"name": "Build!", "run": "a"}, {"name": "build", "run": "b"}, {"name": "2nd", "run": "c"}, {"name": "¡¿", "run": "d"}, {"name": "x", "id": "build_2", "run": "e"}]}`,
			want: []Step{
				{Index: 0, Name: "Build!", ID: "build", Run: []string{"a"}, Pos: Position{1, 12}},
				{Index: 1, Name: "build", ID: "build_3", Run: []string{"b"}, Pos: Position{1, 44}},
				{Index: 2, Name: "2nd", ID: "step_2nd", Run: []string{"c"}, Pos: Position{1, 75}},
				{Index: 3, Name: "¡¿", ID: "step_4", Run: []string{"d"}, Pos: Position{1, 104}},
				{Index: 4, Name: "x", ID: "build_2", Run: []string{"e"}, Pos: Position{1, 132}},
			},
		},
		{
			name: "templates and $schema",
			src: `{"$schema": "https://example.com/pipeline.schema.json", "steps": [{"name": "T", "run": ["node scripts/{{context.event}}.js", "echo {{ '}}' }} }}"],
 "env": {"B": "{{ context.branch }}-x", "L": "{{ '{{' }}.Id}}"}}]}`,
			want: []Step{{Name: "T", ID: "t", Run: []string{"node scripts/{{context.event}}.js", "echo {{ '}}' }} }}"},
				Env: map[string]string{"B": "{{ context.branch }}-x", "L": "{{ '{{' }}.Id}}"}, Pos: Position{1, 67}}},
		},
		{
			name: "working directory dot is the checkout",
			src:  `{"steps": [{"name": "a", "run": "x", "workingDirectory": "."}]}`,
			want: []Step{{Name: "a", ID: "a", Run: []string{"x"}, Pos: Position{1, 12}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(file, []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if p.File != file {
				t.Errorf("File %q", p.File)
			}
			if len(p.Steps) != len(tt.want) {
				t.Fatalf("%d steps, want %d", len(p.Steps), len(tt.want))
			}
			for i, s := range p.Steps {
				if s.Condition == nil {
					t.Fatalf("step %d: nil condition", i)
				}
				got := exported(s)
				want := tt.want[i]
				want.Index = i
				if !reflect.DeepEqual(got, want) {
					t.Errorf("step %d:\n got %+v\nwant %+v", i, got, want)
				}
			}
		})
	}
}

// exported copies the exported fields of s but Condition, for comparing
// steps with reflect.DeepEqual.
func exported(s *Step) Step {
	return Step{Index: s.Index, Name: s.Name, ID: s.ID, Run: s.Run, Env: s.Env, Timeout: s.Timeout,
		ContinueOnError: s.ContinueOnError, WorkingDirectory: s.WorkingDirectory, Pos: s.Pos}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"empty file", "", []string{"1:1: empty file: expected a JSON object with \"steps\""}},
		{"blank file", "  \n ", []string{"1:1: empty file: expected a JSON object with \"steps\""}},
		{"not an object", `["a"]`, []string{`1:1: the pipeline must be a JSON object with "steps", not a list`}},
		{"missing steps", `{}`, []string{`1:1: missing "steps": a pipeline needs a list of steps`}},
		{"steps not a list", `{"steps": {}}`, []string{`1:11: "steps" must be a list of steps, not an object`}},
		{"no steps", "{\n  \"steps\": []\n}", []string{`2:12: "steps" is empty: a pipeline needs at least one step`}},
		{"unknown top field", `{"stpes": [], "steps": [{"name": "a", "run": "x"}]}`, []string{`1:2: unknown field "stpes", did you mean "steps"?`}},
		{"step not an object", `{"steps": ["echo"]}`, []string{`1:12: step #1: a step must be an object with "name" and "run", not a string`}},
		{"missing name and run", `{"steps": [{}]}`, []string{`1:12: step #1: missing "name"`, `1:12: step #1: missing "run": a command or a list of commands`}},
		{"name not a string", `{"steps": [{"name": 1, "run": "x"}]}`, []string{`1:21: step #1: "name" must be a string, not a number`}},
		{"name empty", `{"steps": [{"name": " ", "run": "x"}]}`, []string{`1:21: step #1: "name" is empty`}},
		{"name multi-line", `{"steps": [{"name": "a\nb", "run": "x"}]}`, []string{`1:21: step "a\nb": "name" must be a single line`}},
		{"duplicate name", "{\"steps\": [\n  {\"name\": \"Build\", \"run\": \"a\"},\n  {\"name\": \"Test\", \"run\": \"b\"},\n  {\"name\": \"Build\", \"run\": \"c\"}\n]}",
			[]string{`4:12: step "Build": duplicate step name "Build": the first step with this name is at 2:12`}},
		{"duplicate field", `{"steps": [{"name": "a", "run": "x", "run": "y"}]}`, []string{`1:38: step "a": duplicate field "run" (first at 1:26)`}},
		{"id invalid", `{"steps": [{"name": "a", "id": "my-id", "run": "x"}]}`,
			[]string{`1:32: step "a": "id" "my-id" must be a letter or _ followed by letters, digits or _ (at most 64), so that steps.my-id works in conditions`}},
		{"id not a string", `{"steps": [{"name": "a", "id": 7, "run": "x"}]}`, []string{`1:32: step "a": "id" must be a string, not a number`}},
		{"duplicate id", `{"steps": [{"name": "a", "id": "x", "run": "x"}, {"name": "b", "id": "x", "run": "x"}]}`,
			[]string{`1:70: step "b": duplicate step id "x": the first step with this id is at 1:32`}},
		{"run empty string", `{"steps": [{"name": "a", "run": "  "}]}`, []string{`1:33: step "a": "run" is empty`}},
		{"run empty list", `{"steps": [{"name": "a", "run": []}]}`, []string{`1:33: step "a": "run" is an empty list: give at least one command`}},
		{"run bad items", `{"steps": [{"name": "a", "run": ["ok", "", 1, null]}]}`, []string{
			`1:40: step "a": "run" command 2 is empty`,
			`1:44: step "a": "run" command 3 must be a string, not a number`,
			`1:47: step "a": "run" command 4 must be a string, not null`}},
		{"run wrong type", `{"steps": [{"name": "a", "run": true}]}`, []string{`1:33: step "a": "run" must be a command or a list of commands, not a boolean`}},
		{"env not an object", `{"steps": [{"name": "a", "run": "x", "env": ["A=1"]}]}`, []string{`1:45: step "a": "env" must be an object of variable names to string values, not a list`}},
		{"env bad name and value", `{"steps": [{"name": "a", "run": "x", "env": {"A-B": "1", "N": 1, "OK": "x"}}]}`, []string{
			`1:46: step "a": env: "A-B" is not a valid variable name (letters, digits and _, not starting with a digit)`,
			`1:63: step "a": env: the value of N must be a string, not a number (quote it)`}},
		{"timeout unparsable", `{"steps": [{"name": "a", "run": "x", "timeout": "5 minutes"}]}`, []string{`1:49: step "a": timeout: "5 minutes" is not a duration such as "90s" or "5m"`}},
		{"timeout zero", `{"steps": [{"name": "a", "run": "x", "timeout": "0s"}]}`, []string{`1:49: step "a": timeout: "0s" must be greater than zero`}},
		{"timeout negative", `{"steps": [{"name": "a", "run": "x", "timeout": "-1m"}]}`, []string{`1:49: step "a": timeout: "-1m" must be greater than zero`}},
		{"timeout number", `{"steps": [{"name": "a", "run": "x", "timeout": 90}]}`, []string{`1:49: step "a": "timeout" must be a duration string such as "90s" or "5m", not a number`}},
		{"continueOnError not bool", `{"steps": [{"name": "a", "run": "x", "continueOnError": "yes"}]}`, []string{`1:57: step "a": "continueOnError" must be true or false, not a string`}},
		{"workingDirectory absolute", `{"steps": [{"name": "a", "run": "x", "workingDirectory": "/etc"}]}`, []string{`1:58: step "a": workingDirectory "/etc" must be relative to the checkout`}},
		{"workingDirectory escapes", `{"steps": [{"name": "a", "run": "x", "workingDirectory": "src/../../x"}]}`, []string{`1:58: step "a": workingDirectory "src/../../x" escapes the checkout`}},
		{"workingDirectory not a string", `{"steps": [{"name": "a", "run": "x", "workingDirectory": 1}]}`, []string{`1:58: step "a": "workingDirectory" must be a string, not a number`}},
		{"schedule not supported", `{"schedule": [], "steps": [{"name": "a", "run": "x"}]}`, []string{`1:2: "schedule" in the pipeline file is not supported yet: set the project's schedules (simpleci projects schedule add PROJECT --cron '0 3 * * 1-5'; docs/pipeline.md#schedules)`}},
		{"run in a cache step", `{"steps": [{"name": "a", "run": "x", "type": "cache-files", "key": "k", "fileNames": ["d"], "expiry": "1d"}]}`, []string{`1:26: step "a": "run" is not allowed in a cache-files step (it runs no command)`}},
		{"cache step missing fields", `{"steps": [{"name": "a", "type": "cache-files"}]}`, []string{
			`1:12: step "a": missing "key": a cache-files step names what it stores`,
			`1:12: step "a": missing "fileNames": the files or globs to store`,
			`1:12: step "a": missing "expiry": how long to keep what the step stores, such as "7d"`}},
		{"cache step bad fields", `{"steps": [{"name": "a", "type": "cache-files", "key": "", "fileNames": ["../../etc/passwd", "/etc", "a/**", 1], "expiry": "7 days", "downloadPath": "../x", "restoreKeys": "k-"}]}`, []string{
			`1:56: step "a": key: a key may not be empty`,
			`1:74: step "a": fileNames[0]: "../../etc/passwd" leaves the checkout (..)`,
			`1:94: step "a": fileNames[1]: "/etc" must be relative to the checkout`,
			`1:110: step "a": fileNames[3] must be a string, not a number`,
			`1:124: step "a": expiry: "7 days" is not an expiry such as "7d" or "12h"`,
			`1:150: step "a": downloadPath "../x" escapes the checkout`,
			`1:173: step "a": "restoreKeys" must be a list of strings, not a string`}},
		{"store step with cache fields", `{"steps": [{"name": "a", "type": "store-files", "key": "k", "fileNames": ["d"], "expiry": "100d", "restoreKeys": ["x"]}]}`, []string{
			`1:91: step "a": expiry: expiry 100d exceeds the limit of 90d`,
			`1:99: step "a": "restoreKeys" belongs to cache-files steps`}},
		{"key in a command step", `{"steps": [{"name": "a", "run": "x", "key": "k"}]}`, []string{`1:38: step "a": "key" belongs to cache-files and store-files steps ("type")`}},
		{"key template that does not compile", `{"steps": [{"name": "a", "type": "cache-files", "key": "d-{{ nope }}", "fileNames": ["d"], "expiry": "1d"}]}`, []string{`1:62: step "a": key: template: undeclared reference to 'nope'`}},
		{"type unknown", `{"steps": [{"name": "a", "run": "x", "type": "docker"}]}`, []string{`1:46: step "a": unknown step type "docker" (leave "type" out for a command step)`}},
		{"unknown step field", `{"steps": [{"name": "a", "run": "x", "if": "true"}]}`, []string{
			`1:38: step "a": unknown field "if", did you mean "condition"?`}},
		{"unknown step field without a likely match", `{"steps": [{"name": "a", "run": "x", "image": "x"}]}`, []string{
			`1:38: step "a": unknown field "image" (known: name, id, condition, run, env, timeout, continueOnError, workingDirectory, type, key, restoreKeys, downloadPath, fileNames, expiry)`}},
		{"typo in step field", `{"steps": [{"name": "a", "run": "x", "continueOnErorr": true}]}`, []string{`1:38: step "a": unknown field "continueOnErorr", did you mean "continueOnError"?`}},
		{"case typo", `{"steps": [{"name": "a", "run": "x", "WorkingDirectory": "."}]}`, []string{`1:38: step "a": unknown field "WorkingDirectory", did you mean "workingDirectory"?`}},
		{"condition not a string", `{"steps": [{"name": "a", "run": "x", "condition": true}]}`, []string{`1:51: step "a": "condition" must be a string (a CEL expression), not a boolean`}},
		{"condition undeclared", "{\n  \"steps\": [\n    {\n      \"name\": \"Run build\",\n      \"condition\": \"context.event == 'push' && enviroment.X == 'true'\",\n      \"run\": \"x\"\n    }\n  ]\n}",
			[]string{`5:48: step "Run build": condition: undeclared reference to 'enviroment'`}},
		{"condition not bool", `{"steps": [{"name": "a", "run": "x", "condition": "  'push'"}]}`, []string{`1:54: step "a": condition: must be a bool expression, this one is of type string`}},
		{"condition syntax", `{"steps": [{"name": "a", "run": "x", "condition": "context.event = 'push'"}]}`, []string{
			`1:66: step "a": condition: Syntax error: token recognition error at: '= '`,
			`1:68: step "a": condition: Syntax error: extraneous input ''push'' expecting <EOF>`}},
		{"condition unknown function", `{"steps": [{"name": "a", "run": "x", "condition": "succes()"}]}`, []string{
			`1:58: step "a": condition: undeclared reference to 'succes' (did you mean 'success'?)`}},
		{"condition position after escapes", `{"steps": [{"name": "a", "run": "x", "condition": "'\u00e9\"\t' == 'x' && nope"}]}`, []string{
			`1:75: step "a": condition: undeclared reference to 'nope'`}},
		{"condition position after non-ASCII", `{"steps": [{"name": "a", "run": "x", "condition": "'日本' == 'x' && nope"}]}`, []string{
			`1:67: step "a": condition: undeclared reference to 'nope'`}},
		{"condition second line", `{"steps": [{"name": "a", "run": "x", "condition": "true &&\n  nope"}]}`, []string{
			`1:63: step "a": condition: undeclared reference to 'nope'`}},
		{"condition type error", `{"steps": [{"name": "a", "run": "x", "condition": "env.X == 1"}]}`, []string{
			`1:58: step "a": condition: found no matching overload for '_==_' applied to '(string, int)'`}},
		{"several steps, all errors", "{\"steps\": [\n{\"name\": \"a\"},\n{\"run\": \"x\", \"timeout\": \"x\"},\n{\"name\": \"a\", \"run\": \"\"}\n]}", []string{
			`2:1: step "a": missing "run": a command or a list of commands`,
			`3:1: step #2: missing "name"`,
			`3:25: step #2: timeout: "x" is not a duration such as "90s" or "5m"`,
			`4:10: step "a": duplicate step name "a": the first step with this name is at 2:10`,
			`4:22: step "a": "run" is empty`}},
		{"$schema not a string", `{"$schema": 1, "steps": [{"name": "a", "run": "x"}]}`, []string{`1:13: "$schema" must be a string (the schema's URL), not a number`}},
		{"duplicate top field", `{"steps": [{"name": "a", "run": "x"}], "steps": []}`, []string{`1:40: duplicate field "steps" (first at 1:2)`}},
		{"duplicate env variable", `{"steps": [{"name": "a", "run": "x", "env": {"A": "1", "A": "2"}}]}`, []string{`1:56: step "a": duplicate env variable "A" (first at 1:46)`}},
		{"run NUL in a single command", `{"steps": [{"name": "a", "run": "x\u0000"}]}`, []string{`1:33: step "a": "run" contains a NUL character`}},
		{"template unclosed", `{"steps": [{"name": "a", "run": "echo {{ context.x"}]}`, []string{
			`1:39: step "a": run: unclosed template: "{{" without a matching "}}" (a literal "{{" is written {{ '{{' }})`}},
		{"template empty", `{"steps": [{"name": "a", "run": "echo {{  }}"}]}`, []string{
			`1:39: step "a": run: empty template "{{  }}" (a literal "{{" is written {{ '{{' }})`}},
		{"template undeclared, after escapes", `{"steps": [{"name": "a", "run": "printf \"\\t\u00e9\" {{ contxt.x }}"}]}`, []string{
			`1:58: step "a": run: template: undeclared reference to 'contxt' (did you mean 'context'?)`}},
		{"template errors in several commands and env, all at once", "{\"steps\": [{\"name\": \"a\",\n \"run\": [\"echo ok\", \"echo {{ nope }} {{ context.x + }}\"],\n \"env\": {\"A\": \"{{ [1] }}\", \"B\": \"{{ steps.x.status }}\"}}]}", []string{
			`2:30: step "a": run command 2: template: undeclared reference to 'nope'`,
			`2:53: step "a": run command 2: template: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`,
			`3:19: step "a": env.A: cannot insert a value of type list(int): a template inserts strings, numbers and bools (pick an element, or join the list: .join(','))`}},
		{"template that looks like a Go template", `{"steps": [{"name": "a", "run": "docker inspect --format '{{.Id}}' x"}]}`, []string{
			`1:62: step "a": run: template: undeclared reference to '.Id' (a literal "{{" is written {{ '{{' }})`}},
		{"template after $", `{"steps": [{"name": "a", "run": "echo ${{ context.branch }}"}]}`, []string{
			`1:40: step "a": run: a template cannot follow $: templates are written {{ expr }}, without a $`}},
		{"template after a backslash", `{"steps": [{"name": "a", "run": "echo \\{{ context.branch }}"}]}`, []string{
			`1:41: step "a": run: a template cannot follow a backslash: it would escape the quote the value is inserted with`}},
		{"template in backquotes", "{\"steps\": [{\"name\": \"a\", \"run\": \"echo `echo {{ context.branch }}`\"}]}", []string{
			"1:45: step \"a\": run: a template cannot stand inside backquotes `...`: write $(...) instead"}},
		{"template in ${...}", `{"steps": [{"name": "a", "run": "echo ${X:-{{ context.branch }}}"}]}`, []string{
			`1:44: step "a": run: a template cannot stand inside ${...}; put the value in the step's env (NAME: "{{ ... }}") and use "$NAME" there instead`}},
		{"template in $((...))", `{"steps": [{"name": "a", "run": "echo $((1 + {{ context.n }}))"}]}`, []string{
			`1:46: step "a": run: a template cannot stand inside arithmetic ($((...)), ((...)), $[...] or an array subscript); put the value in the step's env (NAME: "{{ ... }}") and use "$NAME" there instead`}},
		{"template in a comment", `{"steps": [{"name": "a", "run": "make # {{ context.branch }}"}]}`, []string{
			`1:41: step "a": run: a template cannot stand in a shell comment (after #)`}},
		{"template in a here-document", `{"steps": [{"name": "a", "run": "cat <<EOF\n{{ context.branch }}\nEOF\necho {{ context.branch }}"}]}`, []string{
			`1:45: step "a": run: a template cannot stand inside a here-document; put the value in the step's env (NAME: "{{ ... }}") and use "$NAME" there instead`}},
		{"template in $'...'", `{"steps": [{"name": "a", "run": "echo $'{{ context.branch }}'"}]}`, []string{
			`1:41: step "a": run: a template cannot stand inside $'...'; put the value in the step's env (NAME: "{{ ... }}") and use "$NAME" there instead`}},
		{"template after an uncertain construct", `{"steps": [{"name": "a", "run": "echo $'\\'' {{ context.branch }}"}]}`, []string{
			`1:46: step "a": run: a template cannot follow a backslash inside $'...': how sh quotes the rest of the command cannot be told; put the value in the step's env (NAME: "{{ ... }}") and use "$NAME" there instead`}},
		{"env template error positions past escapes", `{"steps": [{"name": "a", "run": "x", "env": {"A": "\"{{ env.X ++ }}\""}}]}`, []string{
			`1:64: step "a": env.A: template: Syntax error: mismatched input '+' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`,
			`1:66: step "a": env.A: template: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`}},
		{"too many templates", `{"steps": [{"name": "a", "run": "echo ` + strings.Repeat("{{1}}", MaxTemplates+1) + `"}]}`, []string{
			`1:33: step "a": too many templates: a pipeline may have at most 1000`}},
		{"malformed: trailing comma", "{\"steps\": [\n  {\"name\": \"a\", \"run\": \"x\",}\n]}", []string{
			`2:28: invalid JSON: invalid character '}' looking for beginning of object key string`}},
		{"malformed: missing comma", "{\"steps\": [\n  {\"name\": \"a\" \"run\": \"x\"}\n]}", []string{
			`2:16: invalid JSON: invalid character '"' after object key:value pair`}},
		{"malformed: truncated", `{"steps": [{"name": "a"`, []string{`1:24: invalid JSON: unexpected end of file`}},
		{"malformed: trailing data", `{"steps": [{"name": "a", "run": "x"}]} {}`, []string{`1:40: invalid JSON: invalid character '{' after top-level value`}},
		{"malformed: control character in string", "{\"steps\": [{\"name\": \"a\tb\", \"run\": \"x\"}]}", []string{
			`1:23: invalid JSON: invalid character '\t' in string literal`}},
		{"malformed: deep nesting", `{"steps": ` + strings.Repeat("[", 100), []string{`1:74: invalid JSON: nested deeper than 64 levels`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(file, []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", p)
			}
			if p != nil {
				t.Errorf("Parse returned a pipeline with an error")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T is not Errors", err)
			}
			var got []string
			for _, e := range errs {
				if e.File != file {
					t.Errorf("File %q", e.File)
				}
				got = append(got, strings.TrimPrefix(e.Error(), file+":"))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
			if err.Error() != strings.Join(prefixAll(tt.want), "\n") {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

func prefixAll(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = file + ":" + l
	}
	return out
}

func TestErrorFields(t *testing.T) {
	_, err := Parse(file, []byte("{\"steps\": [{\"name\": \"Run build\", \"run\": \"x\",\n \"condition\": \"enviroment == 'x'\"}]}"))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("err %v", err)
	}
	want := &Error{File: file, Line: 2, Col: 16, Step: "Run build", Index: 0, Msg: "condition: undeclared reference to 'enviroment'"}
	if !reflect.DeepEqual(errs[0], want) {
		t.Errorf("got %+v, want %+v", errs[0], want)
	}
}

func TestFileTooLarge(t *testing.T) {
	_, err := Parse(file, make([]byte, MaxFileSize+1))
	if err == nil || !strings.Contains(err.Error(), "larger than the limit") {
		t.Errorf("err %v", err)
	}
}
