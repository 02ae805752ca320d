package pipeline

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Step types besides a command step ("" in [Step.Type]).
const (
	TypeCacheFiles = "cache-files"
	TypeStoreFiles = "store-files"
)

// Limits of cache-files and store-files steps.
const (
	// MaxKeyLength bounds a rendered key or restore key, in bytes.
	MaxKeyLength = 256
	// MaxExpiry is the longest expiry a cache or artifact may ask for.
	MaxExpiry = 90 * 24 * time.Hour
	// MaxFileNames bounds the globs of one step.
	MaxFileNames = 64
)

// Files is the part of a cache-files or store-files step that says what
// to store (see PIPELINE.md). Paths are relative to the checkout, cleaned,
// never escaping it.
type Files struct {
	// Key names the cache entry or the artifact as written; it may hold
	// {{ }} templates: use Keys.
	Key string
	// RestoreKeys are prefixes tried, in order, when no entry has the
	// exact key (cache-files only); they may hold templates.
	RestoreKeys []string
	// DownloadPath is where a cache is restored, relative to the
	// checkout; "" is the checkout itself (cache-files only).
	DownloadPath string
	// FileNames are the globs of the files to store, relative to the
	// checkout: * and ? within a path element, ** for any number of
	// elements, a directory name for everything under it.
	FileNames []string
	// Expiry is how long the entry is kept after it is stored.
	Expiry time.Duration

	key     *Template
	restore []*Template
}

// filesFields are the fields only cache-files and store-files steps have.
var filesFields = []string{"key", "restoreKeys", "downloadPath", "fileNames", "expiry"}

// Keys renders the step's key and restore keys with v. The error is a
// [*RenderError] naming the step and the field.
func (f *Files) Keys(stepName string, v Vars) (key string, restore []string, err error) {
	var act *activation
	render := func(field, src string, t *Template) (string, error) {
		if t == nil || t.source != src {
			if t = compileForRender(src, Raw); t == nil {
				return "", &RenderError{Step: stepName, Field: field, Template: src, Msg: "does not compile"}
			}
		}
		out, rerr := t.render(&act, v)
		if rerr != nil {
			rerr.Step, rerr.Field = stepName, field
			return "", rerr
		}
		if msg := checkKey(out); msg != "" {
			return "", &RenderError{Step: stepName, Field: field, Template: src, Msg: "rendered to " + strconv.Quote(truncate(out, 64)) + ": " + msg}
		}
		return out, nil
	}
	if key, err = render("key", f.Key, f.key); err != nil {
		return "", nil, err
	}
	for i, src := range f.RestoreKeys {
		var t *Template
		if i < len(f.restore) {
			t = f.restore[i]
		}
		k, err := render(fmt.Sprintf("restoreKeys[%d]", i), src, t)
		if err != nil {
			return "", nil, err
		}
		restore = append(restore, k)
	}
	return key, restore, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// checkKey says what is wrong with a key, or "".
func checkKey(k string) string {
	switch {
	case strings.TrimSpace(k) == "":
		return "a key may not be empty"
	case len(k) > MaxKeyLength:
		return fmt.Sprintf("a key may have at most %d bytes, not %d", MaxKeyLength, len(k))
	}
	for _, r := range k {
		if !unicode.IsPrint(r) {
			return fmt.Sprintf("a key may not contain the character %q", r)
		}
	}
	return ""
}

// ParseExpiry reads an expiry: a whole number of days ("7d") or a Go
// duration ("12h", "90m").
func ParseExpiry(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 || n[0] == '+' {
			return 0, fmt.Errorf("%q is not an expiry such as \"7d\" or \"12h\"", s)
		}
		if days > int(MaxExpiry/(24*time.Hour)) {
			return 0, fmt.Errorf("expiry %s exceeds the limit of %dd", s, MaxExpiry/(24*time.Hour))
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not an expiry such as \"7d\" or \"12h\"", s)
	case d < time.Minute:
		return 0, fmt.Errorf("expiry %q must be at least a minute", s)
	case d > MaxExpiry:
		return 0, fmt.Errorf("expiry %s exceeds the limit of %dd", s, MaxExpiry/(24*time.Hour))
	}
	return d, nil
}

// CleanGlob checks a glob of fileNames and returns it cleaned, or says
// why it is refused: an absolute path, or one that climbs out of the
// checkout with "..".
func CleanGlob(g string) (string, error) {
	switch {
	case strings.TrimSpace(g) == "":
		return "", fmt.Errorf("is empty")
	case strings.ContainsRune(g, 0):
		return "", fmt.Errorf("contains a NUL character")
	case strings.HasPrefix(g, "/"):
		return "", fmt.Errorf("%q must be relative to the checkout", g)
	}
	for _, el := range strings.Split(g, "/") {
		if el == ".." {
			return "", fmt.Errorf("%q leaves the checkout (..)", g)
		}
	}
	c := path.Clean(g)
	if c == "." {
		return "", fmt.Errorf("%q names the whole checkout; name the files or directories to store", g)
	}
	if _, err := path.Match(strings.ReplaceAll(c, "**", "*"), ""); err != nil {
		return "", fmt.Errorf("%q is not a valid glob: %v", g, err)
	}
	return c, nil
}

// files validates the fields of a cache-files or store-files step.
func (p *parser) files(s *Step, ms []member, obj *node) {
	f := &Files{}
	s.Files = f
	var sawKey, sawNames, sawExpiry bool
	for _, m := range ms {
		v := m.val
		switch m.key {
		case "run", "env", "workingDirectory":
			p.errorf(m.keyOff, "%q is not allowed in a %s step (it runs no command)", m.key, s.Type)
		case "key":
			sawKey = true
			if v.kind != kindString {
				p.wrongType("key", v, "a string")
				continue
			}
			if v.str == "" || (!strings.Contains(v.str, "{{") && checkKey(v.str) != "") {
				p.errorf(v.off, "key: %s", cmpOr(checkKey(v.str), "a key may not be empty"))
				continue
			}
			f.Key, f.key = v.str, p.template(v, "key", Raw)
		case "restoreKeys":
			if s.Type != TypeCacheFiles {
				p.errorf(m.keyOff, "\"restoreKeys\" belongs to cache-files steps")
				continue
			}
			for i, el := range p.stringList("restoreKeys", v) {
				if !strings.Contains(el.str, "{{") && checkKey(el.str) != "" {
					p.errorf(el.off, "restoreKeys[%d]: %s", i, checkKey(el.str))
					continue
				}
				f.RestoreKeys = append(f.RestoreKeys, el.str)
				f.restore = append(f.restore, p.template(el, fmt.Sprintf("restoreKeys[%d]", i), Raw))
			}
		case "downloadPath":
			if s.Type != TypeCacheFiles {
				p.errorf(m.keyOff, "\"downloadPath\" belongs to cache-files steps (artifacts are downloaded through the API)")
				continue
			}
			f.DownloadPath = p.relativeDir("downloadPath", v)
		case "fileNames":
			sawNames = true
			els := p.stringList("fileNames", v)
			if v.kind == kindArray && len(v.elems) == 0 {
				p.errorf(v.off, "\"fileNames\" is empty: name at least one file or glob")
			}
			if len(els) > MaxFileNames {
				p.errorf(v.off, "\"fileNames\" has %d globs, more than %d", len(els), MaxFileNames)
				continue
			}
			for i, el := range els {
				g, err := CleanGlob(el.str)
				if err != nil {
					p.errorf(el.off, "fileNames[%d]: %v", i, err)
					continue
				}
				f.FileNames = append(f.FileNames, g)
			}
		case "expiry":
			sawExpiry = true
			if v.kind != kindString {
				p.wrongType("expiry", v, `a string such as "7d" or "12h"`)
				continue
			}
			d, err := ParseExpiry(v.str)
			if err != nil {
				p.errorf(v.off, "expiry: %v", err)
			}
			f.Expiry = d
		}
	}
	if !sawKey {
		p.errorf(obj.off, "missing \"key\": a %s step names what it stores", s.Type)
	}
	if !sawNames {
		p.errorf(obj.off, "missing \"fileNames\": the files or globs to store")
	}
	if !sawExpiry {
		p.errorf(obj.off, "missing \"expiry\": how long to keep what the step stores, such as \"7d\"")
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// stringList returns the string elements of a list field, reporting the
// others.
func (p *parser) stringList(field string, v *node) []*node {
	if v.kind != kindArray {
		p.wrongType(field, v, "a list of strings")
		return nil
	}
	out := make([]*node, 0, len(v.elems))
	for i, el := range v.elems {
		if el.kind != kindString {
			p.errorf(el.off, "%s[%d] must be a string, not %s", field, i, p.kind(el))
			continue
		}
		out = append(out, el)
	}
	return out
}
