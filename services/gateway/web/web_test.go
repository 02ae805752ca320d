package web_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/services/gateway/web"
)

func serve(method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	web.Handler().ServeHTTP(w, r)
	return w
}

func TestDeepLinksServeThePage(t *testing.T) {
	for _, p := range []string{"/", "/signin", "/projects/demo", "/projects/demo/runs/01abc", "/projects/demo/secrets?x=1"} {
		w := serve("GET", p, nil)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `<script type="module" src="/assets/js/main.js">`) ||
			w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("GET %s: %d %q, want the UI's page", p, w.Code, w.Header().Get("Content-Type"))
		}
	}
}

func TestAssets(t *testing.T) {
	w := serve("GET", "/assets/js/main.js", nil)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" || !strings.Contains(w.Body.String(), "import") {
		t.Fatalf("main.js: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	if c := serve("GET", "/assets/app.css", nil); c.Header().Get("Content-Type") != "text/css; charset=utf-8" {
		t.Fatalf("app.css: %q", c.Header().Get("Content-Type"))
	}
	// Revalidation answers 304 with the same ETag.
	etag := w.Header().Get("ETag")
	if again := serve("GET", "/assets/js/main.js", map[string]string{"If-None-Match": etag}); etag == "" || again.Code != http.StatusNotModified {
		t.Fatalf("If-None-Match %q: %d, want 304", etag, again.Code)
	}
	// A missing module is a 404, never the page (which the browser would refuse as a script anyway).
	if w := serve("GET", "/assets/js/nope.js", nil); w.Code != http.StatusNotFound {
		t.Fatalf("missing asset: %d", w.Code)
	}
}

func TestReservedPathsAreNotThePage(t *testing.T) {
	for _, p := range []string{"/api/v1/nope", "/auth/github/login", "/openapi.json", "/healthz", "/readyz", "/metrics", "/api"} {
		if w := serve("GET", p, nil); w.Code != http.StatusNotFound || strings.Contains(w.Body.String(), "<html") {
			t.Errorf("GET %s: %d, want a plain 404", p, w.Code)
		}
	}
	if w := serve("POST", "/projects/demo", nil); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST to a page: %d %q", w.Code, w.Header().Get("Allow"))
	}
}

func TestSecurityHeaders(t *testing.T) {
	for _, p := range []string{"/", "/assets/js/main.js", "/api/v1/nope"} {
		h := serve("GET", p, nil).Header()
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", p, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q allows unsafe sources", p, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", p, h)
		}
	}
}

// The page has no inline script or style, which the CSP would block.
func TestNoInlineCode(t *testing.T) {
	body := serve("GET", "/", nil).Body.String()
	for _, bad := range []string{"<script>", "style=", "onclick=", "onload="} {
		if strings.Contains(body, bad) {
			t.Errorf("index.html has %q", bad)
		}
	}
}
