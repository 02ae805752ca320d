package forge_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/simpleci/simpleci/libs/forge"
)

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:s3cret@example.com/x.git":                "https://xxxxx@example.com/x.git",
		"https://ghp_token@example.com/x":                      "https://xxxxx@example.com/x",
		"https://example.com/x":                                "https://example.com/x",
		"/srv/repos/app":                                       "/srv/repos/app",
		"fatal: unable to access 'https://u:pw@h/x/': refused": "fatal: unable to access 'https://xxxxx@h/x/': refused",
		"user:s3cret@example.com:x.git":                        "xxxxx@example.com:x.git",
	} {
		if got := forge.Redact(in); got != want || strings.Contains(got, "s3cret") || strings.Contains(got, "pw@") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	for repo, want := range map[string]bool{
		"https://user:secret@example.com/x": true, "https://token@example.com/x": true, "ssh://git@example.com/x": false,
		"ssh://git:pw@example.com/x": true, "https://example.com/x": false, "/srv/x": false,
		"user:token@example.com:x": true, "git@example.com:x": false, "/srv/a@b/x": false,
	} {
		if got := forge.HasCredentials(repo); got != want {
			t.Errorf("HasCredentials(%q) = %v, want %v", repo, got, want)
		}
	}
}

func TestBound(t *testing.T) {
	long := strings.Repeat("é", 600)
	b := forge.Bound(long)
	if len(b) > forge.MaxReasonLength || !utf8.ValidString(b) || !strings.HasSuffix(b, "[...]") {
		t.Errorf("Bound: %d bytes, valid %v: %q", len(b), utf8.ValidString(b), b[len(b)-10:])
	}
	if got := forge.Bound("a\x1b[31mb\nc"); got != "a [31mb c" {
		t.Errorf("control characters: %q", got)
	}
}
