package service

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAuthProxy(t *testing.T) {
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/auth/github/login" || r.URL.RawQuery != "next=%2F" || r.Header.Get("X-Forwarded-Host") == "" {
			http.Error(w, "unexpected "+r.URL.String(), http.StatusTeapot)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "simpleci_github_state", Value: "s", Path: "/auth/github/", HttpOnly: true})
		http.Redirect(w, r, "https://github.example/login/oauth/authorize?state=s", http.StatusFound)
	}))
	target, err := ParseAuthHTTPURL(auth.URL)
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(authProxy(target, slog.New(slog.DiscardHandler)))
	defer gw.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(gw.URL + "/auth/github/login?next=%2F")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "https://github.example/") ||
		!strings.Contains(resp.Header.Get("Set-Cookie"), "simpleci_github_state=s") {
		t.Errorf("forwarded login: %d, Location %q, Set-Cookie %q", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Set-Cookie"))
	}

	auth.Close() // the auth service is down: 502 with a JSON error, nothing else
	resp, err = client.Get(gw.URL + "/auth/github/callback?code=c&state=s")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "auth service did not answer") {
		t.Errorf("auth service down: %d %s", resp.StatusCode, body)
	}
}

func TestParseAuthHTTPURL(t *testing.T) {
	for _, bad := range []string{"", "127.0.0.1:8101", "ftp://h/", "http://", "http://u:p@h:1", "http://h:1/?q=1", "http://h:1/#f"} {
		if _, err := ParseAuthHTTPURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "u:p") {
			t.Errorf("%q: the error shows the credentials: %v", bad, err)
		}
	}
	if u, err := ParseAuthHTTPURL("http://127.0.0.1:8101"); err != nil || u.Host != "127.0.0.1:8101" {
		t.Errorf("good URL: %v, %v", u, err)
	}
}
