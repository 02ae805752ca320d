package pipeline

import (
	"fmt"
	"strings"
)

// Error is one problem in a pipeline file, with its position.
type Error struct {
	// File is the file name given to Parse.
	File string
	// Line is 1-based.
	Line int
	// Col is 1-based, counted in Unicode characters.
	Col int
	// Step is the name of the step the problem belongs to, or "" when it
	// is not inside a named step.
	Step string
	// Index is the 0-based index of the step the problem belongs to, or -1
	// when it is outside any step.
	Index int
	// Msg says what is wrong, without the position and step prefix.
	Msg string
}

// Error formats the problem as FILE:LINE:COL: step "NAME": MSG.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d:%d: ", e.File, e.Line, e.Col)
	switch {
	case e.Step != "":
		fmt.Fprintf(&b, "step %q: ", e.Step)
	case e.Index >= 0:
		fmt.Fprintf(&b, "step #%d: ", e.Index+1)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a pipeline file, in file order. Parse
// returns it as its error; use errors.As to get at the entries.
type Errors []*Error

// Error joins the problems, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}
