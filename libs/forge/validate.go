package forge

import (
	"fmt"
	"strings"
)

// Bounds on what a provider accepts from a webhook or a caller. They are far
// above anything legitimate and keep hostile input from growing without limit.
const (
	MaxRefLength  = 255
	MaxPathLength = 4096
)

// ValidateSHA reports whether sha is a full commit id: exactly 40 hex digits.
// Callers lower-case it first if they accept upper case. Errors wrap ErrInvalid.
func ValidateSHA(sha string) error {
	if len(sha) != 40 {
		return fmt.Errorf("%w: commit id must be 40 hex digits, got %d characters", ErrInvalid, len(sha))
	}
	for i := 0; i < len(sha); i++ {
		c := sha[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("%w: commit id must be lowercase hex", ErrInvalid)
		}
	}
	return nil
}

// ValidateRef reports whether ref is a sane git ref name, following the rules
// of git check-ref-format plus a length bound: no "..", "@{", "//", control
// characters, spaces or any of ~^:?*[\, no component starting with "." or
// ending with ".lock", no leading "-" or "/", no trailing "/" or ".". It does not
// require a "refs/" prefix, so short names such as "main" pass. Errors wrap ErrInvalid.
func ValidateRef(ref string) error {
	bad := func(why string) error { return fmt.Errorf("%w: ref %s", ErrInvalid, why) }
	switch {
	case ref == "":
		return bad("is empty")
	case len(ref) > MaxRefLength:
		return bad(fmt.Sprintf("is longer than %d bytes", MaxRefLength))
	case ref == "@":
		return bad(`is "@"`)
	case strings.HasPrefix(ref, "-"):
		return bad(`starts with "-"`)
	case strings.HasPrefix(ref, "/") || strings.HasSuffix(ref, "/"):
		return bad(`starts or ends with "/"`)
	case strings.HasSuffix(ref, "."):
		return bad(`ends with "."`)
	case strings.Contains(ref, ".."):
		return bad(`contains ".."`)
	case strings.Contains(ref, "@{"):
		return bad(`contains "@{"`)
	case strings.Contains(ref, "//"):
		return bad(`contains "//"`)
	}
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		if c < 0x20 || c == 0x7f || c == ' ' || strings.IndexByte(`~^:?*[\`, c) >= 0 {
			return bad(fmt.Sprintf("contains the forbidden character %q", c))
		}
	}
	for _, part := range strings.Split(ref, "/") {
		if strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".lock") {
			return bad(`has a component starting with "." or ending with ".lock"`)
		}
	}
	return nil
}

// ValidatePath reports whether p is a safe file path inside a repository:
// slash-separated, relative, already clean (no ".", ".." or empty components),
// free of control characters and backslashes, and bounded in length.
// Errors wrap ErrInvalid.
func ValidatePath(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w: path %s", ErrInvalid, why) }
	switch {
	case p == "":
		return bad("is empty")
	case len(p) > MaxPathLength:
		return bad(fmt.Sprintf("is longer than %d bytes", MaxPathLength))
	case strings.HasPrefix(p, "/"):
		return bad("is absolute; give it relative to the repository root")
	case strings.HasPrefix(p, "-"):
		return bad(`starts with "-"`)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < 0x20 || c == 0x7f || c == '\\' {
			return bad(fmt.Sprintf("contains the forbidden character %q", c))
		}
	}
	for _, part := range strings.Split(p, "/") {
		switch part {
		case "", ".", "..":
			return bad(`has an empty, "." or ".." component`)
		}
	}
	return nil
}
