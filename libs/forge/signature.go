package forge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// SignatureHeader is the header that carries the body's HMAC-SHA256, in the
// format GitHub uses and package local accepts.
const SignatureHeader = "X-Hub-Signature-256"

const signaturePrefix = "sha256="

// Sign returns the SignatureHeader value for body: "sha256=" followed by the
// hex HMAC-SHA256 of body keyed with secret. Senders (tests, `simpleci` CLI,
// scripts that post to a local project) use it.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return signaturePrefix + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a SignatureHeader value against body and secret in
// constant time. Every failure, including an empty secret, wraps ErrBadSignature:
// a project without a secret accepts no deliveries.
func VerifySignature(headerValue string, body, secret []byte) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: the project has no webhook secret", ErrBadSignature)
	}
	if headerValue == "" {
		return fmt.Errorf("%w: no %s header", ErrBadSignature, SignatureHeader)
	}
	hexSig, ok := strings.CutPrefix(headerValue, signaturePrefix)
	if !ok {
		return fmt.Errorf("%w: %s must start with %q", ErrBadSignature, SignatureHeader, signaturePrefix)
	}
	if len(hexSig) != 2*sha256.Size {
		return fmt.Errorf("%w: %s is not a SHA-256 hex digest", ErrBadSignature, SignatureHeader)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return fmt.Errorf("%w: %s is not hex", ErrBadSignature, SignatureHeader)
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return fmt.Errorf("%w: signature does not match the body and the project's secret", ErrBadSignature)
	}
	return nil
}
