package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// oauthFake is the smallest GitHub that sign-in needs: the OAuth web flow (authorize
// approves at once) and GET /api/user. The auth service's unit tests have the full fake
// (services/auth/service/oauthfake_test.go); both move into libs/forge/github/githubtest.
type oauthFake struct {
	*httptest.Server
	mu     sync.Mutex
	codes  map[string]bool
	tokens []string
}

const (
	fakeClientID     = "Iv1.e2eclient"
	fakeClientSecret = "e2e-client-secret-value"
)

func newOAuthFake(t *testing.T) *oauthFake {
	f := &oauthFake{codes: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f.mu.Lock()
		code := fmt.Sprintf("e2e-code-%d", len(f.codes))
		f.codes[code] = true
		f.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.FormValue("client_id") != fakeClientID || r.FormValue("client_secret") != fakeClientSecret || !f.codes[r.FormValue("code")] {
			json.NewEncoder(w).Encode(map[string]string{"error": "bad_verification_code"})
			return
		}
		delete(f.codes, r.FormValue("code"))
		tok := fmt.Sprintf("gho_e2eGitHubAccessToken%04d", len(f.tokens))
		f.tokens = append(f.tokens, tok)
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "bearer", "scope": "repo"})
	})
	mux.HandleFunc("GET /api/user", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.tokens) == 0 || r.Header.Get("Authorization") != "Bearer "+f.tokens[len(f.tokens)-1] {
			http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"id": 9001, "login": "e2e-octocat"})
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// TestGitHubSignIn signs in to `simpleci dev` through a fake GitHub as a browser would
// (following redirects, with a cookie jar), then uses the session token on the API; the
// GitHub token shows up in no API answer, no log line and no file of the data directory.
func TestGitHubSignIn(t *testing.T) {
	gh := newOAuthFake(t)
	data := t.TempDir()
	secretFile := filepath.Join(t.TempDir(), "client-secret")
	if err := os.WriteFile(secretFile, []byte(fakeClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin, p := startDevWith(t, nil, data, nil, "--github-client-id", fakeClientID, "--github-client-secret-file", secretFile,
		"--github-url", gh.URL, "--github-api-url", gh.URL+"/api/")

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := browser.Get(admin.base + "/auth/github/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`<code id="token">(sci_[0-9a-f]+)</code>`).FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, page)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("the token page is cacheable: Cache-Control %q", cc)
	}
	user := &api{t: t, base: admin.base, token: string(m[1])}

	var answers [][]byte
	for _, path := range []string{"/api/v1/projects", "/api/v1/tokens"} {
		code, body := user.do("GET", path, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s with the session: %d %s", path, code, body)
		}
		answers = append(answers, body)
	}
	// A new user has an organisation of their own: the admin's demo project is not theirs.
	if strings.Contains(string(answers[0]), `"demo"`) {
		t.Fatalf("the new user sees the default organisation's projects: %s", answers[0])
	}
	if !strings.Contains(string(answers[1]), "github sign-in") {
		t.Fatalf("the session is not among the user's tokens: %s", answers[1])
	}
	// Signing out is revoking the session token.
	var list struct {
		Tokens []struct{ ID string }
	}
	json.Unmarshal(answers[1], &list)
	if len(list.Tokens) != 1 {
		t.Fatalf("tokens: %s", answers[1])
	}

	gh.mu.Lock()
	tokens := append([]string(nil), gh.tokens...)
	gh.mu.Unlock()
	if len(tokens) != 1 {
		t.Fatalf("the fake issued %d GitHub tokens, want 1", len(tokens))
	}
	secret := []byte(tokens[0])
	for i, a := range append(answers, page) {
		if bytes.Contains(a, secret) {
			t.Fatalf("answer %d shows the GitHub token", i)
		}
	}
	p.stop() // flushes the databases and the log
	logText, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(logText, secret) || bytes.Contains(logText, []byte(fakeClientSecret)) {
		t.Fatal("the service log holds the GitHub token or the client secret")
	}
	if !bytes.Contains(logText, []byte("github:e2e-octocat")) {
		t.Fatal("the sign-in is not logged")
	}
	err = filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // sockets, files of the sandbox owned by others
		}
		if bytes.Contains(b, secret) {
			return fmt.Errorf("%s holds the GitHub token in plain text", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
