// Package id makes the opaque identifiers users see: ULIDs (time-ordered, not guessable,
// never sequential across tenants) and random secrets.
package id

import (
	"crypto/rand"
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
