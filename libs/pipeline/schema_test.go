package pipeline

import (
	"bytes"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

func schemaDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(Schema))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("the schema is not valid JSON: %v", err)
	}
	return doc
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("pipeline.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	// Compile checks the schema against the draft 2020-12 meta-schema.
	sch, err := c.Compile("pipeline.schema.json")
	if err != nil {
		t.Fatalf("the schema is not a valid draft 2020-12 schema: %v", err)
	}
	return sch
}

func keys(m any) []string {
	obj, _ := m.(map[string]any)
	out := make([]string, 0, len(obj))
	for k := range obj {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return sorted(out)
}

// TestSchemaMatchesParser keeps the schema and the parser from drifting:
// the same fields, the same required ones, a description for each.
func TestSchemaMatchesParser(t *testing.T) {
	doc := schemaDoc(t)
	compileSchema(t)
	if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema %v", doc["$schema"])
	}
	step := doc["$defs"].(map[string]any)["step"].(map[string]any)
	for _, c := range []struct {
		where    string
		schema   map[string]any
		fields   []string
		required []string
	}{
		{"top level", doc, topFields, []string{"steps"}},
		{"step", step, stepFields, []string{"name"}},
	} {
		if got := keys(c.schema["properties"]); !slices.Equal(got, sorted(c.fields)) {
			t.Errorf("%s: the schema has fields %q, the parser knows %q", c.where, got, sorted(c.fields))
		}
		if got := strs(c.schema["required"]); !slices.Equal(got, c.required) {
			t.Errorf("%s: required %q, want %q", c.where, got, c.required)
		}
		if c.schema["additionalProperties"] != false {
			t.Errorf("%s: additionalProperties is not false", c.where)
		}
		if c.schema["description"] == nil {
			t.Errorf("%s: no description", c.where)
		}
		for name, prop := range c.schema["properties"].(map[string]any) {
			if d, _ := prop.(map[string]any)["description"].(string); len(d) < 20 {
				t.Errorf("%s: field %s has no useful description (%q)", c.where, name, d)
			}
		}
	}
}

// TestSchemaAgreesWithParser validates documents with both: whatever the
// parser accepts the schema accepts, and whatever the schema refuses the
// parser refuses. Some rules only the parser can check (duplicates, CEL,
// .. in a path, the tier's timeout); those documents pass the schema.
func TestSchemaAgreesWithParser(t *testing.T) {
	sch := compileSchema(t)
	tests := []struct {
		name         string
		doc          string // JSON, or YAML when it starts with "yaml:"
		schemaOK     bool
		parserOK     bool
		parserReason string // why the parser refuses what the schema accepts
	}{
		{"seed", `{"steps": [{"name": "Install dependencies", "condition": "context.event == 'push'", "run": ["echo \"Starting installation\"", "npm install"]}, {"name": "Run build", "condition": "context.event == 'push' && env.ENABLE_TESTS == 'true'", "run": "npm run test"}]}`, true, true, ""},
		{"every field", `{"$schema": "x", "steps": [{"name": "D", "id": "d_1", "condition": "always()", "run": "make {{ context.event }}", "env": {"T": "{{ context.branch }}", "_X": ""}, "timeout": "1m30s", "continueOnError": true, "workingDirectory": "a/b"}]}`, true, true, ""},
		{"yaml", "yaml:steps:\n  - name: a\n    run: |\n      echo {{ context.sha }}\n    timeout: 1.5h\n", true, true, ""},
		{"fractional timeout", `{"steps": [{"name": "a", "run": "x", "timeout": ".5s"}]}`, true, true, ""},
		{"missing steps", `{}`, false, false, ""},
		{"empty steps", `{"steps": []}`, false, false, ""},
		{"unknown top field", `{"steps": [{"name": "a", "run": "x"}], "on": "push"}`, false, false, ""},
		{"missing name", `{"steps": [{"run": "x"}]}`, false, false, ""},
		{"missing run", `{"steps": [{"name": "a"}]}`, false, false, ""},
		{"blank name", `{"steps": [{"name": " ", "run": "x"}]}`, false, false, ""},
		{"two-line name", `{"steps": [{"name": "a\nb", "run": "x"}]}`, false, false, ""},
		{"unknown step field", `{"steps": [{"name": "a", "run": "x", "if": "true"}]}`, false, false, ""},
		{"bad id", `{"steps": [{"name": "a", "run": "x", "id": "a-b"}]}`, false, false, ""},
		{"long id", `{"steps": [{"name": "a", "run": "x", "id": "` + strings.Repeat("a", 65) + `"}]}`, false, false, ""},
		{"blank run", `{"steps": [{"name": "a", "run": "  "}]}`, false, false, ""},
		{"empty run list", `{"steps": [{"name": "a", "run": []}]}`, false, false, ""},
		{"blank command", `{"steps": [{"name": "a", "run": ["x", ""]}]}`, false, false, ""},
		{"run number", `{"steps": [{"name": "a", "run": 1}]}`, false, false, ""},
		{"env list", `{"steps": [{"name": "a", "run": "x", "env": ["A=1"]}]}`, false, false, ""},
		{"env bad name", `{"steps": [{"name": "a", "run": "x", "env": {"1A": "x"}}]}`, false, false, ""},
		{"env number", `{"steps": [{"name": "a", "run": "x", "env": {"A": 1}}]}`, false, false, ""},
		{"yaml env bool", "yaml:steps: [{name: a, run: x, env: {A: true}}]", false, false, ""},
		{"timeout words", `{"steps": [{"name": "a", "run": "x", "timeout": "5 minutes"}]}`, false, false, ""},
		{"timeout negative", `{"steps": [{"name": "a", "run": "x", "timeout": "-5m"}]}`, false, false, ""},
		{"timeout number", `{"steps": [{"name": "a", "run": "x", "timeout": 90}]}`, false, false, ""},
		{"continueOnError string", `{"steps": [{"name": "a", "run": "x", "continueOnError": "true"}]}`, false, false, ""},
		{"absolute workingDirectory", `{"steps": [{"name": "a", "run": "x", "workingDirectory": "/etc"}]}`, false, false, ""},
		{"type", `{"steps": [{"name": "a", "run": "x", "type": "cache-files"}]}`, false, false, ""},
		{"cache step", `{"steps": [{"name": "c", "type": "cache-files", "key": "deps-{{ context.branch }}", "restoreKeys": ["deps-"], "downloadPath": "x", "fileNames": ["node_modules/**"], "expiry": "7d"}]}`, true, true, ""},
		{"store step", `{"steps": [{"name": "s", "type": "store-files", "key": "dist", "fileNames": ["dist/**", "c.txt"], "expiry": "12h"}]}`, true, true, ""},
		{"store step with restoreKeys", `{"steps": [{"name": "s", "type": "store-files", "key": "d", "fileNames": ["d"], "expiry": "1d", "restoreKeys": ["x"]}]}`, false, false, ""},
		{"cache step with run", `{"steps": [{"name": "s", "type": "cache-files", "key": "d", "fileNames": ["d"], "expiry": "1d", "run": "x"}]}`, false, false, ""},
		{"cache step without expiry", `{"steps": [{"name": "s", "type": "cache-files", "key": "d", "fileNames": ["d"]}]}`, false, false, ""},
		{"key in a command step", `{"steps": [{"name": "s", "run": "x", "key": "d"}]}`, false, false, ""},
		{"glob climbing out", `{"steps": [{"name": "s", "type": "store-files", "key": "d", "fileNames": ["a/../../etc"], "expiry": "1d"}]}`, false, false, ""},
		{"expiry too long", `{"steps": [{"name": "s", "type": "store-files", "key": "d", "fileNames": ["a"], "expiry": "100d"}]}`, true, false, "exceeds the limit"},
		{"condition number", `{"steps": [{"name": "a", "run": "x", "condition": 1}]}`, false, false, ""},
		{"duplicate names", `{"steps": [{"name": "a", "run": "x"}, {"name": "a", "run": "y"}]}`, true, false, "duplicate step name"},
		{"duplicate ids", `{"steps": [{"name": "a", "id": "x", "run": "x"}, {"name": "b", "id": "x", "run": "y"}]}`, true, false, "duplicate step id"},
		{"condition that does not compile", `{"steps": [{"name": "a", "run": "x", "condition": "nope"}]}`, true, false, "undeclared reference"},
		{"template that does not compile", `{"steps": [{"name": "a", "run": "echo {{ nope }}"}]}`, true, false, "undeclared reference"},
		{"workingDirectory escaping", `{"steps": [{"name": "a", "run": "x", "workingDirectory": "a/../.."}]}`, true, false, "escapes the checkout"},
		{"zero timeout", `{"steps": [{"name": "a", "run": "x", "timeout": "0s"}]}`, true, false, "greater than zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var inst any
			filename := "p.json"
			data := []byte(tt.doc)
			if y, ok := strings.CutPrefix(tt.doc, "yaml:"); ok {
				filename, data = "p.yaml", []byte(y)
				if err := yaml.Unmarshal(data, &inst); err != nil {
					t.Fatal(err)
				}
			} else {
				var err error
				if inst, err = jsonschema.UnmarshalJSON(bytes.NewReader(data)); err != nil {
					t.Fatal(err)
				}
			}
			serr := sch.Validate(inst)
			if (serr == nil) != tt.schemaOK {
				t.Errorf("schema: %v, want ok=%v", serr, tt.schemaOK)
			}
			_, perr := Parse(filename, data)
			if (perr == nil) != tt.parserOK {
				t.Errorf("parser: %v, want ok=%v", perr, tt.parserOK)
			}
			if tt.parserReason != "" && (perr == nil || !strings.Contains(perr.Error(), tt.parserReason)) {
				t.Errorf("parser: %v, want %q", perr, tt.parserReason)
			}
			if tt.parserOK && !tt.schemaOK {
				t.Errorf("the schema refuses a pipeline the parser accepts")
			}
		})
	}
}
