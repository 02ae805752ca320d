package forge

import (
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// MaxReasonLength bounds a message built from a forge error that users see (a
// run's reason, an API error): long enough for one sentence and a git line.
const MaxReasonLength = 512

// Bound cuts s to at most MaxReasonLength bytes on a character boundary, marking
// the cut, and replaces control characters (a git line could carry terminal
// escapes) with spaces.
func Bound(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
	return Truncate(s, MaxReasonLength)
}

// Truncate cuts s to at most limit bytes on a character boundary, ending it with
// " [...]" when it was cut.
func Truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	const mark = " [...]"
	cut := max(limit-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// credentialsRE finds the user-information part of a URL in free text.
var credentialsRE = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s'"]+@`)

// scpUserRE finds the user part of an scp-like address ("user:token@host:path").
var scpUserRE = regexp.MustCompile(`^[^/@\s'"]+@`)

// Redact returns a repository (or any text holding URLs) with the credentials
// of every URL in it replaced by "xxxxx", so a token never reaches a message,
// a log line or an API response.
func Redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil && u.Scheme != "" && !strings.ContainsAny(s, " \t\n") {
		u.User = url.User("xxxxx") // a lone user part is often the token itself
		return u.String()
	}
	if !strings.Contains(s, "://") {
		return scpUserRE.ReplaceAllString(s, "xxxxx@")
	}
	return credentialsRE.ReplaceAllString(s, "${1}xxxxx@")
}

// HasCredentials reports whether repo is a URL with a user name or password in
// it (https://user:token@host/x, https://token@host/x). ssh:// URLs may name
// the login user ("ssh://git@host/x"), which is no secret.
func HasCredentials(repo string) bool {
	if !strings.Contains(repo, "://") {
		user, _, found := strings.Cut(repo, "@")
		return found && strings.Contains(user, ":") && !strings.Contains(user, "/") // scp-like user:token@host:path
	}
	u, err := url.Parse(repo)
	if err != nil || u.User == nil {
		return credentialsRE.MatchString(repo) && !strings.HasPrefix(strings.ToLower(repo), "ssh://")
	}
	if _, hasPassword := u.User.Password(); hasPassword {
		return true
	}
	return !strings.EqualFold(u.Scheme, "ssh")
}
