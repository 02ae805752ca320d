package pipeline

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Input types (the "type" of an entry of "inputs").
const (
	InputString = "string"
	InputBool   = "bool"
	InputNumber = "number"
)

// inputFields are the fields of an entry of "inputs"; the JSON Schema lists the same.
var inputFields = []string{"type", "default", "enum", "required", "description"}

// MaxInputs bounds the inputs a pipeline declares, and MaxInputValue an input's value in
// bytes (a value is recorded with the run).
const (
	MaxInputs     = 32
	MaxInputValue = 1 << 10
)

// Input is one entry of "inputs": a typed parameter of a manual trigger, seen by
// conditions and templates as context.inputs.<name>.
type Input struct {
	// Name is the key in "inputs": an identifier (letters, digits, _).
	Name string
	// Type is InputString (the default), InputBool or InputNumber.
	Type string
	// Default is the value when the trigger gives none, as text ("" with HasDefault
	// false: no default).
	Default    string
	HasDefault bool
	// Enum, when not empty, lists the allowed values, as text.
	Enum []string
	// Required inputs must be given by a manual trigger when they have no default.
	Required    bool
	Description string
}

// inputs reads "inputs": an object of input names to their declarations.
func (p *parser) inputs(v *node) []*Input {
	if v.kind != kindObject {
		p.wrongType("inputs", v, p.object()+" of input names to their declarations")
		return nil
	}
	ms := p.members(v, "input")
	if len(ms) > MaxInputs {
		p.errorf(v.off, "%d inputs exceed the limit of %d", len(ms), MaxInputs)
		return nil
	}
	var out []*Input
	for _, m := range ms {
		in := &Input{Name: m.key, Type: InputString}
		if !isIdentifier(m.key) || len(m.key) > 64 {
			p.errorf(m.keyOff, "input name %q must be a letter or _ followed by letters, digits or _ (at most 64), so that context.inputs.%s works", m.key, m.key)
			continue
		}
		if m.val.kind != kindObject {
			p.errorf(m.val.off, "input %q must be %s with \"type\" (string, bool or number), not %s", m.key, p.object(), p.kind(m.val))
			continue
		}
		var def, enum *node
		for _, f := range p.members(m.val, "field") {
			switch f.key {
			case "type":
				if f.val.kind != kindString || !slices.Contains([]string{InputString, InputBool, InputNumber}, f.val.str) {
					p.errorf(f.val.off, "input %q: \"type\" must be \"string\", \"bool\" or \"number\"", m.key)
				} else {
					in.Type = f.val.str
				}
			case "default":
				def = f.val
			case "enum":
				enum = f.val
			case "required":
				if f.val.kind != kindBool {
					p.errorf(f.val.off, "input %q: \"required\" must be true or false, not %s", m.key, p.kind(f.val))
				} else {
					in.Required = f.val.boolean
				}
			case "description":
				if f.val.kind != kindString {
					p.errorf(f.val.off, "input %q: \"description\" must be a string, not %s", m.key, p.kind(f.val))
				} else {
					in.Description = f.val.str
				}
			default:
				p.unknownField(f, inputFields, map[string]string{"options": "enum", "choices": "enum"})
			}
		}
		if enum != nil {
			if enum.kind != kindArray || len(enum.elems) == 0 {
				p.errorf(enum.off, "input %q: \"enum\" must be a non-empty list of allowed values", m.key)
			}
			for _, el := range enum.elems {
				if s, msg := p.inputValue(in, el); msg != "" {
					p.errorf(el.off, "input %q: enum value %s", m.key, msg)
				} else {
					in.Enum = append(in.Enum, s)
				}
			}
		}
		if def != nil {
			s, msg := p.inputValue(in, def)
			switch {
			case msg != "":
				p.errorf(def.off, "input %q: \"default\" %s", m.key, msg)
			case len(in.Enum) > 0 && !slices.Contains(in.Enum, s):
				p.errorf(def.off, "input %q: \"default\" %q is not one of %s", m.key, s, strings.Join(in.Enum, ", "))
			default:
				in.Default, in.HasDefault = s, true
			}
		}
		out = append(out, in)
	}
	return out
}

// inputValue is the text of a value of the file for input in (msg says why it is not one).
func (p *parser) inputValue(in *Input, n *node) (string, string) {
	want := map[string]kind{InputString: kindString, InputBool: kindBool, InputNumber: kindNumber}[in.Type]
	if n.kind != want {
		return "", fmt.Sprintf("must be %s (the input's type is %s), not %s", kindName(want, p.yaml), in.Type, p.kind(n))
	}
	switch want {
	case kindBool:
		return strconv.FormatBool(n.boolean), ""
	case kindNumber:
		s, err := normalizeInput(in, n.str)
		if err != nil {
			return "", err.Error()
		}
		return s, ""
	}
	if len(n.str) > MaxInputValue {
		return "", fmt.Sprintf("is %d bytes (at most %d)", len(n.str), MaxInputValue)
	}
	return n.str, ""
}

// normalizeInput checks a value given as text against in's type and returns its text
// as recorded: booleans as true or false, numbers in Go's shortest form.
func normalizeInput(in *Input, s string) (string, error) {
	switch in.Type {
	case InputBool:
		b, err := strconv.ParseBool(s)
		if err != nil || (s != "true" && s != "false") {
			return "", fmt.Errorf("must be true or false, not %q", s)
		}
		return strconv.FormatBool(b), nil
	case InputNumber:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", fmt.Errorf("must be a number, not %q", s)
		}
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	}
	if len(s) > MaxInputValue {
		return "", fmt.Errorf("is %d bytes (at most %d)", len(s), MaxInputValue)
	}
	return s, nil
}

// ResolveInputs checks the inputs a trigger gave (as text, by name) against the
// declared ones and returns the value of every declared input that is given or has a
// default, as text (normalised: true/false, numbers in shortest form). required says
// whether Required inputs without a default must be given (a manual trigger); other
// triggers get the defaults. The error names the input: unknown, of the wrong type, not
// one of its enum, or missing.
func (p *Pipeline) ResolveInputs(given map[string]string, required bool) (map[string]string, error) {
	out := make(map[string]string, len(p.Inputs))
	var errs []string
	for _, name := range sortedKeys(given) {
		if p.input(name) == nil {
			if len(p.Inputs) == 0 {
				errs = append(errs, fmt.Sprintf("unknown input %q: the pipeline declares no inputs", name))
			} else {
				errs = append(errs, fmt.Sprintf("unknown input %q (declared: %s)", name, strings.Join(p.inputNames(), ", ")))
			}
		}
	}
	for _, in := range p.Inputs {
		v, ok := given[in.Name]
		switch {
		case ok:
			s, err := normalizeInput(in, v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("input %q %v", in.Name, err))
				continue
			}
			if len(in.Enum) > 0 && !slices.Contains(in.Enum, s) {
				errs = append(errs, fmt.Sprintf("input %q: %q is not one of %s", in.Name, s, strings.Join(in.Enum, ", ")))
				continue
			}
			out[in.Name] = s
		case in.HasDefault:
			out[in.Name] = in.Default
		case in.Required && required:
			errs = append(errs, fmt.Sprintf("input %q is required", in.Name))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

// InputValues turns resolved inputs (ResolveInputs) into what conditions and templates
// see as context.inputs: booleans as bool, numbers as float64, strings as they are.
// Every declared input is present; one without a value is "" (string), false or 0.
func (p *Pipeline) InputValues(resolved map[string]string) map[string]any {
	out := make(map[string]any, len(p.Inputs))
	for _, in := range p.Inputs {
		s := resolved[in.Name]
		switch in.Type {
		case InputBool:
			out[in.Name] = s == "true"
		case InputNumber:
			f, _ := strconv.ParseFloat(s, 64)
			out[in.Name] = f
		default:
			out[in.Name] = s
		}
	}
	return out
}

func (p *Pipeline) input(name string) *Input {
	for _, in := range p.Inputs {
		if in.Name == name {
			return in
		}
	}
	return nil
}

func (p *Pipeline) inputNames() []string {
	out := make([]string, len(p.Inputs))
	for i, in := range p.Inputs {
		out[i] = in.Name
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
