package pipeline

import "strings"

// shellCtx is where a placeholder stands in a command's shell syntax, which
// decides how its value is quoted.
type shellCtx uint8

const (
	inUnquoted shellCtx = iota // 'value'
	inSingle                   // inside '...': value with ' as '\''
	inDouble                   // inside "...": "'value'" (close, quote, reopen)
)

// placement is how a placeholder can be inserted, or why it cannot.
type placement struct {
	ctx shellCtx
	err string
}

// envHint ends the messages about places a value cannot be quoted safely.
const envHint = `; put the value in the step's env (NAME: "{{ ... }}") and use "$NAME" there instead`

// shellPlacements reads the command s, in which each of the n placeholders
// is a NUL byte, the way sh (POSIX sh, dash, bash) tokenizes it, and tells
// for each placeholder whether it stands unquoted, in single quotes or in
// double quotes. Places where no quoting of a value is safe (directly after
// a backslash or $, in backquotes, ${...}, $'...', a comment, a
// here-document, and bash's arithmetic: $((...)), ((...)), $[...], an
// array subscript, where bash runs $(...) even inside single quotes) are
// errors, and so is every place after a construct whose
// extent sh dialects disagree on. The rendered value never changes the
// lexer's state, so the contexts computed from the literal text alone are
// those sh sees after rendering.
func shellPlacements(s string, n int) []placement {
	lx := &shellLexer{s: s, stack: []frame{{kind: fCode}}, wordStart: true}
	for lx.i < len(s) {
		lx.next()
	}
	for len(lx.out) < n { // cannot happen; never render blind
		lx.out = append(lx.out, placement{err: "internal error: template not found in the command"})
	}
	return lx.out[:n]
}

type frameKind uint8

const (
	fCode         frameKind = iota // unquoted: the command, $( ... ), ( ... )
	fSingle                        // '...'
	fDouble                        // "..." and $"..."
	fDollarSingle                  // $'...' (bash, newer dash)
	fBacktick                      // `...`
	fParam                         // ${...}
	fArith                         // $((...)), ((...)), $[...], a[...]: arithmetic in bash
	fComment                       // # ... up to the end of the line
)

type frame struct {
	kind  frameKind
	subst bool // fCode: inside $( ... )
	depth int  // fCode: open ( ; fArith: open brackets
	open  byte // fArith: ( for $((...)) and ((...)), [ for $[...] and a[...]
}

type heredoc struct {
	delim string
	tabs  bool // <<- strips leading tabs
}

type shellLexer struct {
	s         string
	i         int
	stack     []frame
	wordStart bool      // fCode: the next character starts a word
	word      []byte    // fCode: the current word, while it is plain characters only
	plain     bool      // the current word has only plain characters
	ident     bool      // ... and they make a shell name so far
	pending   []heredoc // here-documents whose bodies start at the next newline
	uncertain string    // the construct after which quoting cannot be told
	out       []placement
}

func (lx *shellLexer) top() *frame { return &lx.stack[len(lx.stack)-1] }

func (lx *shellLexer) push(f frame) {
	lx.stack = append(lx.stack, f)
	if f.kind == fCode {
		lx.wordStart, lx.word, lx.plain, lx.ident = true, lx.word[:0], true, true
	}
}

func (lx *shellLexer) pop() {
	if len(lx.stack) > 1 {
		lx.stack = lx.stack[:len(lx.stack)-1]
	}
	lx.wordStart, lx.plain = false, false
}

// place records the placeholder at lx.i (the caller advances).
func (lx *shellLexer) place(ctx shellCtx, err string) {
	if err == "" && lx.uncertain != "" {
		err = "a template cannot follow " + lx.uncertain + ": how sh quotes the rest of the command cannot be told" + envHint
	}
	lx.out = append(lx.out, placement{ctx: ctx, err: err})
}

// skip advances to j, recording every placeholder on the way as refused.
func (lx *shellLexer) skip(j int, err string) {
	j = min(j, len(lx.s))
	for k := lx.i; k < j; k++ {
		if lx.s[k] == 0 {
			lx.out = append(lx.out, placement{err: err})
		}
	}
	lx.i = j
}

func (lx *shellLexer) setUncertain(what string) {
	if lx.uncertain == "" {
		lx.uncertain = what
	}
}

func (lx *shellLexer) at(k int) byte {
	if k < len(lx.s) {
		return lx.s[k]
	}
	return 0xff
}

func (lx *shellLexer) next() {
	c := lx.s[lx.i]
	f := lx.top()
	switch f.kind {
	case fSingle:
		switch c {
		case 0:
			lx.place(inSingle, "")
		case '\'':
			lx.pop()
		}
		lx.i++
	case fDollarSingle:
		switch c {
		case 0:
			lx.place(0, "a template cannot stand inside $'...'"+envHint)
		case '\\':
			// bash reads \' as a quote, older dash ends the string there.
			lx.setUncertain("a backslash inside $'...'")
			if lx.at(lx.i+1) != 0 && lx.i+1 < len(lx.s) {
				lx.i++
			}
		case '\'':
			lx.pop()
		}
		lx.i++
	case fDouble:
		switch c {
		case 0:
			lx.place(inDouble, "")
		case '"':
			lx.pop()
		case '\\':
			lx.escape()
			return
		case '$':
			lx.dollar(false)
			return
		case '`':
			lx.push(frame{kind: fBacktick})
		}
		lx.i++
	case fBacktick:
		const why = "a template cannot stand inside backquotes `...`: write $(...) instead"
		switch c {
		case 0:
			lx.place(0, why)
		case '\\':
			lx.skip(lx.i+2, why)
			return
		case '`':
			lx.pop()
		}
		lx.i++
	case fParam:
		switch c {
		case 0:
			lx.place(0, "a template cannot stand inside ${...}"+envHint)
		case '}':
			lx.pop()
		case '\'', '"', '`', '{', '\\':
			lx.setUncertain("quotes, braces or a backslash inside ${...}")
		case '$':
			if n := lx.at(lx.i + 1); n == '(' || n == '{' || n == '\'' || n == '"' {
				lx.setUncertain("a substitution inside ${...}")
			}
		}
		lx.i++
	case fArith:
		closing := byte(')')
		if f.open == '[' {
			closing = ']'
		}
		switch c {
		case 0:
			// bash evaluates these as arithmetic, expanding $(...) even
			// inside single quotes: no quoting protects a value there.
			lx.place(0, "a template cannot stand inside arithmetic ($((...)), ((...)), $[...] or an array subscript)"+envHint)
		case f.open:
			f.depth++
		case closing:
			f.depth--
			if f.depth <= 0 {
				lx.pop()
			}
		case '\'', '"', '`', '\\', '{':
			lx.setUncertain("quotes, braces or a backslash inside arithmetic")
		}
		lx.i++
	case fComment:
		switch c {
		case '\n':
			lx.pop() // the newline itself is the command's
			lx.wordStart = true
			return
		case 0:
			lx.place(0, "a template cannot stand in a shell comment (after #)")
		}
		lx.i++
	default:
		lx.code(c)
	}
}

// code reads one character of unquoted shell text.
func (lx *shellLexer) code(c byte) {
	f := lx.top()
	switch c {
	case 0:
		lx.place(inUnquoted, "")
		lx.inWord(false)
		lx.i++
	case ' ', '\t':
		lx.endWord()
		lx.i++
	case '\n':
		lx.endWord()
		lx.i++
		lx.heredocBodies()
	case ';', '&', '|', '>':
		lx.endWord()
		lx.i++
	case '(':
		lx.endWord()
		if lx.at(lx.i+1) == '(' { // bash's arithmetic command (in dash, two subshells)
			lx.push(frame{kind: fArith, depth: 2, open: '('})
			lx.i += 2
			return
		}
		f.depth++
		lx.i++
	case ')':
		lx.endWord()
		lx.i++
		switch {
		case f.depth > 0:
			f.depth--
		case f.subst:
			lx.pop()
		}
	case '<':
		lx.endWord()
		switch {
		case lx.at(lx.i+1) == '<' && lx.at(lx.i+2) == '<': // here-string
			lx.i += 3
		case lx.at(lx.i+1) == '<':
			lx.i += 2
			lx.heredocOperator()
		default:
			lx.i++
		}
	case '#':
		if lx.wordStart {
			lx.push(frame{kind: fComment})
			lx.i++
			return
		}
		lx.inWord(true)
		lx.i++
	case '\'':
		lx.inWord(false)
		lx.push(frame{kind: fSingle})
		lx.i++
	case '"':
		lx.inWord(false)
		lx.push(frame{kind: fDouble})
		lx.i++
	case '\\':
		lx.inWord(false)
		lx.escape()
	case '$':
		lx.inWord(false)
		lx.dollar(true)
	case '`':
		lx.inWord(false)
		lx.push(frame{kind: fBacktick})
		lx.i++
	case '[':
		if lx.plain && !lx.wordStart && lx.ident {
			// name[...]: an array subscript in bash, arithmetic.
			lx.push(frame{kind: fArith, depth: 1, open: '['})
			lx.i++
			return
		}
		lx.inWord(false)
		lx.i++
	default:
		lx.inWord(true)
		if lx.plain && len(lx.word) < 8 {
			lx.word = append(lx.word, c)
		}
		lx.ident = lx.ident && (c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && len(lx.word) > 1)
		lx.i++
	}
}

// inWord notes a character of a word; plain says whether it is an
// ordinary character (for spotting reserved words).
func (lx *shellLexer) inWord(plain bool) {
	if lx.wordStart {
		lx.word, lx.plain, lx.ident = lx.word[:0], true, true
	}
	lx.wordStart = false
	if !plain {
		lx.plain, lx.ident = false, false
	}
}

// endWord handles the end of an unquoted word. A case statement inside
// $( ... ) has unbalanced ) that only a full parser can place, so the rest
// of the command is uncertain.
func (lx *shellLexer) endWord() {
	if !lx.wordStart && lx.plain && string(lx.word) == "case" {
		for _, f := range lx.stack {
			if f.kind == fCode && f.subst {
				lx.setUncertain("a case statement inside $(...)")
			}
		}
	}
	lx.wordStart, lx.word, lx.plain, lx.ident = true, lx.word[:0], true, true
}

// escape reads a backslash and the character it escapes.
func (lx *shellLexer) escape() {
	if lx.at(lx.i+1) == 0 {
		lx.i++
		lx.place(0, "a template cannot follow a backslash: it would escape the quote the value is inserted with")
		lx.i++
		return
	}
	lx.i = min(lx.i+2, len(lx.s))
}

// dollar reads a $ and what it starts.
func (lx *shellLexer) dollar(code bool) {
	n := lx.at(lx.i + 1)
	switch {
	case n == 0:
		lx.i++
		lx.place(0, "a template cannot follow $: templates are written {{ expr }}, without a $")
		lx.i++
	case n == '(' && lx.at(lx.i+2) == '(':
		lx.push(frame{kind: fArith, depth: 2, open: '('})
		lx.i += 3
	case n == '[': // bash's old $[...] arithmetic
		lx.push(frame{kind: fArith, depth: 1, open: '['})
		lx.i += 2
	case n == '(':
		lx.push(frame{kind: fCode, subst: true})
		lx.i += 2
	case n == '{':
		lx.push(frame{kind: fParam})
		lx.i += 2
	case n == '\'' && code:
		lx.push(frame{kind: fDollarSingle})
		lx.i += 2
	case n == '"' && code:
		lx.push(frame{kind: fDouble})
		lx.i += 2
	case n != 0xff && strings.IndexByte("$@*#?-!0123456789", n) >= 0:
		lx.i += 2 // a special parameter: $# is not a comment, $$ not two $
	default:
		lx.i++
	}
}

// heredocOperator reads the delimiter after << or <<-.
func (lx *shellLexer) heredocOperator() {
	const why = "a template cannot stand in a here-document's delimiter"
	tabs := false
	if lx.at(lx.i) == '-' {
		tabs = true
		lx.i++
	}
	for lx.at(lx.i) == ' ' || lx.at(lx.i) == '\t' {
		lx.i++
	}
	var d strings.Builder
loop:
	for lx.i < len(lx.s) {
		c := lx.s[lx.i]
		switch c {
		case ' ', '\t', '\n', ';', '&', '|', '(', ')', '<', '>':
			break loop
		case 0:
			lx.place(0, why)
			lx.setUncertain("a here-document with a template in its delimiter")
			lx.i++
		case '\'', '"':
			j := strings.IndexByte(lx.s[lx.i+1:], c)
			if j < 0 {
				lx.setUncertain("an unterminated here-document delimiter")
				lx.skip(len(lx.s), why)
				return
			}
			body := lx.s[lx.i+1 : lx.i+1+j]
			if c == '"' && strings.ContainsAny(body, "$`\\") {
				lx.setUncertain("a here-document delimiter with $, ` or \\")
			}
			d.WriteString(body)
			lx.skip(lx.i+j+2, why)
		case '\\':
			if lx.at(lx.i+1) == 0 {
				lx.place(0, why)
			} else if lx.i+1 < len(lx.s) {
				d.WriteByte(lx.s[lx.i+1])
			}
			lx.i = min(lx.i+2, len(lx.s))
		case '$', '`':
			lx.setUncertain("a here-document delimiter with $ or `")
			lx.i++
		default:
			d.WriteByte(c)
			lx.i++
		}
	}
	if d.Len() == 0 {
		lx.setUncertain("a here-document operator without a delimiter")
		return
	}
	lx.pending = append(lx.pending, heredoc{delim: d.String(), tabs: tabs})
	lx.wordStart = true
}

// heredocBodies skips the bodies of the pending here-documents, which
// start after the newline just read.
func (lx *shellLexer) heredocBodies() {
	const why = "a template cannot stand inside a here-document" + envHint
	for _, h := range lx.pending {
		for lx.i < len(lx.s) {
			end := len(lx.s)
			if j := strings.IndexByte(lx.s[lx.i:], '\n'); j >= 0 {
				end = lx.i + j
			}
			line := lx.s[lx.i:end]
			lx.skip(min(end+1, len(lx.s)), why)
			if h.tabs {
				line = strings.TrimLeft(line, "\t")
			}
			if line == h.delim {
				break
			}
		}
	}
	lx.pending = lx.pending[:0]
}
