// Package id makes the opaque identifiers users see: ULIDs (time-ordered, not guessable,
// never sequential across tenants) and random secrets.
package id

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/oklog/ulid/v2"
)

// New returns a new lower-case ULID.
func New() string {
	return strings.ToLower(ulid.Make().String())
}

// Secret returns n random bytes, hex-encoded.
func Secret(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// FromKey returns an id in the same form as New, derived from parts: the same parts
// always give the same id. It makes retried requests land on the same resource (a
// webhook delivered twice names one run).
func FromKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var u ulid.ULID
	copy(u[:], h.Sum(nil))
	return strings.ToLower(u.String())
}
