package forge_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/forge"
)

func TestValidateSHA(t *testing.T) {
	tests := []struct {
		sha string
		ok  bool
	}{
		{strings.Repeat("a", 40), true},
		{"0123456789abcdef0123456789abcdef01234567", true},
		{strings.Repeat("A", 40), false},
		{strings.Repeat("a", 39), false},
		{strings.Repeat("a", 41), false},
		{strings.Repeat("a", 64), false},
		{strings.Repeat("g", 40), false},
		{"", false},
		{"--output=/tmp/x" + strings.Repeat("a", 25), false},
		{"HEAD", false},
	}
	for _, tt := range tests {
		err := forge.ValidateSHA(tt.sha)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, forge.ErrInvalid)) {
			t.Errorf("ValidateSHA(%q) = %v, want ok=%v", tt.sha, err, tt.ok)
		}
	}
}

func TestValidateRef(t *testing.T) {
	tests := []struct {
		ref string
		ok  bool
	}{
		{"refs/heads/main", true},
		{"refs/heads/feature/x-1.2", true},
		{"refs/tags/v1.0.0", true},
		{"main", true},
		{"HEAD", true},
		{"refs/pull/12/head", true},
		{"refs/heads/ünïcode", true},
		{"", false},
		{"refs/heads/../../etc/passwd", false},
		{"refs/heads/a..b", false},
		{"refs/heads/a b", false},
		{"refs/heads/a\x00b", false},
		{"refs/heads/a\nb", false},
		{"refs/heads/a\x7fb", false},
		{"refs/heads/a~1", false},
		{"refs/heads/a^", false},
		{"refs/heads/a:b", false},
		{"refs/heads/a?", false},
		{"refs/heads/a*", false},
		{"refs/heads/a[", false},
		{`refs/heads/a\b`, false},
		{"refs/heads/a@{1}", false},
		{"@", false},
		{"-x", false},
		{"--upload-pack=touch /tmp/x", false},
		{"/refs/heads/main", false},
		{"refs/heads/main/", false},
		{"refs/heads/main.", false},
		{"refs//heads", false},
		{"refs/heads/.hidden", false},
		{"refs/heads/x.lock", false},
		{"refs/heads/" + strings.Repeat("a", 300), false},
	}
	for _, tt := range tests {
		err := forge.ValidateRef(tt.ref)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, forge.ErrInvalid)) {
			t.Errorf("ValidateRef(%q) = %v, want ok=%v", tt.ref, err, tt.ok)
		}
	}
}

func TestValidatePath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{".simpleci/pipeline.json", true},
		{"README.md", true},
		{"a/b/c.txt", true},
		{"dir with space/f", true},
		{"a:b", true},
		{"", false},
		{"/etc/passwd", false},
		{"../etc/passwd", false},
		{"a/../../etc/passwd", false},
		{"a/..", false},
		{"..", false},
		{".", false},
		{"./a", false},
		{"a//b", false},
		{"a/", false},
		{`a\..\b`, false},
		{"a\x00b", false},
		{"a\nb", false},
		{"-rf", false},
		{strings.Repeat("a/", 3000), false},
	}
	for _, tt := range tests {
		err := forge.ValidatePath(tt.path)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, forge.ErrInvalid)) {
			t.Errorf("ValidatePath(%q) = %v, want ok=%v", tt.path, err, tt.ok)
		}
	}
}
