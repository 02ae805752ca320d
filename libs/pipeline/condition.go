package pipeline

import (
	"fmt"
	"strings"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// Condition is a compiled step condition. The zero value and nil both mean
// success().
type Condition struct {
	source string
	expr   *compiled
}

// String returns the condition as written in the file.
func (c *Condition) String() string {
	if c == nil {
		return ""
	}
	return c.source
}

// Implicit reports whether the condition is implicitly success() && (...):
// it is empty or calls none of success(), failure(), always(), cancelled().
func (c *Condition) Implicit() bool {
	return c == nil || c.expr == nil || !c.expr.callsStatus
}

// Eval evaluates the condition. It returns an error when the expression
// fails at run time (a missing map key, a type mismatch, the cost limit),
// or evaluates to something other than a bool. Eval is safe for
// concurrent use.
func (c *Condition) Eval(v Vars) (bool, error) {
	status := v.Run.Status
	implicitOK := status == "" || status == StatusSucceeded
	if c == nil || c.expr == nil {
		return implicitOK, nil
	}
	if !c.expr.callsStatus && !implicitOK {
		return false, nil
	}
	out, err := newActivation(v).eval(c.expr)
	if err != nil {
		return false, fmt.Errorf("condition: %w", err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		// The value is not quoted: it may be a secret.
		return false, fmt.Errorf("condition: evaluated to a value of type %s, want a bool", out.Type().(ref.Type).TypeName())
	}
	return bool(b), nil
}

// compileCondition compiles src. On failure it returns every issue with
// its character offset in src.
func compileCondition(src string, cache exprCache) (*Condition, []exprIssue) {
	if strings.TrimSpace(src) == "" {
		return &Condition{source: src}, nil
	}
	c := cache.compile(src)
	if len(c.issues) > 0 {
		return nil, c.issues
	}
	if t := c.outType; !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, []exprIssue{{char: firstNonSpace(src), msg: fmt.Sprintf("must be a bool expression, this one is of type %s", t)}}
	}
	return &Condition{source: src, expr: c}, nil
}

// CompileCondition compiles a condition outside a pipeline file, e.g. for
// a lint command's --if flag. The error is [Errors] with positions within
// src and the file name "condition".
func CompileCondition(src string) (*Condition, error) {
	c, issues := compileCondition(src, nil)
	if len(issues) == 0 {
		return c, nil
	}
	return nil, issuesError("condition", src, issues)
}

// issuesError positions issues (character offsets in src) within src
// itself, for the Compile* functions.
func issuesError(file, src string, issues []exprIssue) Errors {
	li := newLineIndex([]byte(src))
	runes := []rune(src)
	var errs Errors
	for _, is := range issues {
		p := li.pos(len(string(runes[:min(max(is.char, 0), len(runes))])))
		errs = append(errs, &Error{File: file, Line: p.Line, Col: p.Col, Index: -1, Msg: is.msg})
	}
	return errs
}
