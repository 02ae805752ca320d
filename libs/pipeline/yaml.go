package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// yamlIssue is a problem found while reading a YAML document, at a byte
// offset.
type yamlIssue struct {
	off int
	msg string
}

// parseYAML builds the same tree as parseJSON from a YAML document, with
// the YAML library's node positions. Constructs the pipeline model has no
// use for (aliases, merge keys, custom tags, complex keys, several
// documents) are errors; when there are any, the tree is nil.
func parseYAML(data []byte, li *lineIndex) (*node, []yamlIssue) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, []yamlIssue{{0, "empty file: expected a YAML mapping with \"steps\""}}
	}
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, size := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			off += size
		}
		return nil, []yamlIssue{{off, "invalid YAML: the file is not valid UTF-8"}}
	}
	for off, r := range string(data) {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f || (r >= 0x80 && r < 0xa0 && r != 0x85) || r == 0xfffe || r == 0xffff {
			return nil, []yamlIssue{{off, fmt.Sprintf("invalid YAML: control character %U is not allowed", r)}}
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, []yamlIssue{{0, "empty file: expected a YAML mapping with \"steps\""}}
		}
		return nil, []yamlIssue{yamlSyntax(err, li)}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		off := li.offset(extra.Line, extra.Column)
		if len(extra.Content) > 0 {
			off = li.offset(extra.Content[0].Line, extra.Content[0].Column)
		}
		return nil, []yamlIssue{{off, "a second YAML document: the file must hold exactly one"}}
	case !errors.Is(err, io.EOF):
		return nil, []yamlIssue{yamlSyntax(err, li)}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, []yamlIssue{{0, "empty file: expected a YAML mapping with \"steps\""}}
	}
	c := &yamlConverter{li: li}
	root := c.convert(doc.Content[0], 0)
	if len(c.issues) > 0 {
		return nil, c.issues
	}
	return root, nil
}

type yamlConverter struct {
	li     *lineIndex
	issues []yamlIssue
}

func (c *yamlConverter) at(n *yaml.Node) int { return c.li.offset(n.Line, n.Column) }

func (c *yamlConverter) fail(n *yaml.Node, format string, args ...any) *node {
	c.issues = append(c.issues, yamlIssue{c.at(n), fmt.Sprintf(format, args...)})
	return &node{kind: kindNull, off: c.at(n)}
}

func (c *yamlConverter) convert(y *yaml.Node, depth int) *node {
	if depth >= maxDepth {
		return c.fail(y, "invalid YAML: nested deeper than %d levels", maxDepth)
	}
	n := &node{off: c.at(y)}
	switch y.Kind {
	case yaml.AliasNode:
		return c.fail(y, "YAML aliases (*%s) are not supported: write the value out", y.Value)
	case yaml.MappingNode:
		if t := y.Tag; t != "" && t != "!" && y.ShortTag() != "!!map" {
			return c.fail(y, "YAML tag %s is not supported", t)
		}
		n.kind = kindObject
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, v := y.Content[i], y.Content[i+1]
			switch {
			case k.ShortTag() == "!!merge":
				c.fail(k, "YAML merge keys (<<) are not supported: write the fields out")
				continue
			case k.Kind == yaml.AliasNode:
				c.fail(k, "YAML aliases (*%s) are not supported: write the value out", k.Value)
				continue
			case k.Kind != yaml.ScalarNode:
				c.fail(k, "a key must be a plain string")
				continue
			}
			n.members = append(n.members, member{key: k.Value, keyOff: c.at(k), val: c.convert(v, depth+1)})
		}
	case yaml.SequenceNode:
		if t := y.Tag; t != "" && t != "!" && y.ShortTag() != "!!seq" {
			return c.fail(y, "YAML tag %s is not supported", t)
		}
		n.kind = kindArray
		for _, e := range y.Content {
			n.elems = append(n.elems, c.convert(e, depth+1))
		}
	case yaml.ScalarNode:
		n.y = y
		switch tag := y.ShortTag(); tag {
		case "!!str", "!!timestamp":
			// A date-like plain scalar is text as far as the pipeline goes.
			n.kind, n.str = kindString, y.Value
		case "!!int", "!!float":
			n.kind, n.str = kindNumber, y.Value
		case "!!bool":
			n.kind = kindBool
			n.boolean = strings.EqualFold(y.Value, "true")
		case "!!null":
			n.kind = kindNull
		default:
			return c.fail(y, "YAML tag %s is not supported", tag)
		}
	default:
		return c.fail(y, "unexpected YAML node")
	}
	return n
}

var yamlErrLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlScannerProblems are the messages of the YAML library's scanner. It
// reports their line 1-based; for every other error (the parser's) it
// reports the 0-based line, and for line 0 none at all.
var yamlScannerProblems = []string{
	"block sequence entries are not allowed", "could not find expected", "did not find expected alphabetic",
	"did not find expected comment", "did not find expected digit", "did not find expected hexdecimal",
	"did not find expected version", "did not find expected whitespace", "did not find the expected '>'",
	"exceeded max depth", "found a tab character", "found an indentation indicator", "found character that cannot start",
	"found extremely long", "found invalid Unicode", "found unexpected document indicator", "found unexpected end of stream",
	"found unexpected non-alphabetical", "found unknown directive", "found unknown escape", "mapping keys are not allowed",
	"mapping values are not allowed",
}

// yamlSyntax turns the YAML library's error into a position and message.
// The library gives a line only; the column is that of the line's first
// character that is not a space (or 1 when it starts with a tab).
func yamlSyntax(err error, li *lineIndex) yamlIssue {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
		msg = m[2]
		n, _ := strconv.Atoi(m[1])
		line = n + 1
		for _, p := range yamlScannerProblems {
			if strings.HasPrefix(msg, p) {
				line = n
				break
			}
		}
	}
	line = min(max(line, 1), len(li.starts))
	text := li.line(line)
	col := 1
	if !bytes.HasPrefix(text, []byte("\t")) {
		col = utf8.RuneCount(text) - utf8.RuneCount(bytes.TrimLeft(text, " ")) + 1
	}
	if bytes.HasPrefix(bytes.TrimLeft(text, " "), []byte("\t")) && strings.Contains(msg, "cannot start any token") {
		msg += " (indent with spaces, not tabs)"
	}
	return yamlIssue{li.offset(line, col), "invalid YAML: " + msg}
}

// yamlStringOffsets maps the i-th character of a YAML string scalar's
// value to the byte offset in data where it is written, following the
// scalar's style (plain, quoted with escapes, literal or folded block),
// with one extra entry for the end. Whitespace the style folds or strips
// may map to a neighbouring blank, never anything else.
func yamlStringOffsets(data []byte, start int, y *yaml.Node) []int {
	value := y.Value
	offs := make([]int, 0, utf8.RuneCountInString(value)+1)
	pos := start
	// A tag or an anchor comes before the value.
	for pos < len(data) && (data[pos] == '!' || data[pos] == '&') {
		for pos < len(data) && data[pos] != ' ' && data[pos] != '\t' && data[pos] != '\n' {
			pos++
		}
		for pos < len(data) && (data[pos] == ' ' || data[pos] == '\t') {
			pos++
		}
	}
	switch {
	case y.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		// The content starts on the line after the indicator.
		if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
			pos += i + 1
		} else {
			pos = len(data)
		}
	case y.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0:
		pos++
	}
	double := y.Style&yaml.DoubleQuotedStyle != 0
	single := y.Style&yaml.SingleQuotedStyle != 0
	limit := min(len(data), pos+len(value)*16+4096)
	for _, r := range value {
		for {
			if pos >= limit {
				offs = append(offs, min(pos, len(data)))
				break
			}
			c, size := utf8.DecodeRune(data[pos:])
			if double && c == '\\' && pos+1 < len(data) {
				next := data[pos+1]
				if next == '\n' || next == '\r' {
					// A line continuation: no character of the value.
					pos += 2
					for pos < len(data) && (data[pos] == ' ' || data[pos] == '\t' || data[pos] == '\n') {
						pos++
					}
					continue
				}
				offs = append(offs, pos)
				switch next {
				case 'x':
					pos += 4
				case 'u':
					pos += 6
				case 'U':
					pos += 10
				default:
					pos += 2
				}
				break
			}
			if single && c == '\'' && pos+1 < len(data) && data[pos+1] == '\'' && r == '\'' {
				offs = append(offs, pos)
				pos += 2
				break
			}
			if c == r || ((r == ' ' || r == '\n') && (c == '\n' || c == '\r')) {
				offs = append(offs, pos)
				pos += size
				break
			}
			pos += size // indentation, folded breaks, syntax: skip
		}
	}
	return append(offs, min(pos, len(data)))
}
