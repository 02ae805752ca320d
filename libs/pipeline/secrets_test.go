package pipeline

import (
	"encoding/base64"
	"strings"
	"testing"
)

// The planted values: a secret in env and in the context, each with a
// character that makes regular expressions fail, and a numeric one that
// an index or a number conversion may quote.
const (
	plantedEnv     = "s3cr3t-env-Value("
	plantedContext = "s3cr3t-ctx-Value["
	plantedNumber  = "918273645"
)

func plantedVars() Vars {
	return Vars{
		Env:     map[string]string{"TOKEN": plantedEnv, "PIN": plantedNumber},
		Context: map[string]any{"token": plantedContext, "pin": plantedNumber, "list": []any{"a"}, "m": map[string]any{"k": plantedContext}},
	}
}

// checkNoSecret fails when msg holds a planted value or one of its base64
// encodings.
func checkNoSecret(t *testing.T, what, msg string) {
	t.Helper()
	for _, v := range []string{plantedEnv, plantedContext, plantedNumber} {
		for _, enc := range []string{v, base64.StdEncoding.EncodeToString([]byte(v)), base64.RawStdEncoding.EncodeToString([]byte(v)),
			base64.URLEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v))} {
			if strings.Contains(msg, enc) {
				t.Errorf("%s: the error quotes a value (%q): %s", what, enc, msg)
			}
		}
	}
}

// TestErrorsQuoteNoValue evaluates, per kind of runtime error, an
// expression that fails on a secret, as a condition, as a template of a
// run command and of an env variable: the error says what failed and
// where, never the value.
func TestErrorsQuoteNoValue(t *testing.T) {
	tests := []struct {
		kind, expr, want string // want: a substring of the error
	}{
		{"int conversion", "int(env.TOKEN)", "type conversion error from 'string' to 'int'"},
		{"uint conversion", "uint(context.token)", "type conversion error from 'string' to 'uint'"},
		{"double conversion", "double(env.TOKEN)", "type conversion error from 'string' to 'double'"},
		{"bool conversion", "bool(env.TOKEN)", "type conversion error from 'string' to 'bool'"},
		{"duration", "string(duration(env.TOKEN))", "type conversion error"},
		{"timestamp", "string(timestamp(env.TOKEN))", "type conversion error"},
		{"regexp", "'x'.matches(env.TOKEN)", "the regular expression does not compile"},
		{"computed env key", "env[env.TOKEN]", "no such key: the key is computed"},
		{"computed context key", "context[context.token]", "no such key: the key is computed"},
		{"computed nested key", "context.m[env.TOKEN]", "no such key: the key is computed"},
		{"index from a value", "context.list[int(env.PIN)]", "index out of range"},
		{"list index", "[1, 2][int(context.pin)]", "index out of range"},
		{"type mismatch", "context.token + 1", "no such overload"},
		{"dyn field", "dyn(context.token).field", "no such key"},
		{"overflow", "int(env.PIN) * 9223372036854775807", "integer overflow"},
		{"format", "'%d'.format([dyn(context.token)])", "error during formatting"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			cond, err := CompileCondition(tt.expr + " == dyn('x')")
			if err != nil {
				t.Fatalf("compile condition: %v", err)
			}
			_, err = cond.Eval(plantedVars())
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "at column ") {
				t.Errorf("condition: err %v, want it to contain %q and a column", err, tt.want)
			}
			if err != nil {
				checkNoSecret(t, "condition", err.Error())
			}
			step := &Step{Name: "s", Run: []string{"echo {{ " + tt.expr + " }}"}, Env: map[string]string{"X": "{{ " + tt.expr + " }}"}}
			if _, err := step.Commands(plantedVars()); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run template: err %v, want it to contain %q", err, tt.want)
			} else {
				checkNoSecret(t, "run template", err.Error())
			}
			if _, err := step.Environment(plantedVars()); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("env template: err %v, want it to contain %q", err, tt.want)
			} else {
				checkNoSecret(t, "env template", err.Error())
			}
		})
	}
}

// TestConditionResultNotQuoted: a condition that gives a secret instead
// of a bool says the value's type, not the value.
func TestConditionResultNotQuoted(t *testing.T) {
	for _, expr := range []string{"dyn(env.TOKEN)", "dyn(context.token)", "dyn(context.m)", "dyn(context.list)", "dyn(int(env.PIN))"} {
		cond, err := CompileCondition(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		_, err = cond.Eval(plantedVars())
		if err == nil || !strings.Contains(err.Error(), "evaluated to a value of type") {
			t.Fatalf("%s: err %v", expr, err)
		}
		checkNoSecret(t, expr, err.Error())
	}
}

// TestWrittenKeyQuoted: a key written in the expression is the author's
// text and is still named, with its guard.
func TestWrittenKeyQuoted(t *testing.T) {
	cond, _ := CompileCondition("context['a-b'] == 'x'")
	_, err := cond.Eval(plantedVars())
	if err == nil || !strings.Contains(err.Error(), `no such key "a-b"`) {
		t.Fatalf("err %v", err)
	}
}

// TestUnknownEvalErrorNotQuoted: a CEL error the package does not know
// is replaced by a general message.
func TestUnknownEvalErrorNotQuoted(t *testing.T) {
	msg := evalMessage(errString("something new: "+plantedEnv), "x", 3)
	if !strings.Contains(msg, "evaluation failed") || !strings.Contains(msg, "column 4") {
		t.Fatalf("got %q", msg)
	}
	checkNoSecret(t, "unknown", msg)
}

type errString string

func (e errString) Error() string { return string(e) }
