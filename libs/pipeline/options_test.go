package pipeline

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseWithOptionsTimeout(t *testing.T) {
	src := func(timeout string) []byte {
		return []byte(`{"steps": [{"name": "a", "run": "x", "timeout": "` + timeout + `"}]}`)
	}
	tests := []struct {
		name    string
		timeout string
		opts    Options
		want    string // "" = valid
	}{
		{"no limit by default", "10h", Options{}, ""},
		{"below the limit", "90s", Options{MaxTimeout: 150 * time.Second, Tier: "standard"}, ""},
		{"at the limit", "2m30s", Options{MaxTimeout: 150 * time.Second, Tier: "standard"}, ""},
		{"above the limit", "10m", Options{MaxTimeout: 150 * time.Second, Tier: "standard"},
			`.simpleci/pipeline.json:1:49: step "a": timeout 10m exceeds the standard tier's limit of 150s`},
		{"above the limit, no tier name", "151s", Options{MaxTimeout: 150 * time.Second},
			`.simpleci/pipeline.json:1:49: step "a": timeout 151s exceeds the limit of 150s`},
		{"above a limit that is not whole seconds", "2s", Options{MaxTimeout: 1500 * time.Millisecond, Tier: "tiny"},
			`.simpleci/pipeline.json:1:49: step "a": timeout 2s exceeds the tiny tier's limit of 1.5s`},
		{"invalid stays invalid", "-1s", Options{MaxTimeout: time.Minute},
			`.simpleci/pipeline.json:1:49: step "a": timeout: "-1s" must be greater than zero`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseWithOptions(file, src(tt.timeout), tt.opts)
			if tt.want == "" {
				if err != nil || p == nil {
					t.Fatalf("err %v", err)
				}
				return
			}
			var errs Errors
			if !errors.As(err, &errs) || err.Error() != tt.want {
				t.Fatalf("err %v, want %s", err, tt.want)
			}
		})
	}
	// YAML: the same rule, with YAML positions.
	_, err := ParseWithOptions("p.yaml", []byte("steps:\n  - name: a\n    run: x\n    timeout: 10m\n"), Options{MaxTimeout: 150 * time.Second, Tier: "standard"})
	if err == nil || err.Error() != `p.yaml:4:14: step "a": timeout 10m exceeds the standard tier's limit of 150s` {
		t.Errorf("yaml: %v", err)
	}
}

func TestIsYAML(t *testing.T) {
	for name, want := range map[string]bool{
		".simpleci/pipeline.yaml": true, "p.yml": true, "P.YAML": true, `dir\p.Yml`: true,
		".simpleci/pipeline.json": false, "pipeline": false, "yaml": false, "p.yaml.json": false,
	} {
		if IsYAML(name) != want {
			t.Errorf("IsYAML(%q) = %v", name, !want)
		}
	}
	// Parse picks the reader by the name.
	if _, err := Parse("x.yml", []byte("steps: [{name: a, run: x}]")); err != nil {
		t.Errorf("yml: %v", err)
	}
	if _, err := Parse("x.json", []byte("steps: [{name: a, run: x}]")); err == nil || !strings.Contains(err.Error(), "invalid JSON") {
		t.Errorf("json: %v", err)
	}
}

func TestMaxSteps(t *testing.T) {
	pipeline := func(n int) []byte {
		var b strings.Builder
		b.WriteString(`{"steps": [`)
		for i := range n {
			if i > 0 {
				b.WriteString(",\n")
			}
			fmt.Fprintf(&b, `{"name": "s%d", "run": "true"}`, i)
		}
		b.WriteString("]}")
		return []byte(b.String())
	}
	if _, err := ParseWithOptions("p.json", pipeline(3), Options{MaxSteps: 3}); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	_, err := ParseWithOptions("p.json", pipeline(4), Options{MaxSteps: 3, Tier: "standard"})
	if err == nil || !strings.Contains(err.Error(), "p.json:4:1: 4 steps exceed the standard tier's limit of 3 steps per pipeline") {
		t.Fatalf("above the limit: %v", err)
	}
	if _, err := Parse("p.json", pipeline(DefaultMaxSteps+1)); err == nil || !strings.Contains(err.Error(), "limit of 1000 steps") {
		t.Fatalf("above the default limit: %v", err)
	}
}
