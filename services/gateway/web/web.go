// Package web serves SimpleCI's web UI: plain ES modules and CSS embedded in the
// binary (no build step, ADR 21). The UI is a client of the public REST API only; it
// holds the caller's API token in the browser and sends it as a bearer token.
//
// Every path the API and the node do not own serves the UI: a file under /assets/ as
// itself, anything else index.html, so that a deep link such as
// /projects/demo/runs/ID#step-2-L40 opens the page it names (the UI routes in the
// browser). Every answer carries strict security headers (a CSP allowing only this
// origin's scripts and styles, no framing, no sniffing, no referrer).
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed ui
var files embed.FS

// CSP is the Content-Security-Policy of every UI answer: scripts, styles and API calls
// from this origin only, no inline script or style attribute, no plugins, no framing.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// reserved are the path prefixes the UI never answers for with index.html: they belong
// to the API and the node, and an unknown path there is a plain 404.
var reserved = []string{"/api/", "/auth/", "/openapi.json", "/healthz", "/readyz", "/metrics"}

type file struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the UI (see the package comment).
func Handler() http.Handler {
	sub, err := fs.Sub(files, "ui")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	byPath := map[string]file{}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		byPath["/"+p] = file{body: b, ctype: contentType(p), etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		return nil
	})
	if err != nil {
		panic(err)
	}
	index := byPath["/index.html"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		p := path.Clean("/" + r.URL.Path)
		for _, pre := range reserved {
			if p == strings.TrimSuffix(pre, "/") || strings.HasPrefix(p, pre) {
				http.NotFound(w, r)
				return
			}
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		f, ok := byPath[p]
		switch {
		case ok && p != "/index.html":
		case strings.HasPrefix(p, "/assets/"):
			http.NotFound(w, r) // a missing script must fail, not load the page as one
			return
		default:
			f = index
		}
		w.Header().Set("Content-Type", f.ctype)
		// Revalidated every time (cheap: the ETag answers 304), so a new binary's UI is
		// never mixed with an old one's cached modules.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", f.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	})
}

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}
