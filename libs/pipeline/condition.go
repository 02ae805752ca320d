package pipeline

import (
	"fmt"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
)

// DefaultCostLimit bounds the work one evaluation of a condition may do,
// in CEL cost units (roughly one per operation, one per list element
// visited). Ordinary conditions cost under 100.
const DefaultCostLimit = 100_000

// maxConditionLength bounds a condition's size in characters.
const maxConditionLength = 10_000

// The status functions; a condition calling none of them is implicitly
// success() && (condition).
var statusFuncs = []string{"success", "failure", "always", "cancelled"}

// Vars are the values a condition sees.
type Vars struct {
	// Env is the env variable: the job's granted variables merged with the
	// step's env.
	Env map[string]string
	// Context is the context variable (event, branch, sha, ...). Values
	// must be of types CEL understands natively: string, bool, int*,
	// uint*, float*, []any, map[string]any and the like.
	Context map[string]any
	// Steps holds the earlier steps, by step id.
	Steps map[string]StepState
	// Run is the run's status so far.
	Run RunState
}

// StepState is what a condition sees of an earlier step under steps.<id>.
type StepState struct {
	// Status is one of StatusSucceeded, StatusFailed, StatusTimedOut,
	// StatusCancelled, StatusSkipped.
	Status string
	// ExitCode of the step's last command; -1 when it did not exit
	// normally or did not run.
	ExitCode int
}

// RunState is what a condition sees under run.
type RunState struct {
	// Status is StatusSucceeded while nothing has failed, StatusFailed
	// after a failure, StatusTimedOut after the job's time ran out and
	// StatusCancelled after a cancel. An empty Status counts as
	// StatusSucceeded.
	Status string
}

// Condition is a compiled step condition. The zero value and nil both mean
// success().
type Condition struct {
	source      string
	program     cel.Program
	callsStatus bool
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
	return c == nil || !c.callsStatus
}

// Eval evaluates the condition. It returns an error when the expression
// fails at run time (a missing map key, a type mismatch, the cost limit),
// or evaluates to something other than a bool. Eval is safe for
// concurrent use.
func (c *Condition) Eval(v Vars) (bool, error) {
	status := v.Run.Status
	if status == "" {
		status = StatusSucceeded
	}
	implicitOK := status == StatusSucceeded
	if c == nil || c.program == nil {
		return implicitOK, nil
	}
	if !c.callsStatus && !implicitOK {
		return false, nil
	}
	act, err := cel.FunctionVars(activation(v, status), statusBindings(status))
	if err != nil {
		return false, fmt.Errorf("condition: %w", err)
	}
	out, _, err := c.program.Eval(act)
	if err != nil {
		return false, fmt.Errorf("condition: %s", evalMessage(err))
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("condition: evaluated to %s %v, want a bool", out.Type().(ref.Type).TypeName(), out.Value())
	}
	return bool(b), nil
}

func activation(v Vars, status string) map[string]any {
	env := v.Env
	if env == nil {
		env = map[string]string{}
	}
	ctx := v.Context
	if ctx == nil {
		ctx = map[string]any{}
	}
	steps := make(map[string]any, len(v.Steps))
	for id, s := range v.Steps {
		steps[id] = map[string]any{"status": s.Status, "exit_code": int64(s.ExitCode)}
	}
	return map[string]any{
		"env":     env,
		"context": ctx,
		"steps":   steps,
		"run":     map[string]any{"status": status},
	}
}

func statusBindings(status string) map[string]cel.LateBoundFunction {
	constant := func(b bool) cel.LateBoundFunction {
		return func(string, ...ref.Val) ref.Val { return types.Bool(b) }
	}
	return map[string]cel.LateBoundFunction{
		"success":   constant(status == StatusSucceeded),
		"failure":   constant(status == StatusFailed),
		"cancelled": constant(status == StatusCancelled),
		"always":    constant(true),
	}
}

// evalMessage turns CEL's runtime errors into messages that say what to do.
func evalMessage(err error) string {
	msg := err.Error()
	if key, ok := strings.CutPrefix(msg, "no such key: "); ok {
		return fmt.Sprintf("no such key %q; a variable that may be unset needs a guard such as has(env.%s), '%s' in env or env.?%s.orValue('')", key, key, key, key)
	}
	if strings.Contains(msg, "cost limit exceeded") {
		return fmt.Sprintf("too expensive to evaluate (cost limit %d exceeded)", DefaultCostLimit)
	}
	return msg
}

var (
	celEnvOnce sync.Once
	celEnv     *cel.Env
	celEnvErr  error
)

func conditionEnv() (*cel.Env, error) {
	celEnvOnce.Do(func() {
		opts := []cel.EnvOption{
			cel.Variable("env", cel.MapType(cel.StringType, cel.StringType)),
			cel.Variable("context", cel.MapType(cel.StringType, cel.DynType)),
			cel.Variable("steps", cel.MapType(cel.StringType, cel.DynType)),
			cel.Variable("run", cel.MapType(cel.StringType, cel.DynType)),
			cel.OptionalTypes(),
			ext.Strings(),
			cel.ParserExpressionSizeLimit(maxConditionLength),
		}
		for _, name := range statusFuncs {
			opts = append(opts, cel.Function(name,
				cel.Overload(name+"_bool", nil, cel.BoolType, cel.LateFunctionBinding())))
		}
		celEnv, celEnvErr = cel.NewEnv(opts...)
	})
	return celEnv, celEnvErr
}

// conditionIssue is a compile problem at a character offset of the
// condition's source.
type conditionIssue struct {
	char int // 0-based character offset in the source
	msg  string
}

// compileCondition compiles src. On failure it returns every issue with
// its character offset in src.
func compileCondition(src string) (*Condition, []conditionIssue) {
	if strings.TrimSpace(src) == "" {
		return &Condition{source: src}, nil
	}
	env, err := conditionEnv()
	if err != nil {
		return nil, []conditionIssue{{msg: "internal error: " + err.Error()}}
	}
	checked, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		var out []conditionIssue
		for _, e := range iss.Errors() {
			out = append(out, conditionIssue{
				char: charOffset(src, e.Location.Line(), e.Location.Column()),
				msg:  strings.TrimSuffix(e.Message, " (in container '')"),
			})
		}
		if len(out) == 0 {
			out = append(out, conditionIssue{msg: iss.Err().Error()})
		}
		return nil, out
	}
	if t := checked.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, []conditionIssue{{char: firstNonSpace(src), msg: fmt.Sprintf("must be a bool expression, this one is of type %s", t)}}
	}
	prg, err := env.Program(checked, cel.CostLimit(DefaultCostLimit))
	if err != nil {
		return nil, []conditionIssue{{char: firstNonSpace(src), msg: err.Error()}}
	}
	return &Condition{source: src, program: prg, callsStatus: callsStatus(checked)}, nil
}

func callsStatus(a *cel.Ast) bool {
	nav := ast.NavigateAST(a.NativeRep())
	for _, name := range statusFuncs {
		if len(ast.MatchDescendants(nav, ast.FunctionMatcher(name))) > 0 {
			return true
		}
	}
	return false
}

// charOffset converts CEL's location (1-based line, 0-based column in
// characters) into a character offset in src.
func charOffset(src string, line, col int) int {
	if line < 1 {
		return 0
	}
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(src, '\n')
		if i < 0 {
			break
		}
		off += len([]rune(src[:i+1]))
		src = src[i+1:]
	}
	return off + max(col, 0)
}

func firstNonSpace(src string) int {
	for i, r := range []rune(src) {
		if r != ' ' && r != '\t' && r != '\n' && r != '\r' {
			return i
		}
	}
	return 0
}

// CompileCondition compiles a condition outside a pipeline file, e.g. for
// a lint command's --if flag. The error is [Errors] with positions within
// src and the file name "condition".
func CompileCondition(src string) (*Condition, error) {
	c, issues := compileCondition(src)
	if len(issues) == 0 {
		return c, nil
	}
	li := newLineIndex([]byte(src))
	var errs Errors
	for _, is := range issues {
		p := li.pos(len(string([]rune(src)[:min(is.char, len([]rune(src)))])))
		errs = append(errs, &Error{File: "condition", Line: p.Line, Col: p.Col, Index: -1, Msg: is.msg})
	}
	return nil, errs
}
