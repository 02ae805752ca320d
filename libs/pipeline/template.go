package pipeline

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// MaxArgSize is the longest command, and the longest NAME=value variable,
// a step can be given: Linux refuses a single argument or environment
// entry of 128 KiB or more (MAX_ARG_STRLEN, counting its terminating NUL).
// Rendering a longer one is an error of the step, not of the runner.
const MaxArgSize = 128<<10 - 1

// MaxTemplates bounds the number of {{ }} templates in one pipeline file,
// so that compiling a hostile file stays cheap.
const MaxTemplates = 1000

// Quoting says how a template inserts the values of its expressions.
type Quoting int

const (
	// Raw inserts values as they are: for env values and cache keys,
	// which no shell parses.
	Raw Quoting = iota
	// Shell inserts each value so that sh reads it back as exactly its
	// text, whatever it contains: for run commands. See the package doc.
	Shell
)

// Template is a compiled string with {{ expr }} placeholders. A Template
// is immutable and safe for concurrent use.
type Template struct {
	source  string
	quoting Quoting
	parts   []templatePart
}

type templatePart struct {
	lit  string    // literal text, when expr is nil
	expr *compiled // the placeholder's expression
	raw  string    // the placeholder as written, {{ and }} included
	ctx  shellCtx  // Shell quoting: where in the shell syntax it stands
}

// String returns the template as written.
func (t *Template) String() string { return t.source }

// Quoting returns how the template inserts values.
func (t *Template) Quoting() Quoting { return t.quoting }

// Literal reports whether the template's text depends on no value: it
// has no placeholders, or only string literals such as {{ '{{' }}.
func (t *Template) Literal() bool {
	for _, p := range t.parts {
		if p.expr != nil {
			return false
		}
	}
	return true
}

// Render evaluates the template's expressions with v and returns the
// text. With Shell quoting every value is quoted for sh; with Raw it is
// inserted as it is. The error is a [*RenderError].
func (t *Template) Render(v Vars) (string, error) {
	var act *activation
	s, err := t.render(&act, v)
	if err != nil {
		err.Field = "template"
		return "", err
	}
	return s, nil
}

// CompileTemplate compiles a template outside a pipeline file, e.g. for a
// lint command. The error is [Errors] with positions within src and the
// file name "template".
func CompileTemplate(src string, q Quoting) (*Template, error) {
	t, issues, _ := compileTemplate(src, q, nil)
	if len(issues) > 0 {
		return nil, issuesError("template", src, issues)
	}
	return t, nil
}

// RenderError is a template that could not be rendered when its step was
// about to run: the expression failed to evaluate (a missing key, a type
// error, the cost limit) or gave a value a template cannot insert.
type RenderError struct {
	// Step is the name of the step, "" outside a pipeline.
	Step string
	// Field says where the template is: "run", "run command 2",
	// "env.TARGET" or "template".
	Field string
	// Template is the placeholder as written, {{ and }} included; empty
	// when the problem is the whole rendered text (too long).
	Template string
	// Msg says what went wrong.
	Msg string
}

// Error formats the problem as: step "NAME": FIELD: TEMPLATE: MSG.
func (e *RenderError) Error() string {
	var b strings.Builder
	if e.Step != "" {
		fmt.Fprintf(&b, "step %q: ", e.Step)
	}
	b.WriteString(e.Field)
	b.WriteString(": ")
	if e.Template != "" {
		b.WriteString(e.Template)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Commands returns the step's commands with their templates rendered,
// each ready for sh -e -c. v is what the step's condition sees (Env: the
// job's variables merged with the step's rendered env, as returned by
// Environment). All commands are rendered before any runs, so a template
// that fails fails the step before it starts; the error is a
// [*RenderError] naming the step and the template.
func (s *Step) Commands(v Vars) ([]string, error) {
	out := make([]string, len(s.Run))
	var act *activation
	for i, src := range s.Run {
		var t *Template
		if i < len(s.run) && s.run[i] != nil && s.run[i].source == src {
			t = s.run[i]
		} else if t = compileForRender(src, Shell); t == nil {
			return nil, s.compileError(s.runField(i), src, Shell)
		}
		cmd, err := t.render(&act, v)
		if err != nil {
			err.Step, err.Field = s.Name, s.runField(i)
			return nil, err
		}
		if len(cmd) > MaxArgSize {
			return nil, &RenderError{Step: s.Name, Field: s.runField(i), Msg: fmt.Sprintf("the command is %d bytes long once rendered, more than the %d bytes a command may have", len(cmd), MaxArgSize)}
		}
		out[i] = cmd
	}
	return out, nil
}

// runField names command i for messages.
func (s *Step) runField(i int) string {
	if len(s.Run) == 1 {
		return "run"
	}
	return fmt.Sprintf("run command %d", i+1)
}

// Environment returns the variables of the step's process: v.Env (the
// job's variables) overlaid with the step's env, whose templates are
// rendered with v (so they see the job's variables in env, not the
// step's own). Values are inserted raw: no shell parses them. The error
// is a [*RenderError] naming the step, the variable and the template.
func (s *Step) Environment(v Vars) (map[string]string, error) {
	out := make(map[string]string, len(v.Env)+len(s.Env))
	maps.Copy(out, v.Env)
	var act *activation
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		src := s.Env[k]
		t := s.env[k]
		if t == nil || t.source != src {
			if t = compileForRender(src, Raw); t == nil {
				return nil, s.compileError("env."+k, src, Raw)
			}
		}
		val, err := t.render(&act, v)
		if err != nil {
			err.Step, err.Field = s.Name, "env."+k
			return nil, err
		}
		if len(k)+1+len(val) > MaxArgSize {
			return nil, &RenderError{Step: s.Name, Field: "env." + k, Msg: fmt.Sprintf("the variable is %d bytes long once rendered, more than the %d bytes a variable may have", len(k)+1+len(val), MaxArgSize)}
		}
		out[k] = val
	}
	return out, nil
}

// compileForRender compiles a template of a Step that Parse did not make
// (or whose fields were changed since); nil when it does not compile.
func compileForRender(src string, q Quoting) *Template {
	t, issues, _ := compileTemplate(src, q, nil)
	if len(issues) > 0 {
		return nil
	}
	return t
}

func (s *Step) compileError(field, src string, q Quoting) *RenderError {
	_, issues, _ := compileTemplate(src, q, nil)
	msg := "does not compile"
	if len(issues) > 0 {
		msg = issues[0].msg
	}
	return &RenderError{Step: s.Name, Field: field, Msg: msg}
}

// render evaluates the template; *act is the activation for v, built on
// the first placeholder and shared by the caller's other templates.
func (t *Template) render(act **activation, v Vars) (string, *RenderError) {
	if len(t.parts) == 1 && t.parts[0].expr == nil {
		return t.parts[0].lit, nil
	}
	var b strings.Builder
	b.Grow(len(t.source) + 16)
	for _, p := range t.parts {
		if p.expr == nil {
			b.WriteString(p.lit)
			continue
		}
		if *act == nil {
			*act = newActivation(v)
		}
		val, err := (*act).eval(p.expr)
		if err != nil {
			return "", &RenderError{Template: p.raw, Msg: err.Error()}
		}
		s, msg := formatValue(val)
		if msg != "" {
			return "", &RenderError{Template: p.raw, Msg: msg}
		}
		if strings.IndexByte(s, 0) >= 0 {
			return "", &RenderError{Template: p.raw, Msg: "the value contains a NUL character, which no command or variable can hold"}
		}
		if t.quoting == Raw {
			b.WriteString(s)
			continue
		}
		switch p.ctx {
		case inSingle:
			writeSingleQuoted(&b, s)
		case inDouble:
			// Close the double quotes, insert the value single-quoted,
			// open them again: "a {{x}} b" renders as "a "'x'" b".
			b.WriteByte('"')
			b.WriteByte('\'')
			writeSingleQuoted(&b, s)
			b.WriteByte('\'')
			b.WriteByte('"')
		default:
			b.WriteByte('\'')
			writeSingleQuoted(&b, s)
			b.WriteByte('\'')
		}
	}
	return b.String(), nil
}

// ShellQuote returns s as one sh word that reads back as exactly s: s in
// single quotes, each single quote in it replaced by the four characters
//
//	'\''
//
// (close the quotes, an escaped quote, open them again). s must not
// contain NUL.
func ShellQuote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	writeSingleQuoted(&b, s)
	b.WriteByte('\'')
	return b.String()
}

// writeSingleQuoted writes s for the inside of sh single quotes.
func writeSingleQuoted(b *strings.Builder, s string) {
	for {
		i := strings.IndexByte(s, '\'')
		if i < 0 {
			b.WriteString(s)
			return
		}
		b.WriteString(s[:i])
		b.WriteString(`'\''`)
		s = s[i+1:]
	}
}

// formatValue turns an expression's value into the text a template
// inserts; msg is non-empty when the value cannot be inserted.
func formatValue(v ref.Val) (s string, msg string) {
	switch x := v.(type) {
	case types.String:
		return string(x), ""
	case types.Int:
		return strconv.FormatInt(int64(x), 10), ""
	case types.Uint:
		return strconv.FormatUint(uint64(x), 10), ""
	case types.Bool:
		return strconv.FormatBool(bool(x)), ""
	case types.Double:
		f := float64(x)
		if math.Abs(f) < 1e21 {
			return strconv.FormatFloat(f, 'f', -1, 64), ""
		}
		return strconv.FormatFloat(f, 'g', -1, 64), ""
	}
	return "", cannotInsert(v.Type().(ref.Type).TypeName())
}

// cannotInsert says why a value of a type cannot be inserted, and what to
// write instead.
func cannotInsert(typeName string) string {
	hint := ""
	switch {
	case strings.HasPrefix(typeName, "list"):
		hint = " (pick an element, or join the list: .join(','))"
	case strings.HasPrefix(typeName, "map"):
		hint = " (pick a field)"
	case strings.HasPrefix(typeName, "optional"):
		hint = " (add .orValue(''))"
	case typeName == "bytes", typeName == "google.protobuf.Timestamp", typeName == "google.protobuf.Duration",
		typeName == "timestamp", typeName == "duration":
		hint = " (convert it with string(...))"
	case typeName == "null_type":
		return "cannot insert null: a template inserts strings, numbers and bools"
	}
	return fmt.Sprintf("cannot insert a value of type %s: a template inserts strings, numbers and bools%s", typeName, hint)
}

// insertableKinds are the static result types a placeholder may have;
// dyn values are checked when rendered.
var insertableKinds = map[types.Kind]bool{
	types.StringKind: true, types.IntKind: true, types.UintKind: true, types.DoubleKind: true,
	types.BoolKind: true, types.DynKind: true, types.AnyKind: true,
}

// compileTemplate compiles src. It returns every problem, with character
// offsets in src, and the number of placeholders.
func compileTemplate(src string, q Quoting, cache exprCache) (*Template, []exprIssue, int) {
	if q == Shell {
		if i := strings.IndexByte(src, 0); i >= 0 {
			return nil, []exprIssue{{char: utf8.RuneCountInString(src[:i]), msg: "contains a NUL character"}}, 0
		}
	}
	raw, issues := splitTemplate(src)
	if len(issues) > 0 {
		return nil, issues, 0
	}
	t := &Template{source: src, quoting: q}
	count := 0
	var starts []int // character offsets of the placeholders left in t.parts
	for _, rp := range raw {
		if !rp.isExpr {
			t.parts = append(t.parts, templatePart{lit: rp.lit})
			continue
		}
		count++
		if strings.TrimSpace(rp.expr) == "" {
			issues = append(issues, exprIssue{char: rp.start, msg: "empty template " + strconv.Quote(rp.raw) + literalHint})
			continue
		}
		c := cache.compile(rp.expr)
		for _, is := range c.issues {
			msg := "template: " + is.msg
			if looksLikeGoTemplate(rp.expr) {
				msg += literalHint
			}
			issues = append(issues, exprIssue{char: rp.exprChar + is.char, msg: msg})
		}
		if len(c.issues) == 0 && !insertableKinds[c.outType.Kind()] {
			issues = append(issues, exprIssue{char: rp.exprChar + firstNonSpace(rp.expr), msg: cannotInsert(c.outType.String())})
		}
		if c.constant != nil {
			// A string literal is the author's own text, {{ '{{' }} above
			// all: inserted as written, and read by the shell lexer as such.
			if strings.IndexByte(*c.constant, 0) >= 0 {
				issues = append(issues, exprIssue{char: rp.start, msg: "contains a NUL character"})
			}
			t.parts = append(t.parts, templatePart{lit: *c.constant})
			continue
		}
		t.parts = append(t.parts, templatePart{expr: c, raw: rp.raw})
		starts = append(starts, rp.start)
	}
	if len(issues) == 0 {
		t.parts = mergeLiterals(t.parts)
	}
	if q == Shell && !t.Literal() && len(issues) == 0 {
		var flat strings.Builder
		for _, p := range t.parts {
			if p.expr == nil {
				flat.WriteString(p.lit)
			} else {
				flat.WriteByte(0)
			}
		}
		places := shellPlacements(flat.String(), len(starts))
		n := 0
		for i := range t.parts {
			if t.parts[i].expr == nil {
				continue
			}
			if pl := places[n]; pl.err != "" {
				issues = append(issues, exprIssue{char: starts[n], msg: pl.err})
			} else {
				t.parts[i].ctx = pl.ctx
			}
			n++
		}
	}
	if len(issues) > 0 {
		return nil, issues, count
	}
	return t, nil, count
}

// mergeLiterals joins adjacent literal parts; the result has at least
// one part.
func mergeLiterals(parts []templatePart) []templatePart {
	var out []templatePart
	for _, p := range parts {
		if n := len(out); n > 0 && p.expr == nil && out[n-1].expr == nil {
			out[n-1].lit += p.lit
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		out = []templatePart{{lit: ""}}
	}
	return out
}

const literalHint = ` (a literal "{{" is written {{ '{{' }})`

// looksLikeGoTemplate spots {{ .Field }} and {{- x -}}: Go templates
// (docker --format, helm) that need their braces written literally.
func looksLikeGoTemplate(expr string) bool {
	e := strings.TrimSpace(expr)
	return strings.HasPrefix(e, ".") || strings.HasPrefix(e, "-") || strings.HasSuffix(e, "-")
}

// rawPart is a piece of a template's source: literal text or a
// placeholder.
type rawPart struct {
	lit      string
	isExpr   bool
	expr     string // between {{ and }}
	raw      string // {{ ... }} as written
	start    int    // character offset of {{ in the source
	exprChar int    // character offset of the expression
}

// splitTemplate cuts src into literal text and {{ expr }} placeholders. A
// placeholder ends at the first }} that is outside the expression's
// string literals and braces, so {{ '}}' }} and {{ {'a': 1}['a'] }} work.
// A "}}" outside a placeholder is literal text.
func splitTemplate(src string) ([]rawPart, []exprIssue) {
	var parts []rawPart
	litStart, i := 0, 0
	for {
		j := strings.Index(src[i:], "{{")
		if j < 0 {
			break
		}
		open := i + j
		end, ok := scanExpr(src, open+2)
		if !ok {
			return nil, []exprIssue{{char: utf8.RuneCountInString(src[:open]), msg: `unclosed template: "{{" without a matching "}}"` + literalHint}}
		}
		if open > litStart {
			parts = append(parts, rawPart{lit: src[litStart:open]})
		}
		start := utf8.RuneCountInString(src[:open])
		parts = append(parts, rawPart{isExpr: true, expr: src[open+2 : end], raw: src[open : end+2], start: start, exprChar: start + 2})
		i = end + 2
		litStart = i
	}
	if litStart < len(src) || len(parts) == 0 {
		parts = append(parts, rawPart{lit: src[litStart:]})
	}
	return parts, nil
}

// scanExpr returns the index of the "}}" closing the expression that
// starts at i, skipping CEL string literals and balanced braces.
func scanExpr(src string, i int) (int, bool) {
	depth := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '}' && depth == 0 && i+1 < len(src) && src[i+1] == '}':
			return i, true
		case c == '{':
			depth++
		case c == '}':
			if depth > 0 {
				depth--
			}
		case c == '\'' || c == '"':
			end, ok := scanString(src, i)
			if !ok {
				return 0, false
			}
			i = end
			continue
		}
		i++
	}
	return 0, false
}

// scanString returns the index just past the CEL string literal whose
// opening quote is at i.
func scanString(src string, i int) (int, bool) {
	raw := isRawPrefix(src, i)
	q := src[i : i+1]
	if strings.HasPrefix(src[i:], q+q+q) {
		q = q + q + q
	}
	i += len(q)
	for i < len(src) {
		if !raw && src[i] == '\\' {
			i += 2
			continue
		}
		if strings.HasPrefix(src[i:], q) {
			return i + len(q), true
		}
		i++
	}
	return 0, false
}

// isRawPrefix reports whether the quote at i opens a raw string: r'...',
// R"...", rb'...', br'...'.
func isRawPrefix(s string, i int) bool {
	at := func(k int) byte {
		if k < 0 {
			return 0
		}
		return s[k]
	}
	isR := func(c byte) bool { return c == 'r' || c == 'R' }
	isB := func(c byte) bool { return c == 'b' || c == 'B' }
	start := -1
	switch {
	case isR(at(i-1)) && isB(at(i-2)): // br'...'
		start = i - 2
	case isR(at(i - 1)): // r'...'
		start = i - 1
	case isB(at(i-1)) && isR(at(i-2)): // rb'...'
		start = i - 2
	default:
		return false
	}
	return start == 0 || !isIdentByte(s[start-1])
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
