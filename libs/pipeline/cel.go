package pipeline

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/functions"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// DefaultCostLimit bounds the work one evaluation of a condition or a
// template may do, in CEL cost units (roughly one per operation, one per
// list element visited). Ordinary expressions cost under 100.
const DefaultCostLimit = 100_000

// maxExpressionLength bounds a condition's or a template's expression size
// in characters.
const maxExpressionLength = 10_000

// The status functions; a condition calling none of them is implicitly
// success() && (condition).
var statusFuncs = []string{"success", "failure", "always", "cancelled"}

// Vars are the values conditions and templates see.
type Vars struct {
	// Env is the env variable. For a step's condition and its run
	// templates it is the job's granted variables merged with the step's
	// rendered env (see Step.Environment); for the templates in the
	// step's env it is the job's variables alone.
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

var (
	celEnvOnce sync.Once
	celEnv     *cel.Env
	celEnvErr  error
)

// exprEnv is the CEL environment of conditions and templates.
func exprEnv() (*cel.Env, error) {
	celEnvOnce.Do(func() {
		opts := []cel.EnvOption{
			cel.Variable("env", cel.MapType(cel.StringType, cel.StringType)),
			cel.Variable("context", cel.MapType(cel.StringType, cel.DynType)),
			cel.Variable("steps", cel.MapType(cel.StringType, cel.DynType)),
			cel.Variable("run", cel.MapType(cel.StringType, cel.DynType)),
			cel.OptionalTypes(),
			ext.Strings(),
			cel.ParserExpressionSizeLimit(maxExpressionLength),
		}
		for _, name := range statusFuncs {
			opts = append(opts, cel.Function(name,
				cel.Overload(name+"_bool", nil, cel.BoolType, cel.LateFunctionBinding())))
		}
		celEnv, celEnvErr = cel.NewEnv(opts...)
	})
	return celEnv, celEnvErr
}

// exprIssue is a compile problem at a character offset of an expression.
type exprIssue struct {
	char int // 0-based character offset in the expression
	msg  string
}

// compiled is a CEL expression compiled against the pipeline's variables,
// or the problems that kept it from compiling.
type compiled struct {
	source      string
	program     cel.Program
	outType     *cel.Type
	callsStatus bool
	constant    *string         // the value, when the expression is a string literal
	info        *ast.SourceInfo // positions of the expression's nodes, for errors
	issues      []exprIssue
}

// exprCache shares compiled expressions within one parse: the same
// expression written twice ({{ context.sha }} in several commands) is
// compiled once. Programs are immutable and safe for concurrent use.
type exprCache map[string]*compiled

func (c exprCache) compile(src string) *compiled {
	if r, ok := c[src]; ok {
		return r
	}
	r := compileExpr(src)
	if c != nil {
		c[src] = r
	}
	return r
}

func compileExpr(src string) *compiled {
	env, err := exprEnv()
	if err != nil {
		return &compiled{issues: []exprIssue{{msg: "internal error: " + err.Error()}}}
	}
	checked, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		var out []exprIssue
		for _, e := range iss.Errors() {
			out = append(out, exprIssue{
				char: charOffset(src, e.Location.Line(), e.Location.Column()),
				msg:  strings.TrimSuffix(e.Message, " (in container '')"),
			})
		}
		if len(out) == 0 {
			out = append(out, exprIssue{msg: iss.Err().Error()})
		}
		return &compiled{issues: out}
	}
	prg, err := env.Program(checked, cel.CostLimit(DefaultCostLimit))
	if err != nil {
		return &compiled{issues: []exprIssue{{char: firstNonSpace(src), msg: err.Error()}}}
	}
	c := &compiled{source: src, program: prg, outType: checked.OutputType(), callsStatus: callsStatus(checked), info: checked.NativeRep().SourceInfo()}
	if e := checked.NativeRep().Expr(); e.Kind() == ast.LiteralKind {
		if str, ok := e.AsLiteral().(types.String); ok {
			v := string(str)
			c.constant = &v
		}
	}
	return c
}

// errorColumn is the 0-based column, in characters on its line, of the
// part of the expression that failed with err; -1 when CEL does not say.
func (c *compiled) errorColumn(err error) int {
	var n interface{ NodeID() int64 }
	if !errors.As(err, &n) || c.info == nil || n.NodeID() <= 0 {
		return -1
	}
	loc := c.info.GetStartLocation(n.NodeID())
	if loc.Line() < 1 {
		return -1
	}
	return loc.Column()
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

// evalMessage turns a CEL runtime error into a message that says what
// failed and why, in general terms, and what to do. It never quotes the
// error's own text where that text may hold a value the expression
// computed (CEL writes the string that failed to parse as a timestamp,
// the regular expression that did not compile, the missing key, the
// index out of bounds): a value may be a secret, and the message ends up
// in a run's reason, its events and the API. Only the expression's own
// text (src) is quoted, and the column at which it failed. Messages CEL
// may add in a later version fall under a general one.
func evalMessage(err error, src string, at int) string {
	msg := err.Error()
	where := ""
	if at >= 0 {
		where = fmt.Sprintf(" (at column %d of the expression)", at+1)
	}
	switch {
	case strings.HasPrefix(msg, "no such key: "):
		return noSuchKey(strings.TrimPrefix(msg, "no such key: "), src) + where
	case strings.Contains(msg, "cost limit exceeded"):
		return fmt.Sprintf("too expensive to evaluate (cost limit %d exceeded)", DefaultCostLimit)
	case safeEvalMessages[msg]:
		return msg + where
	case conversionError.MatchString(msg):
		return msg + ": the value is not in that type's format" + where
	case strings.HasPrefix(msg, "invalid RFC 3339 timestamp"), strings.HasPrefix(msg, "invalid duration"):
		return "type conversion error: the value is not in that type's format" + where
	case strings.HasPrefix(msg, "error parsing regexp"):
		return "the regular expression does not compile" + where
	case strings.HasPrefix(msg, "index out of bounds"), strings.HasPrefix(msg, "index out of range"):
		return "index out of range" + where
	case strings.HasPrefix(msg, "no such overload"):
		return "no such overload: no function or operator takes arguments of these types (a type mismatch)" + where
	case strings.HasPrefix(msg, "no such attribute"), strings.HasPrefix(msg, "no such field"):
		return "no such field" + where
	case strings.HasPrefix(msg, "error during formatting"):
		return "error during formatting: an argument does not fit its clause" + where
	}
	return "evaluation failed (the details are not shown: they may quote a value)" + where
}

// safeEvalMessages are CEL runtime errors whose text is fixed: they quote
// nothing.
var safeEvalMessages = map[string]bool{
	"division by zero":          true,
	"modulus by zero":           true,
	"integer overflow":          true,
	"unsigned integer overflow": true,
	"invalid UTF-8 in bytes, cannot convert to string": true,
	"duration overflow":  true,
	"timestamp overflow": true,
}

// conversionError is CEL's "type conversion error from 'string' to
// 'int'": type names only.
var conversionError = regexp.MustCompile(`^type conversion error from '[A-Za-z0-9_.]+' to '[A-Za-z0-9_.]+'$`)

// noSuchKey says which key was missing, and how to guard it, when the key
// is written in the expression (env.NAME, context['a-b']); a key the
// expression computed (env[context.x]) is not quoted: it is a value.
func noSuchKey(key, src string) string {
	written := isIdentifier(key) && regexp.MustCompile(`\.`+key+`\b`).MatchString(src) ||
		strings.Contains(src, "'"+key+"'") || strings.Contains(src, `"`+key+`"`)
	if !written {
		return "no such key: the key is computed by the expression (its value is not shown); guard it with 'in' or .?key.orValue('')"
	}
	path := "env"
	if isIdentifier(key) {
		if m := regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\.` + key + `\b`).FindStringSubmatch(src); m != nil {
			path = m[1]
		}
	}
	what := "a key that may be missing"
	if path == "env" {
		what = "a variable that may be unset"
	}
	if !isIdentifier(key) {
		return fmt.Sprintf("no such key %q; %s needs a guard such as '%s' in %s or %s[?'%s'].orValue('')", key, what, key, path, path, key)
	}
	return fmt.Sprintf("no such key %q; %s needs a guard such as has(%s.%s), '%s' in %s or %s.?%s.orValue('')", key, what, path, key, key, path, path, key)
}

// activation supplies the variables and the status functions to one
// evaluation. It is built once per Eval, Commands or Environment call and
// converts nothing up front: env and context are handed to CEL as they
// are, a step's state is converted only when an expression reads it.
type activation struct {
	env    map[string]string
	ctx    map[string]any
	steps  map[string]StepState
	status string
}

var (
	emptyEnv     = map[string]string{}
	emptyContext = map[string]any{}
	runValues    = map[string]map[string]any{}
	trueOp       = functions.LateBoundOp(func(string, ...ref.Val) ref.Val { return types.True })
	falseOp      = functions.LateBoundOp(func(string, ...ref.Val) ref.Val { return types.False })
)

func init() {
	for _, s := range []string{StatusSucceeded, StatusFailed, StatusTimedOut, StatusCancelled} {
		runValues[s] = map[string]any{"status": s}
	}
}

func newActivation(v Vars) *activation {
	a := &activation{env: v.Env, ctx: v.Context, steps: v.Steps, status: v.Run.Status}
	if a.env == nil {
		a.env = emptyEnv
	}
	if a.ctx == nil {
		a.ctx = emptyContext
	}
	if a.status == "" {
		a.status = StatusSucceeded
	}
	return a
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "env":
		return a.env, true
	case "context":
		return a.ctx, true
	case "run":
		if r, ok := runValues[a.status]; ok {
			return r, true
		}
		return map[string]any{"status": a.status}, true
	case "steps":
		return &stepsValue{m: a.steps}, true
	}
	return nil, false
}

// stepsValue is the steps variable: a CEL map that converts a step's state
// only when an expression reads it (steps.build.status converts one step,
// not all of them). Rare operations (iteration, equality, conversion) work
// on a full conversion.
type stepsValue struct {
	m    map[string]StepState
	full traits.Mapper
}

var _ traits.Mapper = (*stepsValue)(nil)

func stepValue(s StepState) ref.Val {
	return types.NewStringInterfaceMap(types.DefaultTypeAdapter, map[string]any{"status": s.Status, "exit_code": int64(s.ExitCode)})
}

func (s *stepsValue) mapper() traits.Mapper {
	if s.full == nil {
		conv := make(map[string]any, len(s.m))
		for id, st := range s.m {
			conv[id] = map[string]any{"status": st.Status, "exit_code": int64(st.ExitCode)}
		}
		s.full = types.NewStringInterfaceMap(types.DefaultTypeAdapter, conv)
	}
	return s.full
}

// Find implements traits.Mapper.
func (s *stepsValue) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return s.mapper().Find(key)
	}
	st, ok := s.m[string(k)]
	if !ok {
		return nil, false
	}
	return stepValue(st), true
}

// Get implements traits.Indexer.
func (s *stepsValue) Get(key ref.Val) ref.Val {
	v, found := s.Find(key)
	if !found {
		return types.ValOrErr(v, "no such key: %v", key)
	}
	return v
}

// Contains implements traits.Container.
func (s *stepsValue) Contains(key ref.Val) ref.Val {
	v, found := s.Find(key)
	if !found && v != nil && types.IsUnknownOrError(v) {
		return v
	}
	return types.Bool(found)
}

// Size implements traits.Sizer.
func (s *stepsValue) Size() ref.Val { return types.Int(len(s.m)) }

// Iterator implements traits.Iterable.
func (s *stepsValue) Iterator() traits.Iterator { return s.mapper().Iterator() }

// ConvertToNative implements ref.Val.
func (s *stepsValue) ConvertToNative(t reflect.Type) (any, error) {
	return s.mapper().ConvertToNative(t)
}

// ConvertToType implements ref.Val.
func (s *stepsValue) ConvertToType(t ref.Type) ref.Val { return s.mapper().ConvertToType(t) }

// Equal implements ref.Val.
func (s *stepsValue) Equal(other ref.Val) ref.Val { return s.mapper().Equal(other) }

// Type implements ref.Val.
func (s *stepsValue) Type() ref.Type { return types.MapType }

// Value implements ref.Val.
func (s *stepsValue) Value() any { return s.mapper().Value() }

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

// ResolveFunction implements interpreter.FunctionActivation: the status
// functions.
func (a *activation) ResolveFunction(name string) (functions.LateBoundOp, bool) {
	var b bool
	switch name {
	case "success":
		b = a.status == StatusSucceeded
	case "failure":
		b = a.status == StatusFailed
	case "cancelled":
		b = a.status == StatusCancelled
	case "always":
		b = true
	default:
		return nil, false
	}
	if b {
		return trueOp, true
	}
	return falseOp, true
}

func (a *activation) eval(c *compiled) (ref.Val, error) {
	out, _, err := c.program.Eval(a)
	if err != nil {
		return nil, errors.New(evalMessage(err, c.source, c.errorColumn(err)))
	}
	return out, nil
}
