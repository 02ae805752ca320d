package engine

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
)

const engineSecret = "s3cr3t-Value(42"

// leaks lists where a reported text holds the secret or an encoding of it.
func leaks(text string) []string {
	var out []string
	for _, enc := range []string{engineSecret, base64.StdEncoding.EncodeToString([]byte(engineSecret)),
		base64.RawURLEncoding.EncodeToString([]byte(engineSecret))} {
		if strings.Contains(text, enc) {
			out = append(out, enc)
		}
	}
	return out
}

// TestFailuresOnSecretReportNoValue: a condition and templates (of a
// command and of an env variable) that fail on a secret fail their steps
// with reasons that say what failed, and neither the step reasons, the
// run's reason nor the log hold the value.
func TestFailuresOnSecretReportNoValue(t *testing.T) {
	p := mustPipeline(t,
		step{"name": "Condition", "condition": "timestamp(env.TOKEN) > timestamp(0)", "run": "echo never"},
		step{"name": "Command", "condition": "always()", "run": "echo {{ 'x'.matches(env.TOKEN) }}"},
		step{"name": "Env", "condition": "always()", "env": map[string]string{"X": "{{ env[env.TOKEN] }}"}, "run": "echo never"},
		step{"name": "Not bool", "condition": "always() ? dyn(env.TOKEN) : false", "run": "echo never"},
	)
	env := map[string]string{"TOKEN": engineSecret}
	res, rec := run(t, context.Background(), Job{Pipeline: p, Env: env, Secrets: []string{engineSecret}})
	if got, want := rec.statuses(), "0:failed 1:failed 2:failed 3:failed"; got != want {
		t.Fatalf("statuses %q, want %q", got, want)
	}
	wants := []string{"condition: type conversion error", "the regular expression does not compile", "no such key: the key is computed", "evaluated to a value of type string"}
	for i, want := range wants {
		if got := rec.reason(i); !strings.Contains(got, want) {
			t.Errorf("step %d: reason %q, want it to contain %q", i, got, want)
		}
	}
	var all []string
	for i := range p.Steps {
		all = append(all, rec.reason(i), res.Steps[i].Reason)
	}
	all = append(all, res.Reason)
	for i := range rec.chunks {
		all = append(all, string(rec.chunks[i].Data))
	}
	for _, text := range all {
		if l := leaks(text); l != nil {
			t.Errorf("reported %q holds %q", text, l)
		}
	}
}

// TestReasonsMasked: whatever quotes a secret in a reason (here the name
// of a working directory that does not exist, as written in the file) or
// in the preamble is masked like the output, with its encodings.
func TestReasonsMasked(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte(engineSecret))
	p := mustPipeline(t,
		step{"name": "Dir", "workingDirectory": engineSecret, "run": "true"},
		step{"name": "Dir 2", "condition": "always()", "workingDirectory": b64, "run": "true"},
	)
	res, rec := run(t, context.Background(), Job{Pipeline: p, Secrets: []string{engineSecret},
		Preamble: []byte("isolation: " + engineSecret + "\n")})
	if res.Status != StatusFailed {
		t.Fatalf("status %s", res.Status)
	}
	if got, want := rec.reason(0), `working directory "***" does not exist in the checkout`; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
	if got := rec.reason(1); !strings.Contains(got, `"***"`) {
		t.Errorf("reason %q", got)
	}
	if got := rec.output(-1, "system"); got != "isolation: ***\n" {
		t.Errorf("preamble %q", got)
	}
	for _, text := range []string{res.Reason, res.Steps[0].Reason, res.Steps[1].Reason} {
		if l := leaks(text); l != nil {
			t.Errorf("reported %q holds %q", text, l)
		}
	}
}

func TestMaskerString(t *testing.T) {
	m := NewMasker([]string{engineSecret, ""})
	in := "a " + engineSecret + " b " + base64.URLEncoding.EncodeToString([]byte(engineSecret)) + " c"
	if got := m.String(in); got != "a *** b *** c" {
		t.Errorf("got %q", got)
	}
	if got := NewMasker(nil).String(in); got != in {
		t.Errorf("no secrets: got %q", got)
	}
	var none *Masker
	if got := none.String("x"); got != "x" {
		t.Errorf("nil masker: got %q", got)
	}
}
