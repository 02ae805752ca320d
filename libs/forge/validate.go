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

// MaxDeliveryIDLength bounds a webhook delivery id (see ValidDeliveryID).
const MaxDeliveryIDLength = 128

// CheckText refuses text longer than max bytes or holding control characters,
// which have no place in a login or repository name and would end up in logs
// and the UI.
func CheckText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("longer than %d bytes", max)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("contains a control character")
		}
	}
	return nil
}

// ValidDeliveryID reports whether s is usable as a delivery id: empty, or at
// most MaxDeliveryIDLength letters, digits and . _ : - (a GitHub GUID is).
func ValidDeliveryID(s string) bool {
	if len(s) > MaxDeliveryIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._:-", c) >= 0) {
			return false
		}
	}
	return true
}
