package pipeline

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxFileSize is the largest pipeline file Parse accepts, in bytes.
const MaxFileSize = 1 << 20

var (
	topFields  = []string{"steps"}
	stepFields = []string{"name", "id", "condition", "run", "env", "timeout", "continueOnError", "workingDirectory", "type"}
)

// Parse parses, validates and compiles a pipeline file. filename is used
// only in error positions. On failure the error is [Errors], holding every
// problem found, in file order.
func Parse(filename string, data []byte) (*Pipeline, error) {
	p := &parser{file: filename, data: data, li: newLineIndex(data)}
	pl := p.parse()
	if len(p.errs) > 0 {
		return nil, p.errors()
	}
	return pl, nil
}

type pendingError struct {
	off int
	msg string
}

type parser struct {
	file  string
	data  []byte
	li    *lineIndex
	errs  []pendingError
	steps []*jnode // for attributing errors to steps
	names []string
}

func (p *parser) errorf(off int, format string, args ...any) {
	p.errs = append(p.errs, pendingError{off: off, msg: fmt.Sprintf(format, args...)})
}

func (p *parser) at(off int) string {
	pos := p.li.pos(off)
	return fmt.Sprintf("%d:%d", pos.Line, pos.Col)
}

// errors builds the final Errors in file order, each attributed to the
// step whose object contains it.
func (p *parser) errors() Errors {
	sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].off < p.errs[j].off })
	out := make(Errors, 0, len(p.errs))
	for _, e := range p.errs {
		pos := p.li.pos(e.off)
		err := &Error{File: p.file, Line: pos.Line, Col: pos.Col, Index: -1, Msg: e.msg}
		for i, s := range p.steps {
			if e.off >= s.off && e.off < s.end {
				err.Index, err.Step = i, p.names[i]
				break
			}
		}
		out = append(out, err)
	}
	return out
}

func (p *parser) parse() *Pipeline {
	if len(p.data) > MaxFileSize {
		p.errorf(0, "file is %d bytes, larger than the limit of %d", len(p.data), MaxFileSize)
		return nil
	}
	root, jerrs := parseJSON(p.data)
	for _, e := range jerrs {
		if e.first >= 0 {
			p.errorf(e.off, "%s (first at %s)", e.msg, p.at(e.first))
		} else {
			p.errorf(e.off, "%s", e.msg)
		}
	}
	if root == nil {
		return nil
	}
	if root.kind != jsonObject {
		p.errorf(root.off, "the pipeline must be a JSON object with \"steps\", not %s", root.kind)
		return nil
	}
	var steps *jnode
	for _, m := range root.members {
		switch m.key {
		case "steps":
			steps = m.val
		default:
			p.unknownField(m, topFields, nil)
		}
	}
	if steps == nil {
		p.errorf(root.off, "missing \"steps\": a pipeline needs a list of steps")
		return nil
	}
	if steps.kind != jsonArray {
		p.errorf(steps.off, "\"steps\" must be a list of steps, not %s", steps.kind)
		return nil
	}
	if len(steps.elems) == 0 {
		p.errorf(steps.off, "\"steps\" is empty: a pipeline needs at least one step")
		return nil
	}
	p.steps = steps.elems
	p.names = make([]string, len(steps.elems))
	// Names first, so that every error inside a step can name it.
	for i, el := range steps.elems {
		if el.kind != jsonObject {
			continue
		}
		if n := member(el, "name"); n != nil && n.kind == jsonString && strings.TrimSpace(n.str) != "" {
			p.names[i] = n.str
		}
	}
	pl := &Pipeline{File: p.file}
	firstName := map[string]int{} // name -> offset of its first use
	for i, el := range steps.elems {
		if el.kind != jsonObject {
			p.errorf(el.off, "a step must be an object with \"name\" and \"run\", not %s", el.kind)
			continue
		}
		s := p.step(i, el)
		if n := member(el, "name"); n != nil && p.names[i] != "" {
			if first, dup := firstName[p.names[i]]; dup {
				p.errorf(n.off, "duplicate step name %q: the first step with this name is at %s", p.names[i], p.at(first))
			} else {
				firstName[p.names[i]] = n.off
			}
		}
		pl.Steps = append(pl.Steps, s)
	}
	p.assignIDs(steps.elems, pl.Steps)
	if len(p.errs) > 0 {
		return nil
	}
	return pl
}

func member(obj *jnode, key string) *jnode {
	for _, m := range obj.members {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

// stepAliases maps step field names from other CI systems to ours.
var stepAliases = map[string]string{
	"if": "condition", "when": "condition", "script": "run", "command": "run", "commands": "run",
	"continue-on-error": "continueOnError", "working-directory": "workingDirectory",
	"timeout-minutes": "timeout", "variables": "env", "environment": "env",
}

func (p *parser) unknownField(m jmember, known []string, aliases map[string]string) {
	if a, ok := aliases[m.key]; ok {
		p.errorf(m.keyOff, "unknown field %q, did you mean %q?", m.key, a)
		return
	}
	if s := suggest(m.key, known); s != "" {
		p.errorf(m.keyOff, "unknown field %q, did you mean %q?", m.key, s)
		return
	}
	p.errorf(m.keyOff, "unknown field %q (known: %s)", m.key, strings.Join(known, ", "))
}

func (p *parser) wrongType(field string, n *jnode, want string) {
	p.errorf(n.off, "%q must be %s, not %s", field, want, n.kind)
}

func (p *parser) step(i int, obj *jnode) *Step {
	s := &Step{Index: i, Name: p.names[i], Pos: p.li.pos(obj.off)}
	var sawName, sawRun bool
	var condition *jnode
	for _, m := range obj.members {
		v := m.val
		switch m.key {
		case "name":
			sawName = true
			switch {
			case v.kind != jsonString:
				p.wrongType("name", v, "a string")
			case strings.TrimSpace(v.str) == "":
				p.errorf(v.off, "\"name\" is empty")
			case strings.ContainsAny(v.str, "\n\r"):
				p.errorf(v.off, "\"name\" must be a single line")
			}
		case "id":
			switch {
			case v.kind != jsonString:
				p.wrongType("id", v, "a string")
			case !isIdentifier(v.str) || len(v.str) > 64:
				p.errorf(v.off, "\"id\" %q must be a letter or _ followed by letters, digits or _ (at most 64), so that steps.%s works in conditions", v.str, v.str)
			default:
				s.ID = v.str
			}
		case "condition":
			if v.kind != jsonString {
				p.wrongType("condition", v, "a string (a CEL expression)")
			} else {
				condition = v
			}
		case "run":
			sawRun = true
			s.Run = p.run(v)
		case "env":
			s.Env = p.env(v)
		case "timeout":
			s.Timeout = p.timeout(v)
		case "continueOnError":
			if v.kind != jsonBool {
				p.wrongType("continueOnError", v, "true or false")
			} else {
				s.ContinueOnError = v.boolean
			}
		case "workingDirectory":
			s.WorkingDirectory = p.workingDirectory(v)
		case "type":
			switch {
			case v.kind != jsonString:
				p.wrongType("type", v, "a string")
			case v.str == "cache-files" || v.str == "store-files":
				p.errorf(v.off, "step type %q is not supported yet", v.str)
			default:
				p.errorf(v.off, "unknown step type %q (leave \"type\" out for a command step)", v.str)
			}
		default:
			p.unknownField(m, stepFields, stepAliases)
		}
	}
	if !sawName {
		p.errorf(obj.off, "missing \"name\"")
	}
	if !sawRun {
		p.errorf(obj.off, "missing \"run\": a command or a list of commands")
	}
	if condition != nil {
		s.Condition = p.condition(condition)
	} else {
		s.Condition = &Condition{}
	}
	return s
}

func (p *parser) run(v *jnode) []string {
	switch v.kind {
	case jsonString:
		if strings.TrimSpace(v.str) == "" {
			p.errorf(v.off, "\"run\" is empty")
			return nil
		}
		return []string{v.str}
	case jsonArray:
		if len(v.elems) == 0 {
			p.errorf(v.off, "\"run\" is an empty list: give at least one command")
			return nil
		}
		cmds := make([]string, 0, len(v.elems))
		for i, el := range v.elems {
			switch {
			case el.kind != jsonString:
				p.errorf(el.off, "\"run\" command %d must be a string, not %s", i+1, el.kind)
			case strings.TrimSpace(el.str) == "":
				p.errorf(el.off, "\"run\" command %d is empty", i+1)
			case strings.ContainsRune(el.str, 0):
				p.errorf(el.off, "\"run\" command %d contains a NUL character", i+1)
			default:
				cmds = append(cmds, el.str)
			}
		}
		return cmds
	}
	p.wrongType("run", v, "a command or a list of commands")
	return nil
}

func (p *parser) env(v *jnode) map[string]string {
	if v.kind != jsonObject {
		p.wrongType("env", v, "an object of variable names to string values")
		return nil
	}
	env := make(map[string]string, len(v.members))
	for _, m := range v.members {
		switch {
		case !isIdentifier(m.key):
			p.errorf(m.keyOff, "env: %q is not a valid variable name (letters, digits and _, not starting with a digit)", m.key)
		case m.val.kind != jsonString:
			p.errorf(m.val.off, "env: the value of %s must be a string, not %s (quote it)", m.key, m.val.kind)
		case strings.ContainsRune(m.val.str, 0):
			p.errorf(m.val.off, "env: the value of %s contains a NUL character", m.key)
		default:
			env[m.key] = m.val.str
		}
	}
	return env
}

func (p *parser) timeout(v *jnode) time.Duration {
	if v.kind != jsonString {
		p.wrongType("timeout", v, `a duration string such as "90s" or "5m"`)
		return 0
	}
	d, err := time.ParseDuration(v.str)
	switch {
	case err != nil:
		p.errorf(v.off, "timeout: %q is not a duration such as \"90s\" or \"5m\"", v.str)
	case d <= 0:
		p.errorf(v.off, "timeout: %q must be greater than zero", v.str)
	}
	return d
}

func (p *parser) workingDirectory(v *jnode) string {
	if v.kind != jsonString {
		p.wrongType("workingDirectory", v, "a string")
		return ""
	}
	dir := v.str
	switch {
	case strings.ContainsRune(dir, 0):
		p.errorf(v.off, "workingDirectory contains a NUL character")
		return ""
	case strings.HasPrefix(dir, "/"):
		p.errorf(v.off, "workingDirectory %q must be relative to the checkout", dir)
		return ""
	}
	clean := path.Clean("/" + dir)[1:] // rooted Clean cannot climb above "/"
	if c := path.Clean(dir); c == ".." || strings.HasPrefix(c, "../") {
		p.errorf(v.off, "workingDirectory %q escapes the checkout", dir)
		return ""
	}
	return clean
}

func (p *parser) condition(v *jnode) *Condition {
	c, issues := compileCondition(v.str)
	if len(issues) == 0 {
		return c
	}
	offs := stringRuneOffsets(p.data[v.off:v.end], v.off)
	for _, is := range issues {
		p.errorf(offs[min(max(is.char, 0), len(offs)-1)], "condition: %s", is.msg)
	}
	return &Condition{}
}

// assignIDs gives every step its id: the explicit one, else a slug of its
// name made unique. Explicit ids must be unique.
func (p *parser) assignIDs(objs []*jnode, steps []*Step) {
	used := map[string]bool{}
	firstID := map[string]int{}
	for _, s := range steps {
		if s.ID == "" {
			continue
		}
		obj := objs[s.Index]
		off := member(obj, "id").off
		if first, dup := firstID[s.ID]; dup {
			p.errorf(off, "duplicate step id %q: the first step with this id is at %s", s.ID, p.at(first))
			continue
		}
		firstID[s.ID] = off
		used[s.ID] = true
	}
	for _, s := range steps {
		if s.ID != "" {
			continue
		}
		base := slug(s.Name, s.Index)
		id := base
		for n := 2; used[id]; n++ {
			id = fmt.Sprintf("%s_%d", base, n)
		}
		used[id] = true
		s.ID = id
	}
}

// slug makes a step id from a name: "Run unit tests" -> "run_unit_tests".
func slug(name string, index int) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(r)
		} else {
			under = true
		}
		if b.Len() >= 48 {
			break
		}
	}
	s := b.String()
	switch {
	case s == "":
		return fmt.Sprintf("step_%d", index+1)
	case s[0] >= '0' && s[0] <= '9':
		return "step_" + s
	}
	return s
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// suggest returns the known name closest to s when it is a likely typo.
func suggest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if strings.EqualFold(s, k) {
			return k
		}
		if d := editDistance(strings.ToLower(s), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if utf8.RuneCountInString(a) > 64 || utf8.RuneCountInString(b) > 64 {
		return 1 << 30
	}
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
