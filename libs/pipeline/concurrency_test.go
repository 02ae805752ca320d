package pipeline

import (
	"strings"
	"testing"
)

func TestConcurrency(t *testing.T) {
	p, err := Parse("p.json", []byte(`{
  "concurrency": {"key": "deploy-{{ context.branch }}", "limit": 2, "cancelInProgress": true},
  "steps": [{"name": "a", "run": "true"}]
}`))
	if err != nil {
		t.Fatal(err)
	}
	c := p.Concurrency
	if c == nil || c.Key != "deploy-{{ context.branch }}" || c.Limit != 2 || !c.CancelInProgress || c.Pos.Line != 2 {
		t.Fatalf("concurrency %+v", c)
	}
	k, err := c.RenderKey(Vars{Context: map[string]any{"branch": "main"}})
	if err != nil || k != "deploy-main" {
		t.Fatalf("key %q %v", k, err)
	}
	// A value is inserted as it is (Raw): no shell quoting in a key.
	if k, err := c.RenderKey(Vars{Context: map[string]any{"branch": "it's"}}); err != nil || k != "deploy-it's" {
		t.Fatalf("key %q %v", k, err)
	}
	for ctx, want := range map[string]string{
		"":                       `concurrency.key: {{ context.branch }}: `,
		strings.Repeat("b", 300): `renders to 307 bytes (at most 256)`,
		"a\nb":                   `renders to more than one line`,
	} {
		v := Vars{Context: map[string]any{}}
		if ctx != "" {
			v.Context["branch"] = ctx
		}
		if _, err := c.RenderKey(v); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("branch %.20q: %v, want %q", ctx, err, want)
		}
	}

	p, err = Parse("p.yaml", []byte("concurrency: {key: deploy}\nsteps: [{name: a, run: 'true'}]\n"))
	if err != nil || p.Concurrency.Limit != 1 || p.Concurrency.CancelInProgress {
		t.Fatalf("defaults: %+v %v", p.Concurrency, err)
	}
	if k, err := p.Concurrency.RenderKey(Vars{}); err != nil || k != "deploy" {
		t.Fatalf("literal key %q %v", k, err)
	}
	if p, _ := Parse("p.yaml", []byte("steps: [{name: a, run: 'true'}]\n")); p.Concurrency != nil {
		t.Fatalf("no concurrency: %+v", p.Concurrency)
	}
}

func TestConcurrencyErrors(t *testing.T) {
	for doc, want := range map[string]string{
		`{"concurrency": "deploy", "steps": [{"name": "a", "run": "true"}]}`:                                    `p.json:1:17: "concurrency" must be an object with "key"`,
		`{"concurrency": {}, "steps": [{"name": "a", "run": "true"}]}`:                                          `p.json:1:17: concurrency: missing "key"`,
		`{"concurrency": {"key": ""}, "steps": [{"name": "a", "run": "true"}]}`:                                 `p.json:1:25: concurrency: "key" is empty`,
		`{"concurrency": {"key": 3}, "steps": [{"name": "a", "run": "true"}]}`:                                  `p.json:1:25: concurrency: "key" must be a string`,
		`{"concurrency": {"key": "k", "limit": 0}, "steps": [{"name": "a", "run": "true"}]}`:                    `p.json:1:39: concurrency: "limit" must be a whole number from 1 to 100 (how many runs of a key may run at once), not 0`,
		`{"concurrency": {"key": "k", "limit": 1.5}, "steps": [{"name": "a", "run": "true"}]}`:                  `not 1.5`,
		`{"concurrency": {"key": "k", "limit": "1"}, "steps": [{"name": "a", "run": "true"}]}`:                  `not a string`,
		`{"concurrency": {"key": "k", "limit": 101}, "steps": [{"name": "a", "run": "true"}]}`:                  `from 1 to 100`,
		`{"concurrency": {"key": "k", "cancelInProgress": "yes"}, "steps": [{"name": "a", "run": "true"}]}`:     `concurrency: "cancelInProgress" must be true or false, not a string`,
		`{"concurrency": {"key": "k", "cancel-in-progress": true}, "steps": [{"name": "a", "run": "true"}]}`:    `unknown field "cancel-in-progress", did you mean "cancelInProgress"?`,
		`{"concurrency": {"group": "k"}, "steps": [{"name": "a", "run": "true"}]}`:                              `unknown field "group", did you mean "key"?`,
		`{"concurrency": {"key": "d-{{ context.branch ==  }}"}, "steps": [{"name": "a", "run": "true"}]}`:       `p.json:1:50: concurrency.key: template: Syntax error`,
		`{"concurrency": {"key": "` + strings.Repeat("k", 257) + `"}, "steps": [{"name": "a", "run": "true"}]}`: `concurrency: "key" is 257 bytes (at most 256)`,
		"concurrency:\n  key: k\n  limit: -1\nsteps: [{name: a, run: 'true'}]\n":                                `p.yaml:3:10: concurrency: "limit" must be a whole number from 1 to 100`,
	} {
		file := "p.json"
		if !strings.HasPrefix(doc, "{") {
			file = "p.yaml"
		}
		_, err := Parse(file, []byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.60s: %v\nwant %q", doc, err, want)
		}
	}
}
