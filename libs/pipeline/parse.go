package pipeline

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxFileSize is the largest pipeline file Parse accepts, in bytes.
const MaxFileSize = 1 << 20

// The fields the parser knows; the JSON Schema (Schema) lists the same.
var (
	topFields  = []string{"$schema", "concurrency", "inputs", "steps"}
	stepFields = []string{"name", "id", "condition", "run", "env", "timeout", "continueOnError", "workingDirectory", "type",
		"key", "restoreKeys", "downloadPath", "fileNames", "expiry"}
)

// Options adjust validation to where the pipeline will run.
type Options struct {
	// MaxTimeout is the longest step timeout allowed, normally the run
	// timeout of the runner tier the pipeline runs on; a step whose
	// timeout is longer is an error. Zero means no limit.
	MaxTimeout time.Duration
	// Tier names the tier MaxTimeout comes from ("standard"), for the
	// error message; may be empty.
	Tier string
	// MaxSteps is the most steps a pipeline may have, normally the tier's
	// limit. Zero means DefaultMaxSteps.
	MaxSteps int
}

// DefaultMaxSteps bounds the steps of a pipeline parsed without a tier's
// limit (simpleci lint and exec).
const DefaultMaxSteps = 1000

// Parse parses, validates and compiles a pipeline file with the default
// Options (no timeout limit). A filename ending in .yaml or .yml is read as
// YAML, any other as JSON; filename is otherwise used only in error
// positions. On failure the error is [Errors], holding every problem
// found, in file order.
func Parse(filename string, data []byte) (*Pipeline, error) {
	return ParseWithOptions(filename, data, Options{})
}

// ParseWithOptions is Parse with options.
func ParseWithOptions(filename string, data []byte, opts Options) (*Pipeline, error) {
	p := &parser{file: filename, data: data, li: newLineIndex(data), opts: opts, yaml: IsYAML(filename), cache: exprCache{}}
	pl := p.parse()
	if len(p.errs) > 0 {
		return nil, p.errors()
	}
	return pl, nil
}

// IsYAML reports whether Parse reads filename as YAML (it ends in .yaml
// or .yml, in any case).
func IsYAML(filename string) bool {
	ext := strings.ToLower(path.Ext(strings.ReplaceAll(filename, "\\", "/")))
	return ext == ".yaml" || ext == ".yml"
}

type pendingError struct {
	off  int
	msg  string
	step int // index of the step the problem belongs to, or -1
}

type parser struct {
	file      string
	data      []byte
	li        *lineIndex
	opts      Options
	yaml      bool
	cache     exprCache
	errs      []pendingError
	names     []string
	cur       int // index of the step being validated, or -1
	templates int // placeholders compiled so far
}

func (p *parser) errorf(off int, format string, args ...any) {
	p.errs = append(p.errs, pendingError{off: off, msg: fmt.Sprintf(format, args...), step: p.cur})
}

func (p *parser) at(off int) string {
	pos := p.li.pos(off)
	return fmt.Sprintf("%d:%d", pos.Line, pos.Col)
}

// kind names a value's type in the words of the file's format.
func (p *parser) kind(n *node) string { return kindName(n.kind, p.yaml) }

// object is "an object" in JSON, "a mapping" in YAML.
func (p *parser) object() string { return kindName(kindObject, p.yaml) }

// errors builds the final Errors in file order.
func (p *parser) errors() Errors {
	sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].off < p.errs[j].off })
	out := make(Errors, 0, len(p.errs))
	for _, e := range p.errs {
		pos := p.li.pos(e.off)
		err := &Error{File: p.file, Line: pos.Line, Col: pos.Col, Index: e.step, Msg: e.msg}
		if e.step >= 0 && e.step < len(p.names) {
			err.Step = p.names[e.step]
		}
		out = append(out, err)
	}
	return out
}

func (p *parser) parse() *Pipeline {
	p.cur = -1
	if len(p.data) > MaxFileSize {
		p.errorf(0, "file is %d bytes, larger than the limit of %d", len(p.data), MaxFileSize)
		return nil
	}
	var root *node
	if p.yaml {
		var issues []yamlIssue
		root, issues = parseYAML(p.data, p.li)
		for _, is := range issues {
			p.errorf(is.off, "%s", is.msg)
		}
	} else {
		var jerr *jsonSyntaxError
		root, jerr = parseJSON(p.data)
		if jerr != nil {
			p.errorf(jerr.off, "%s", jerr.msg)
		}
	}
	if root == nil {
		return nil
	}
	if root.kind != kindObject {
		format := "a JSON object"
		if p.yaml {
			format = "a YAML mapping"
		}
		p.errorf(root.off, "the pipeline must be %s with \"steps\", not %s", format, p.kind(root))
		return nil
	}
	var steps, inputs, concurrency *node
	for _, m := range p.members(root, "field") {
		switch m.key {
		case "steps":
			steps = m.val
		case "inputs":
			inputs = m.val
		case "concurrency":
			concurrency = m.val
		case "schedule":
			// PIPELINE.md names it; schedules are the project's settings for now (ADR 29).
			p.errorf(m.keyOff, "\"schedule\" in the pipeline file is not supported yet: set the project's schedules (simpleci projects schedule add PROJECT --cron '0 3 * * 1-5'; docs/pipeline.md#schedules)")
		case "$schema":
			// The editor's schema reference; not part of the pipeline.
			if m.val.kind != kindString {
				p.wrongType("$schema", m.val, "a string (the schema's URL)")
			}
		default:
			p.unknownField(m, topFields, nil)
		}
	}
	if steps == nil {
		p.errorf(root.off, "missing \"steps\": a pipeline needs a list of steps")
		return nil
	}
	if steps.kind != kindArray {
		p.errorf(steps.off, "\"steps\" must be a list of steps, not %s", p.kind(steps))
		return nil
	}
	if len(steps.elems) == 0 {
		p.errorf(steps.off, "\"steps\" is empty: a pipeline needs at least one step")
		return nil
	}
	if limit := cmp.Or(p.opts.MaxSteps, DefaultMaxSteps); len(steps.elems) > limit {
		whose := "the"
		if p.opts.Tier != "" {
			whose = "the " + p.opts.Tier + " tier's"
		}
		p.errorf(steps.elems[limit].off, "%d steps exceed %s limit of %d steps per pipeline", len(steps.elems), whose, limit)
		return nil
	}
	p.names = make([]string, len(steps.elems))
	// Names first, so that every error inside a step can name it.
	for i, el := range steps.elems {
		if el.kind != kindObject {
			continue
		}
		if n := first(el, "name"); n != nil && n.kind == kindString && strings.TrimSpace(n.str) != "" {
			p.names[i] = n.str
		}
	}
	pl := &Pipeline{File: p.file}
	if inputs != nil {
		pl.Inputs = p.inputs(inputs)
	}
	if concurrency != nil {
		pl.Concurrency = p.concurrency(concurrency)
	}
	firstName := map[string]int{} // name -> offset of its first use
	for i, el := range steps.elems {
		p.cur = i
		if el.kind != kindObject {
			p.errorf(el.off, "a step must be %s with \"name\" and \"run\", not %s", p.object(), p.kind(el))
			continue
		}
		s := p.step(i, el)
		if n := first(el, "name"); n != nil && p.names[i] != "" {
			if at, dup := firstName[p.names[i]]; dup {
				p.errorf(n.off, "duplicate step name %q: the first step with this name is at %s", p.names[i], p.at(at))
			} else {
				firstName[p.names[i]] = n.off
			}
		}
		pl.Steps = append(pl.Steps, s)
	}
	p.assignIDs(steps.elems, pl.Steps)
	p.cur = -1
	if len(p.errs) > 0 {
		return nil
	}
	return pl
}

// members returns obj's members, reporting every duplicate key (what says
// what a key is: "field", "variable") and leaving the duplicates out.
func (p *parser) members(obj *node, what string) []member {
	seen := make(map[string]int, len(obj.members))
	out := make([]member, 0, len(obj.members))
	for _, m := range obj.members {
		if at, dup := seen[m.key]; dup {
			p.errorf(m.keyOff, "duplicate %s %q (first at %s)", what, m.key, p.at(at))
			continue
		}
		seen[m.key] = m.keyOff
		out = append(out, m)
	}
	return out
}

// first returns the value of obj's first member called key.
func first(obj *node, key string) *node {
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

func (p *parser) unknownField(m member, known []string, aliases map[string]string) {
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

func (p *parser) wrongType(field string, n *node, want string) {
	p.errorf(n.off, "%q must be %s, not %s", field, want, p.kind(n))
}

func (p *parser) step(i int, obj *node) *Step {
	s := &Step{Index: i, Name: p.names[i], Pos: p.li.pos(obj.off)}
	var sawName, sawRun bool
	var condition *node
	ms := p.members(obj, "field")
	if t := first(obj, "type"); t != nil && t.kind == kindString && (t.str == TypeCacheFiles || t.str == TypeStoreFiles) {
		s.Type = t.str
		p.files(s, ms, obj)
	}
	for _, m := range ms {
		v := m.val
		if s.Type != "" && (slices.Contains(filesFields, m.key) || m.key == "run" || m.key == "env" || m.key == "workingDirectory") {
			continue // p.files's
		}
		switch m.key {
		case "name":
			sawName = true
			switch {
			case v.kind != kindString:
				p.wrongType("name", v, "a string")
			case strings.TrimSpace(v.str) == "":
				p.errorf(v.off, "\"name\" is empty")
			case strings.ContainsAny(v.str, "\n\r"):
				p.errorf(v.off, "\"name\" must be a single line")
			}
		case "id":
			switch {
			case v.kind != kindString:
				p.wrongType("id", v, "a string")
			case !isIdentifier(v.str) || len(v.str) > 64:
				p.errorf(v.off, "\"id\" %q must be a letter or _ followed by letters, digits or _ (at most 64), so that steps.%s works in conditions", v.str, v.str)
			default:
				s.ID = v.str
			}
		case "condition":
			if v.kind != kindString {
				p.wrongType("condition", v, "a string (a CEL expression)")
			} else {
				condition = v
			}
		case "run":
			sawRun = true
			s.Run, s.run = p.run(v)
		case "env":
			s.Env, s.env = p.env(v)
		case "timeout":
			s.Timeout = p.timeout(v)
		case "continueOnError":
			if v.kind != kindBool {
				p.wrongType("continueOnError", v, "true or false")
			} else {
				s.ContinueOnError = v.boolean
			}
		case "workingDirectory":
			s.WorkingDirectory = p.relativeDir("workingDirectory", v)
		case "type":
			switch {
			case v.kind != kindString:
				p.wrongType("type", v, "a string")
			case v.str == TypeCacheFiles || v.str == TypeStoreFiles:
			default:
				p.errorf(v.off, "unknown step type %q (leave \"type\" out for a command step)", v.str)
			}
		case "key", "restoreKeys", "downloadPath", "fileNames", "expiry":
			p.errorf(m.keyOff, "%q belongs to cache-files and store-files steps (\"type\")", m.key)
		default:
			p.unknownField(m, stepFields, stepAliases)
		}
	}
	if !sawName {
		p.errorf(obj.off, "missing \"name\"")
	}
	if !sawRun && s.Type == "" {
		p.errorf(obj.off, "missing \"run\": a command or a list of commands")
	}
	if condition != nil {
		s.Condition = p.condition(condition)
	} else {
		s.Condition = &Condition{}
	}
	return s
}

func (p *parser) run(v *node) ([]string, []*Template) {
	switch v.kind {
	case kindString:
		switch {
		case strings.TrimSpace(v.str) == "":
			p.errorf(v.off, "\"run\" is empty")
			return nil, nil
		case strings.ContainsRune(v.str, 0):
			p.errorf(v.off, "\"run\" contains a NUL character")
			return nil, nil
		}
		return []string{v.str}, []*Template{p.template(v, "run", Shell)}
	case kindArray:
		if len(v.elems) == 0 {
			p.errorf(v.off, "\"run\" is an empty list: give at least one command")
			return nil, nil
		}
		cmds := make([]string, 0, len(v.elems))
		tmpls := make([]*Template, 0, len(v.elems))
		for i, el := range v.elems {
			switch {
			case el.kind != kindString:
				p.errorf(el.off, "\"run\" command %d must be a string, not %s", i+1, p.kind(el))
			case strings.TrimSpace(el.str) == "":
				p.errorf(el.off, "\"run\" command %d is empty", i+1)
			case strings.ContainsRune(el.str, 0):
				p.errorf(el.off, "\"run\" command %d contains a NUL character", i+1)
			default:
				cmds = append(cmds, el.str)
				tmpls = append(tmpls, p.template(el, fmt.Sprintf("run command %d", i+1), Shell))
			}
		}
		return cmds, tmpls
	}
	p.wrongType("run", v, "a command or a list of commands")
	return nil, nil
}

func (p *parser) env(v *node) (map[string]string, map[string]*Template) {
	if v.kind != kindObject {
		p.wrongType("env", v, p.object()+" of variable names to string values")
		return nil, nil
	}
	env := make(map[string]string, len(v.members))
	tmpls := make(map[string]*Template, len(v.members))
	for _, m := range p.members(v, "env variable") {
		switch {
		case !isIdentifier(m.key):
			p.errorf(m.keyOff, "env: %q is not a valid variable name (letters, digits and _, not starting with a digit)", m.key)
		case m.val.kind != kindString:
			p.errorf(m.val.off, "env: the value of %s must be a string, not %s (quote it)", m.key, p.kind(m.val))
		case strings.ContainsRune(m.val.str, 0):
			p.errorf(m.val.off, "env: the value of %s contains a NUL character", m.key)
		default:
			env[m.key] = m.val.str
			tmpls[m.key] = p.template(m.val, "env."+m.key, Raw)
		}
	}
	return env, tmpls
}

// template compiles the string n as a template, reporting its problems
// at their characters in the file.
func (p *parser) template(n *node, field string, q Quoting) *Template {
	if !strings.Contains(n.str, "{{") {
		return &Template{source: n.str, quoting: q, parts: []templatePart{{lit: n.str}}}
	}
	if p.templates > MaxTemplates {
		return nil
	}
	t, issues, count := compileTemplate(n.str, q, p.cache)
	p.templates += count
	if p.templates > MaxTemplates {
		p.errorf(n.off, "too many templates: a pipeline may have at most %d", MaxTemplates)
		return nil
	}
	if len(issues) > 0 {
		offs := p.stringOffsets(n)
		for _, is := range issues {
			p.errorf(offs[min(max(is.char, 0), len(offs)-1)], "%s: %s", field, is.msg)
		}
		return nil
	}
	return t
}

// stringOffsets maps each character of the string n to the byte offset
// where it is written, plus one for the end.
func (p *parser) stringOffsets(n *node) []int {
	if n.y != nil {
		return yamlStringOffsets(p.data, n.off, n.y)
	}
	if n.end > n.off && n.end <= len(p.data) {
		return stringRuneOffsets(p.data[n.off:n.end], n.off)
	}
	return []int{n.off}
}

func (p *parser) timeout(v *node) time.Duration {
	if v.kind != kindString {
		p.wrongType("timeout", v, `a duration string such as "90s" or "5m"`)
		return 0
	}
	d, err := time.ParseDuration(v.str)
	switch {
	case err != nil:
		p.errorf(v.off, "timeout: %q is not a duration such as \"90s\" or \"5m\"", v.str)
	case d <= 0:
		p.errorf(v.off, "timeout: %q must be greater than zero", v.str)
	case p.opts.MaxTimeout > 0 && d > p.opts.MaxTimeout:
		whose := "the"
		if p.opts.Tier != "" {
			whose = "the " + p.opts.Tier + " tier's"
		}
		p.errorf(v.off, "timeout %s exceeds %s limit of %s", v.str, whose, formatDuration(p.opts.MaxTimeout))
	}
	return d
}

// formatDuration writes whole seconds as "150s", anything else as
// time.Duration does.
func formatDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}

// relativeDir checks a directory relative to the checkout (workingDirectory,
// downloadPath) and returns it cleaned, "" for the checkout itself.
func (p *parser) relativeDir(field string, v *node) string {
	if v.kind != kindString {
		p.wrongType(field, v, "a string")
		return ""
	}
	dir := v.str
	switch {
	case strings.ContainsRune(dir, 0):
		p.errorf(v.off, "%s contains a NUL character", field)
		return ""
	case strings.HasPrefix(dir, "/"):
		p.errorf(v.off, "%s %q must be relative to the checkout", field, dir)
		return ""
	}
	clean := path.Clean("/" + dir)[1:] // rooted Clean cannot climb above "/"
	if c := path.Clean(dir); c == ".." || strings.HasPrefix(c, "../") {
		p.errorf(v.off, "%s %q escapes the checkout", field, dir)
		return ""
	}
	return clean
}

func (p *parser) condition(v *node) *Condition {
	c, issues := compileCondition(v.str, p.cache)
	if len(issues) == 0 {
		return c
	}
	offs := p.stringOffsets(v)
	for _, is := range issues {
		p.errorf(offs[min(max(is.char, 0), len(offs)-1)], "condition: %s", is.msg)
	}
	return &Condition{}
}

// assignIDs gives every step its id: the explicit one, else a slug of its
// name made unique. Explicit ids must be unique.
func (p *parser) assignIDs(objs []*node, steps []*Step) {
	used := map[string]bool{}
	firstID := map[string]int{}
	for _, s := range steps {
		if s.ID == "" {
			continue
		}
		p.cur = s.Index
		off := first(objs[s.Index], "id").off
		if at, dup := firstID[s.ID]; dup {
			p.errorf(off, "duplicate step id %q: the first step with this id is at %s", s.ID, p.at(at))
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
