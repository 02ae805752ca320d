package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// maxDepth bounds the nesting of the document; the pipeline format needs
// 4 levels, the bound keeps hostile input from costing much.
const maxDepth = 64

// jsonSyntaxError is malformed JSON at a byte offset.
type jsonSyntaxError struct {
	off int
	msg string
}

// parseJSON builds a tree of the document with byte offsets, using
// encoding/json's tokenizer for the grammar and InputOffset for positions.
// Objects keep duplicate keys; validation reports them.
func parseJSON(data []byte) (*node, *jsonSyntaxError) {
	p := &jsonParser{data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	root, err := p.value(0)
	if err != nil {
		return nil, err
	}
	// Anything but whitespace after the top-level value is an error.
	if _, terr := p.dec.Token(); terr != io.EOF {
		return nil, p.syntax(nil)
	}
	return root, nil
}

type jsonParser struct {
	data []byte
	dec  *json.Decoder
	prev int // offset just after the last token
}

// skip returns the offset of the first byte at or after off that is not
// whitespace or a separator the decoder consumes on its own.
func (p *jsonParser) skip(off int) int {
	for off < len(p.data) {
		switch p.data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
		default:
			return off
		}
	}
	return off
}

func (p *jsonParser) token() (json.Token, int, *jsonSyntaxError) {
	tok, err := p.dec.Token()
	if err != nil {
		return nil, 0, p.syntax(err)
	}
	start := p.skip(p.prev)
	p.prev = int(p.dec.InputOffset())
	return tok, start, nil
}

// syntax locates a tokenizer error. The Decoder's offsets for syntax
// errors are those of the token it was reading, so the document is checked
// again with json.Unmarshal, whose SyntaxError.Offset is just past the
// offending byte.
func (p *jsonParser) syntax(err error) *jsonSyntaxError {
	if len(bytes.TrimSpace(p.data)) == 0 {
		return &jsonSyntaxError{off: 0, msg: "empty file: expected a JSON object with \"steps\""}
	}
	var se *json.SyntaxError
	if errors.As(json.Unmarshal(p.data, new(any)), &se) {
		if strings.HasPrefix(se.Error(), "unexpected end") {
			return &jsonSyntaxError{off: len(p.data), msg: "invalid JSON: unexpected end of file"}
		}
		return &jsonSyntaxError{off: clamp(int(se.Offset)-1, len(p.data)), msg: "invalid JSON: " + se.Error()}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &jsonSyntaxError{off: len(p.data), msg: "invalid JSON: unexpected end of file"}
	}
	msg := "unexpected data after the top-level value"
	if err != nil {
		msg = err.Error()
	}
	return &jsonSyntaxError{off: clamp(p.skip(p.prev), len(p.data)), msg: "invalid JSON: " + msg}
}

func (p *jsonParser) value(depth int) (*node, *jsonSyntaxError) {
	tok, start, err := p.token()
	if err != nil {
		return nil, err
	}
	return p.valueFrom(tok, start, depth)
}

func (p *jsonParser) valueFrom(tok json.Token, start, depth int) (*node, *jsonSyntaxError) {
	n := &node{off: start}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxDepth {
			return nil, &jsonSyntaxError{off: start, msg: fmt.Sprintf("invalid JSON: nested deeper than %d levels", maxDepth)}
		}
		switch t {
		case '{':
			n.kind = kindObject
			for {
				tok, koff, err := p.token()
				if err != nil {
					return nil, err
				}
				if d, ok := tok.(json.Delim); ok && d == '}' {
					break
				}
				key, _ := tok.(string) // the decoder guarantees a string key here
				val, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.members = append(n.members, member{key: key, keyOff: koff, val: val})
			}
		case '[':
			n.kind = kindArray
			for {
				tok, eoff, err := p.token()
				if err != nil {
					return nil, err
				}
				if d, ok := tok.(json.Delim); ok && d == ']' {
					break
				}
				el, err := p.valueFrom(tok, eoff, depth+1)
				if err != nil {
					return nil, err
				}
				n.elems = append(n.elems, el)
			}
		}
	case string:
		n.kind, n.str = kindString, t
	case json.Number:
		n.kind, n.str = kindNumber, string(t)
	case bool:
		n.kind, n.boolean = kindBool, t
	case nil:
		n.kind = kindNull
	}
	n.end = p.prev
	return n, nil
}

// stringRuneOffsets maps the i-th character of a decoded JSON string to the
// byte offset in data where its encoding starts. raw is the literal with
// its quotes (data[n.off:n.end]); base is n.off. The result has one extra
// entry for the closing quote.
func stringRuneOffsets(raw []byte, base int) []int {
	var offs []int
	i := 1 // after the opening quote
	for i < len(raw)-1 {
		offs = append(offs, base+i)
		c := raw[i]
		switch {
		case c == '\\' && i+1 < len(raw):
			if raw[i+1] == 'u' {
				i += 6
				// A surrogate pair decodes to one character.
				if i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' && isHighSurrogate(raw[i-4:i]) && isLowSurrogate(raw[i+2:]) {
					i += 6
				}
			} else {
				i += 2
			}
		case c < utf8.RuneSelf:
			i++
		default:
			_, size := utf8.DecodeRune(raw[i:])
			i += size
		}
	}
	return append(offs, base+len(raw)-1)
}

func hexVal(b []byte) (int, bool) {
	if len(b) < 4 {
		return 0, false
	}
	v := 0
	for _, c := range b[:4] {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= int(c - '0')
		case c >= 'a' && c <= 'f':
			v |= int(c-'a') + 10
		case c >= 'A' && c <= 'F':
			v |= int(c-'A') + 10
		default:
			return 0, false
		}
	}
	return v, true
}

func isHighSurrogate(b []byte) bool {
	v, ok := hexVal(b)
	return ok && v >= 0xD800 && v < 0xDC00
}

func isLowSurrogate(b []byte) bool {
	v, ok := hexVal(b)
	return ok && v >= 0xDC00 && v < 0xE000
}
