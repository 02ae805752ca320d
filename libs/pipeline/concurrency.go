package pipeline

import (
	"fmt"
	"strconv"
	"strings"
)

// concurrencyFields are the fields of "concurrency"; the JSON Schema lists the same.
var concurrencyFields = []string{"key", "limit", "cancelInProgress"}

// Bounds of "concurrency": the key's length (as written, and rendered) and its limit.
const (
	MaxConcurrencyKey   = 256
	MaxConcurrencyLimit = 100
)

// Concurrency is the pipeline's "concurrency": runs of a project whose rendered Key is the
// same run at most Limit at once, in the order they were created; with CancelInProgress a
// new run cancels the older runs of its key.
type Concurrency struct {
	// Key is the key as written: a template over context and env (Raw quoting).
	Key string
	// Limit is how many runs of one key may run at once (at least 1; 1 when absent).
	Limit int
	// CancelInProgress makes a new run cancel the running and queued runs of its key.
	CancelInProgress bool
	// Pos is where "concurrency" starts in the file.
	Pos Position

	key *Template
}

// RenderKey renders the key with v (context, env) and checks the result: not empty,
// at most MaxConcurrencyKey bytes, a single line. The error names the field.
func (c *Concurrency) RenderKey(v Vars) (string, error) {
	t := c.key
	if t == nil || t.source != c.Key {
		var err error
		if t, err = CompileTemplate(c.Key, Raw); err != nil {
			return "", fmt.Errorf("concurrency.key: %w", err)
		}
	}
	k, err := t.Render(v)
	if err != nil {
		if re, ok := err.(*RenderError); ok {
			re.Field = "concurrency.key"
			return "", re
		}
		return "", err
	}
	switch {
	case strings.TrimSpace(k) == "":
		return "", fmt.Errorf("concurrency.key: %q renders to an empty key", c.Key)
	case len(k) > MaxConcurrencyKey:
		return "", fmt.Errorf("concurrency.key: %q renders to %d bytes (at most %d)", c.Key, len(k), MaxConcurrencyKey)
	case strings.ContainsAny(k, "\r\n"):
		return "", fmt.Errorf("concurrency.key: %q renders to more than one line", c.Key)
	}
	return k, nil
}

// concurrency reads "concurrency": an object with "key" and optionally "limit" and
// "cancelInProgress".
func (p *parser) concurrency(v *node) *Concurrency {
	if v.kind != kindObject {
		p.wrongType("concurrency", v, p.object()+" with \"key\" (and optionally \"limit\", \"cancelInProgress\")")
		return nil
	}
	c := &Concurrency{Limit: 1, Pos: p.li.pos(v.off)}
	var sawKey bool
	for _, f := range p.members(v, "field") {
		switch f.key {
		case "key":
			sawKey = true
			switch {
			case f.val.kind != kindString:
				p.errorf(f.val.off, "concurrency: \"key\" must be a string such as \"deploy-{{ context.branch }}\", not %s", p.kind(f.val))
			case strings.TrimSpace(f.val.str) == "":
				p.errorf(f.val.off, "concurrency: \"key\" is empty: name the group, e.g. \"deploy-{{ context.branch }}\"")
			case len(f.val.str) > MaxConcurrencyKey:
				p.errorf(f.val.off, "concurrency: \"key\" is %d bytes (at most %d)", len(f.val.str), MaxConcurrencyKey)
			case strings.ContainsAny(f.val.str, "\r\n"):
				p.errorf(f.val.off, "concurrency: \"key\" must be a single line")
			default:
				c.Key = f.val.str
				c.key = p.template(f.val, "concurrency.key", Raw)
			}
		case "limit":
			n, err := strconv.Atoi(f.val.str)
			if f.val.kind != kindNumber || err != nil || n < 1 || n > MaxConcurrencyLimit {
				p.errorf(f.val.off, "concurrency: \"limit\" must be a whole number from 1 to %d (how many runs of a key may run at once), not %s",
					MaxConcurrencyLimit, p.valueText(f.val))
			} else {
				c.Limit = n
			}
		case "cancelInProgress":
			if f.val.kind != kindBool {
				p.errorf(f.val.off, "concurrency: \"cancelInProgress\" must be true or false, not %s", p.kind(f.val))
			} else {
				c.CancelInProgress = f.val.boolean
			}
		default:
			p.unknownField(f, concurrencyFields, map[string]string{"group": "key", "cancel-in-progress": "cancelInProgress",
				"max": "limit", "maxRuns": "limit"})
		}
	}
	if !sawKey {
		p.errorf(v.off, "concurrency: missing \"key\", e.g. \"deploy-{{ context.branch }}\"")
		return nil
	}
	return c
}

// valueText shows a scalar as written (a number), or what kind of value it is.
func (p *parser) valueText(n *node) string {
	if n.kind == kindNumber {
		return n.str
	}
	return p.kind(n)
}
