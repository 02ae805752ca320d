package pipeline

import (
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// kind is the type of a value in the pipeline file, the same for JSON and
// YAML.
type kind int

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// node is a value of the file with the byte offset where it starts. The
// JSON and the YAML reader both produce it; validation works on it alone.
type node struct {
	kind    kind
	off     int // first byte (the quote of a JSON string, the brace of an object, a YAML scalar's first character)
	end     int // JSON only: one past the last byte
	str     string
	boolean bool
	members []member // every member, duplicates included, in file order
	elems   []*node
	y       *yaml.Node // YAML only: the scalar, for positions inside strings
}

type member struct {
	key    string
	keyOff int
	val    *node
}

// kindName says what a value is, in the words of the file's format.
func kindName(k kind, yamlFormat bool) string {
	switch k {
	case kindBool:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindString:
		return "a string"
	case kindArray:
		return "a list"
	case kindObject:
		if yamlFormat {
			return "a mapping"
		}
		return "an object"
	}
	return "null"
}

// lineIndex converts byte offsets to 1-based line and character columns
// and back.
type lineIndex struct {
	data   []byte
	starts []int
}

func newLineIndex(data []byte) *lineIndex {
	li := &lineIndex{data: data, starts: []int{0}}
	for i, c := range data {
		if c == '\n' {
			li.starts = append(li.starts, i+1)
		}
	}
	return li
}

func (li *lineIndex) pos(off int) Position {
	off = clamp(off, len(li.data))
	lo, hi := 0, len(li.starts)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if li.starts[mid] <= off {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return Position{Line: lo + 1, Col: utf8.RuneCount(li.data[li.starts[lo]:off]) + 1}
}

// offset is the byte offset of a 1-based line and character column,
// clamped to the line (or the file).
func (li *lineIndex) offset(line, col int) int {
	if line < 1 {
		return 0
	}
	if line > len(li.starts) {
		return len(li.data)
	}
	off := li.starts[line-1]
	for c := 1; c < col && off < len(li.data) && li.data[off] != '\n'; c++ {
		_, size := utf8.DecodeRune(li.data[off:])
		off += size
	}
	return off
}

// line returns the text of a 1-based line, without its line break.
func (li *lineIndex) line(line int) []byte {
	if line < 1 || line > len(li.starts) {
		return nil
	}
	start, end := li.starts[line-1], len(li.data)
	if line < len(li.starts) {
		end = li.starts[line] - 1
	}
	return li.data[start:end]
}

func clamp(off, n int) int {
	if off < 0 {
		return 0
	}
	if off > n {
		return n
	}
	return off
}
