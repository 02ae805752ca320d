package pipeline

import (
	"fmt"
	"strings"
	"testing"
)

// benchVars is what a step late in a run sees: 20 variables, a context
// of the usual size, 10 earlier steps.
func benchVars() Vars {
	env := map[string]string{"ENABLE_TESTS": "true"}
	for i := range 20 {
		env[fmt.Sprintf("V%d", i)] = "x"
	}
	steps := map[string]StepState{}
	for i := range 10 {
		steps[fmt.Sprintf("s%d", i)] = StepState{Status: StatusSucceeded}
	}
	return Vars{
		Env: env,
		Context: map[string]any{"event": "push", "provider": "github", "repository": "acme/app", "branch": "main",
			"ref": "refs/heads/main", "sha": "0123456789abcdef0123456789abcdef01234567", "actor": "alice", "run_id": "r1", "run_number": 42},
		Steps: steps,
	}
}

// BenchmarkConditionEval is a typical condition over env and context.
func BenchmarkConditionEval(b *testing.B) {
	c, err := CompileCondition("context.event == 'push' && env.ENABLE_TESTS == 'true'")
	if err != nil {
		b.Fatal(err)
	}
	v := benchVars()
	for b.Loop() {
		if ok, err := c.Eval(v); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkConditionEvalSteps also reads an earlier step's status.
func BenchmarkConditionEvalSteps(b *testing.B) {
	c, err := CompileCondition("context.event == 'push' && env.ENABLE_TESTS == 'true' && steps.s3.status == 'succeeded'")
	if err != nil {
		b.Fatal(err)
	}
	v := benchVars()
	for b.Loop() {
		if ok, err := c.Eval(v); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkConditionEvalStatus is a status function alone.
func BenchmarkConditionEvalStatus(b *testing.B) {
	c, err := CompileCondition("failure()")
	if err != nil {
		b.Fatal(err)
	}
	v := benchVars()
	v.Run.Status = StatusFailed
	for b.Loop() {
		if ok, err := c.Eval(v); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkTemplateRender renders one command with one placeholder.
func BenchmarkTemplateRender(b *testing.B) {
	tm, err := CompileTemplate("node scripts/{{ context.event }}.js", Shell)
	if err != nil {
		b.Fatal(err)
	}
	v := benchVars()
	for b.Loop() {
		if _, err := tm.Render(v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStepCommands renders a step of three commands with four
// placeholders (one activation for all).
func BenchmarkStepCommands(b *testing.B) {
	p, err := Parse("p.json", []byte(`{"steps": [{"name": "a", "run": [
		"git checkout {{ context.sha }}", "echo \"building {{ context.branch }} #{{ context.run_number }}\"", "make", "test {{ env.V3 }} = x"]}]}`))
	if err != nil {
		b.Fatal(err)
	}
	v := benchVars()
	for b.Loop() {
		if _, err := p.Steps[0].Commands(v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStepCommandsLiteral is a step without templates.
func BenchmarkStepCommandsLiteral(b *testing.B) {
	p, err := Parse("p.json", []byte(`{"steps": [{"name": "a", "run": ["npm ci", "npm test"]}]}`))
	if err != nil {
		b.Fatal(err)
	}
	v := benchVars()
	for b.Loop() {
		if _, err := p.Steps[0].Commands(v); err != nil {
			b.Fatal(err)
		}
	}
}

// pipeline50 is a file of 50 steps, each with a condition, two commands
// (one with a template), an env and a timeout. With distinct, every step's
// condition and template differ, so the parse shares no compilation.
func pipeline50(yamlFormat, distinct bool) []byte {
	suffix := func(i int) string {
		if distinct {
			return fmt.Sprint(i)
		}
		return ""
	}
	var sb strings.Builder
	if yamlFormat {
		sb.WriteString("steps:\n")
		for i := range 50 {
			fmt.Fprintf(&sb, "  - name: Step %d\n    condition: context.event == 'push' && env.X == 'y%s'\n    run:\n      - echo step %d\n      - make t%d BRANCH={{ context.branch%s }}\n    env:\n      A: \"1\"\n    timeout: 60s\n",
				i, suffix(i), i, i, strings.Repeat(" ", len(suffix(i))))
		}
		return []byte(sb.String())
	}
	sb.WriteString(`{"steps": [`)
	for i := range 50 {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"name": "Step %d", "condition": "context.event == 'push' && env.X == 'y%s'", "run": ["echo step %d", "make t%d BRANCH={{ context.branch + '%s' }}"], "env": {"A": "1"}, "timeout": "60s"}`,
			i, suffix(i), i, i, suffix(i))
	}
	sb.WriteString(`]}`)
	return []byte(sb.String())
}

func benchParse(b *testing.B, name string, data []byte) {
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(name, data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse50 parses, validates and compiles a 50-step JSON file.
func BenchmarkParse50(b *testing.B) { benchParse(b, "p.json", pipeline50(false, false)) }

// BenchmarkParse50YAML is the same pipeline in YAML.
func BenchmarkParse50YAML(b *testing.B) { benchParse(b, "p.yaml", pipeline50(true, false)) }

// BenchmarkParse50Distinct has a different condition and template in
// every step: 100 expressions to compile.
func BenchmarkParse50Distinct(b *testing.B) { benchParse(b, "p.json", pipeline50(false, true)) }
