package forge_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/forge"
)

func TestSign(t *testing.T) {
	// The value GitHub documents for secret "It's a Secret to Everybody" and body "Hello, World!".
	got := forge.Sign([]byte("It's a Secret to Everybody"), []byte("Hello, World!"))
	want := "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerifySignature(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"ref":"refs/heads/main"}`)
	good := forge.Sign(secret, body)
	hexPart := strings.TrimPrefix(good, "sha256=")
	tests := []struct {
		name   string
		header string
		body   []byte
		secret []byte
		ok     bool
	}{
		{"good", good, body, secret, true},
		{"upper-case hex", "sha256=" + strings.ToUpper(hexPart), body, secret, true},
		{"wrong secret", forge.Sign([]byte("other"), body), body, secret, false},
		{"body changed", good, append([]byte(" "), body...), secret, false},
		{"missing", "", body, secret, false},
		{"no secret configured", forge.Sign(nil, body), body, nil, false},
		{"wrong prefix sha1", "sha1=" + hexPart, body, secret, false},
		{"no prefix", hexPart, body, secret, false},
		{"prefix only", "sha256=", body, secret, false},
		{"not hex", "sha256=" + strings.Repeat("zz", 32), body, secret, false},
		{"truncated", good[:len(good)-2], body, secret, false},
		{"too long", good + "00", body, secret, false},
		{"spaces", " " + good, body, secret, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := forge.VerifySignature(tt.header, tt.body, tt.secret)
			if tt.ok && err != nil {
				t.Fatalf("want ok, got %v", err)
			}
			if !tt.ok && !errors.Is(err, forge.ErrBadSignature) {
				t.Fatalf("want ErrBadSignature, got %v", err)
			}
		})
	}
}
