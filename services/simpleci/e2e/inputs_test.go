package e2e_test

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestInputsDev triggers runs with inputs through `simpleci dev`.
func TestInputsDev(t *testing.T) { inputsFlow(t, startDev(t)) }

// TestInputsServices triggers runs with inputs through the split deployment, whose
// gateway validates the request against the OpenAPI document.
func TestInputsServices(t *testing.T) { inputsFlow(t, startServices(t)) }

// inputsPipeline: the deploy step runs only for prod and not a dry run, and prints the
// inputs through a template and an env value.
const inputsPipeline = `{
  "inputs": {
    "target": {"type": "string", "enum": ["staging", "prod"], "default": "staging", "description": "where to deploy"},
    "dryRun": {"type": "bool", "default": true},
    "replicas": {"type": "number", "required": true}
  },
  "steps": [
    {"name": "show", "run": "echo target={{ context.inputs.target }} replicas=$REPLICAS", "env": {"REPLICAS": "{{ context.inputs.replicas }}"}},
    {"name": "deploy", "condition": "context.inputs.target == 'prod' && !context.inputs.dryRun && context.inputs.replicas > 2", "run": "echo deploying"}
  ]}`

// inputsFlow: inputs reach a condition, a template and an env value; bad inputs are
// 400 naming the input, and record no run.
func inputsFlow(t *testing.T, a *api) {
	repo, _ := gitRepo(t, map[string]string{"main2": inputsPipeline})
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "inputs", "provider": "local", "repository": repo, "events": []string{"push"}}, http.StatusOK, &p)
	logText := func(id string) string {
		var b strings.Builder
		for _, c := range a.waitLogs(id) {
			b.WriteString(c.Text)
		}
		return b.String()
	}
	// Through the CLI: the condition holds.
	out, err := exec.Command(bin, "trigger", "inputs", "--ref", "main2", "--input", "target=prod", "--input", "dryRun=false", "--input", "replicas=3",
		"--server", a.base, "--token", a.token).CombinedOutput()
	if err != nil {
		t.Fatalf("simpleci trigger --input: %v\n%s", err, out)
	}
	id := strings.Fields(string(out))[1]
	r := a.waitRun(id, 60*time.Second)
	if r.Status != "succeeded" || stepStatuses(r)["deploy"] != "succeeded" {
		t.Fatalf("prod run: %s %+v", r.Status, r.Steps)
	}
	if text := logText(id); !strings.Contains(text, "target=prod replicas=3") || !strings.Contains(text, "deploying") {
		t.Fatalf("prod run log:\n%s", text)
	}
	var got struct {
		Inputs map[string]string `json:"inputs"`
	}
	a.json("GET", "/api/v1/runs/"+id, nil, http.StatusOK, &got)
	if got.Inputs["target"] != "prod" || got.Inputs["dryRun"] != "false" || got.Inputs["replicas"] != "3" {
		t.Fatalf("run inputs %v", got.Inputs)
	}
	if out, err := exec.Command(bin, "runs", "show", id, "--server", a.base, "--token", a.token).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "inputs dryRun=false replicas=3 target=prod") {
		t.Fatalf("simpleci runs show: %v\n%s", err, out)
	}
	// Defaults: the condition is false.
	var d run
	a.json("POST", "/api/v1/projects/inputs/runs", map[string]any{"ref": "main2", "inputs": map[string]string{"replicas": "1"}}, http.StatusOK, &d)
	d = a.waitRun(d.ID, 60*time.Second)
	if d.Status != "succeeded" || stepStatuses(d)["deploy"] != "skipped" {
		t.Fatalf("default run: %s %+v", d.Status, d.Steps)
	}
	if text := logText(d.ID); !strings.Contains(text, "target=staging replicas=1") {
		t.Fatalf("default run log:\n%s", text)
	}
	for _, c := range []struct {
		inputs map[string]string
		want   string
	}{
		{map[string]string{"replicas": "1", "region": "eu"}, `unknown input \"region\"`},
		{map[string]string{"replicas": "one"}, `input \"replicas\" must be a number`},
		{map[string]string{"replicas": "1", "dryRun": "maybe"}, `input \"dryRun\" must be true or false`},
		{map[string]string{"replicas": "1", "target": "qa"}, `input \"target\": \"qa\" is not one of staging, prod`},
		{map[string]string{}, `input \"replicas\" is required`},
	} {
		code, b := a.do("POST", "/api/v1/projects/inputs/runs", map[string]any{"ref": "main2", "inputs": c.inputs}, nil)
		if code != http.StatusBadRequest || !strings.Contains(string(b), c.want) {
			t.Errorf("inputs %v: %d %s, want 400 with %s", c.inputs, code, b, c.want)
		}
	}
	out, err = exec.Command(bin, "trigger", "inputs", "--ref", "main2", "--input", "replicas=x", "--server", a.base, "--token", a.token).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `input "replicas" must be a number`) {
		t.Errorf("simpleci trigger with a bad input: %v\n%s", err, out)
	}
}
