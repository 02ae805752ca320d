package pipeline

import (
	"strings"
	"testing"
)

func TestInputs(t *testing.T) {
	p, err := Parse("p.yaml", []byte(`
inputs:
  target: {type: string, default: staging, enum: [staging, prod], description: where to deploy}
  dryRun: {type: bool, default: true}
  count: {type: number, required: true}
  note: {}
steps:
  - name: deploy
    condition: "context.inputs.target == 'prod' && !context.inputs.dryRun && context.inputs.count > 2"
    run: "echo {{ context.inputs.target }} {{ context.inputs.count }}"
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Inputs) != 4 || p.Inputs[0].Name != "target" || p.Inputs[1].Type != InputBool || !p.Inputs[2].Required || p.Inputs[3].Type != InputString {
		t.Fatalf("inputs %+v", p.Inputs)
	}
	got, err := p.ResolveInputs(map[string]string{"target": "prod", "dryRun": "false", "count": "3.0"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["target"] != "prod" || got["dryRun"] != "false" || got["count"] != "3" {
		t.Fatalf("resolved %v", got)
	}
	vars := Vars{Context: map[string]any{"inputs": p.InputValues(got)}}
	if ok, err := p.Steps[0].Condition.Eval(vars); err != nil || !ok {
		t.Fatalf("condition: %v %v", ok, err)
	}
	cmds, err := p.Steps[0].Commands(vars)
	if err != nil || len(cmds) != 1 || cmds[0] != "echo 'prod' '3'" && cmds[0] != "echo prod 3" {
		t.Fatalf("commands %q %v", cmds, err)
	}
	defaults, err := p.ResolveInputs(nil, false)
	if err != nil || defaults["target"] != "staging" || defaults["dryRun"] != "true" || len(defaults) != 2 {
		t.Fatalf("defaults %v %v", defaults, err)
	}
	for given, want := range map[string]string{
		"bogus=1":              `unknown input "bogus" (declared: target, dryRun, count, note)`,
		"count=x":              `input "count" must be a number, not "x"`,
		"count=1,dryRun=maybe": `input "dryRun" must be true or false, not "maybe"`,
		"count=1,target=qa":    `input "target": "qa" is not one of staging, prod`,
		"target=prod":          `input "count" is required`,
	} {
		m := map[string]string{}
		for _, kv := range strings.Split(given, ",") {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		if _, err := p.ResolveInputs(m, true); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", given, err, want)
		}
	}
	none, _ := Parse("p.json", []byte(`{"steps": [{"name": "a", "run": "true"}]}`))
	if _, err := none.ResolveInputs(map[string]string{"x": "1"}, true); err == nil || !strings.Contains(err.Error(), `unknown input "x": the pipeline declares no inputs`) {
		t.Errorf("no inputs declared: %v", err)
	}
}

func TestInputsInvalid(t *testing.T) {
	for src, want := range map[string]string{
		`{"inputs": [], "steps": [{"name": "a", "run": "true"}]}`:                                        `"inputs" must be an object`,
		`{"inputs": {"a-b": {}}, "steps": [{"name": "a", "run": "true"}]}`:                               `input name "a-b" must be a letter`,
		`{"inputs": {"a": {"type": "choice"}}, "steps": [{"name": "a", "run": "true"}]}`:                 `"type" must be "string", "bool" or "number"`,
		`{"inputs": {"a": {"type": "bool", "default": "yes"}}, "steps": [{"name": "a", "run": "true"}]}`: `"default" must be a boolean`,
		`{"inputs": {"a": {"enum": ["x"], "default": "y"}}, "steps": [{"name": "a", "run": "true"}]}`:    `"default" "y" is not one of x`,
		`{"inputs": {"a": {"options": ["x"]}}, "steps": [{"name": "a", "run": "true"}]}`:                 `unknown field "options", did you mean "enum"?`,
	} {
		if _, err := Parse("p.json", []byte(src)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", src, err, want)
		}
	}
}
