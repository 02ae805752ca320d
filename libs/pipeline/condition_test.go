package pipeline

import (
	"strings"
	"testing"
)

func TestConditionEval(t *testing.T) {
	vars := func(run string) Vars {
		return Vars{
			Env:     map[string]string{"ENABLE_TESTS": "true", "EMPTY": ""},
			Context: map[string]any{"event": "push", "branch": "main", "run_number": 42, "pull_request": map[string]any{"number": int64(7)}, "labels": []any{"a", "b"}},
			Steps:   map[string]StepState{"build": {Status: StatusFailed, ExitCode: 2}, "lint": {Status: StatusSucceeded}},
			Run:     RunState{Status: run},
		}
	}
	tests := []struct {
		cond string
		run  string // run.status; "" = succeeded
		want bool
		err  string // substring of the error
	}{
		{cond: "", want: true},
		{cond: "  ", want: true},
		{cond: "", run: StatusFailed, want: false},
		{cond: "context.event == 'push'", want: true},
		{cond: "context.event == 'push'", run: StatusFailed, want: false},
		{cond: "context.event == 'push'", run: StatusCancelled, want: false},
		{cond: "context.event == 'push' && env.ENABLE_TESTS == 'true'", want: true},
		{cond: "context.run_number > 40 && context.pull_request.number == 7", want: true},
		{cond: "'b' in context.labels && context.branch.startsWith('ma')", want: true},
		{cond: "success()", want: true},
		{cond: "success()", run: StatusFailed, want: false},
		{cond: "failure()", want: false},
		{cond: "failure()", run: StatusFailed, want: true},
		{cond: "failure()", run: StatusTimedOut, want: false},
		{cond: "failure() && steps.build.exit_code == 2", run: StatusFailed, want: true},
		{cond: "always()", run: StatusTimedOut, want: true},
		{cond: "always() && run.status == 'timed_out'", run: StatusTimedOut, want: true},
		{cond: "cancelled()", run: StatusCancelled, want: true},
		{cond: "cancelled()", run: StatusFailed, want: false},
		{cond: "steps.lint.status == 'succeeded' && steps.build.status == 'failed'", want: true},
		{cond: "'build' in steps && has(steps.lint) && !has(steps.deploy) && size(steps) == 2", want: true},
		{cond: "steps.exists(id, steps[id].status == 'failed' && id == 'build')", want: true},
		{cond: "steps.all(id, steps[id].exit_code >= 0)", want: true},
		{cond: "steps.build == {'status': 'failed', 'exit_code': 2} && steps != {}", want: true},
		{cond: "steps['lint'].exit_code == 0 && steps.?deploy.orValue({'status': 'x'}).status == 'x'", want: true},
		{cond: "steps.deploy.status == 'failed'", err: `no such key "deploy"; a key that may be missing needs a guard such as has(steps.deploy), 'deploy' in steps or steps.?deploy.orValue('')`},
		{cond: "steps[dyn(1)] == 'x'", err: "no such key"},
		{cond: "!success() || true", run: StatusFailed, want: true}, // calls success(): no implicit guard
		{cond: "has(env.MISSING)", want: false},
		{cond: "'MISSING' in env", want: false},
		{cond: "env.?MISSING.orValue('x') == 'x'", want: true},
		{cond: "env.EMPTY == ''", want: true},
		{cond: "env.MISSING == 'x'", err: `no such key "MISSING"; a variable that may be unset needs a guard such as has(env.MISSING)`},
		{cond: "context.nope == 'x'", err: `no such key "nope"; a key that may be missing needs a guard such as has(context.nope), 'nope' in context or context.?nope.orValue('')`},
		{cond: "context.pull_request.draft", err: `no such key "draft"; a key that may be missing needs a guard such as has(context.pull_request.draft), 'draft' in context.pull_request or context.pull_request.?draft.orValue('')`},
		{cond: "env['A-B'] == 'x'", err: `no such key "A-B"; a variable that may be unset needs a guard such as 'A-B' in env or env[?'A-B'].orValue('')`},
		{cond: "context.event", err: "evaluated to a value of type string, want a bool"},
		{cond: "context.run_number / 0 == 1", err: "division by zero"},
		{cond: "[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, a+b+c+d+e > 0)))))", err: "too expensive to evaluate"},
	}
	for _, tt := range tests {
		name := tt.cond + "/" + tt.run
		t.Run(name, func(t *testing.T) {
			c, err := CompileCondition(tt.cond)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			got, err := c.Eval(vars(tt.run))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want it to contain %q", err, tt.err)
				}
				if !strings.HasPrefix(err.Error(), "condition: ") {
					t.Errorf("err %q does not start with condition:", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("eval: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConditionNilAndImplicit(t *testing.T) {
	var c *Condition
	if ok, err := c.Eval(Vars{}); !ok || err != nil {
		t.Errorf("nil condition: %v %v", ok, err)
	}
	if ok, _ := c.Eval(Vars{Run: RunState{Status: StatusFailed}}); ok {
		t.Errorf("nil condition ran after a failure")
	}
	for src, implicit := range map[string]bool{"": true, "true": true, "always()": false, "[1].exists(x, failure())": false} {
		c, err := CompileCondition(src)
		if err != nil {
			t.Fatal(err)
		}
		if c.Implicit() != implicit || c.String() != src {
			t.Errorf("%q: Implicit %v String %q", src, c.Implicit(), c.String())
		}
	}
}

func TestCompileConditionErrors(t *testing.T) {
	tests := map[string]string{
		"env.X ==":        "condition:1:9: Syntax error",
		"true &&\n  nope": "condition:2:3: undeclared reference to 'nope'",
		"success(1)":      "condition:1:8: found no matching overload for 'success' applied to '(int)'",
		"1":               "condition:1:1: must be a bool expression, this one is of type int",
		strings.Repeat("(", 300) + "true" + strings.Repeat(")", 300): "condition:",
		strings.Repeat("a", 10001):                                   "condition:1:1: expression code point size exceeds limit",
	}
	for src, want := range tests {
		_, err := CompileCondition(src)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%.40q: err %v, want prefix %q", src, err, want)
		}
	}
}
