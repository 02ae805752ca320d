package engine

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"strings"
	"testing"
)

// FuzzMask checks the masker on fuzzed secrets and output: it never
// panics, cutting the output into pieces never changes the result, and no
// value that must be masked (a secret, its base64 forms, the long lines of
// a multi-line secret) survives in the output. Values containing the mask
// character '*' are not checked: "***" next to other output can spell
// them.
//
// In text, the bytes 0x01 to 0x04 stand for the first secret, its base64
// form, the second secret and the second secret's first line, so that the
// fuzzer's inputs contain secrets more often than chance would.
func FuzzMask(f *testing.F) {
	f.Add("s3cr3t-value", "hunter22", "token=\x01 b64=\x02 other=\x03\n", uint64(1))
	f.Add("-----BEGIN KEY-----\nMIIEvQIBADANBgkq\n-----END KEY-----", "abc", "key:\n\x01\nline: \x04\n\x02", uint64(7))
	f.Add("aaaa", "aaaaaaaa", "aaaaaaaaaaaaa\x01\x03\x01", uint64(3))
	f.Add("ab", "abcdef", "abcdeabcdef\x01\x03", uint64(99))
	f.Add("x", "", "x\x01x", uint64(0))
	f.Add("line one\r\nline two", "tw", "\x04\r\n\x03 \x01", uint64(12345))
	f.Fuzz(func(t *testing.T, secretA, secretB, text string, seed uint64) {
		if len(secretA) > 200 || len(secretB) > 200 || len(text) > 4000 {
			return
		}
		firstLine, _, _ := strings.Cut(secretB, "\n")
		in := strings.NewReplacer(
			"\x01", secretA,
			"\x02", base64.StdEncoding.EncodeToString([]byte(secretA)),
			"\x03", secretB,
			"\x04", firstLine,
		).Replace(text)
		secrets := []string{secretA, secretB}
		values := maskValues(secrets)

		whole := maskAll(secrets, in)
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		var pieces []string
		for rest := in; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(max(1, min(len(rest), 64))))
			pieces, rest = append(pieces, rest[:n]), rest[n:]
		}
		split := maskAll(secrets, pieces...)
		if split != whole {
			t.Fatalf("pieces change the result\nsecrets %q\ninput %q\npieces %q\nwhole %q\nsplit %q", secrets, in, pieces, whole, split)
		}
		for _, v := range values {
			if !bytes.Contains(v, mask[:1]) && strings.Contains(whole, string(v)) {
				t.Fatalf("%q survives masking\nsecrets %q\ninput %q\noutput %q", v, secrets, in, whole)
			}
		}
		if len(values) == 0 && whole != in {
			t.Fatalf("no secrets, yet the output changed: %q -> %q", in, whole)
		}
	})
}
