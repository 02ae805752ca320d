package service_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// fakeGitHub is an httptest server speaking the parts of GitHub that sign-in uses: the
// OAuth web flow (/login/oauth/authorize approves at once and redirects back with a
// code; /login/oauth/access_token takes authorization_code and refresh_token grants) and
// GET /api/user. It is meant to move into the shared fake GitHub
// (libs/forge/github/githubtest) later.
type fakeGitHub struct {
	*httptest.Server
	clientID, secret string

	mu sync.Mutex
	// user is who signs in: GitHub id and login.
	userID int64
	login  string
	// expiresIn > 0 makes tokens expire (a GitHub App's user tokens), with refresh tokens.
	expiresIn int64
	// apiDown makes GET /api/user answer 503; exchangeDown makes the token endpoint 500.
	apiDown, exchangeDown bool
	// delay holds every token endpoint answer back (to make callers overlap).
	delay   time.Duration
	codes   map[string]bool   // issued, unspent codes
	tokens  map[string]string // access token → login
	refresh map[string]bool   // valid refresh tokens
	n       int
	issued  []string // every access and refresh token handed out
}

func newFakeGitHub(t *testing.T) *fakeGitHub {
	f := &fakeGitHub{clientID: "Iv1.fakeclient", secret: "fake-client-secret", userID: 4242, login: "octocat",
		codes: map[string]bool{}, tokens: map[string]string{}, refresh: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", f.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", f.accessToken)
	mux.HandleFunc("GET /api/user", f.user)
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func (f *fakeGitHub) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != f.clientID || q.Get("state") == "" || q.Get("redirect_uri") == "" {
		http.Error(w, "bad authorize request", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.n++
	code := fmt.Sprintf("code-%d", f.n)
	f.codes[code] = true
	f.mu.Unlock()
	http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
}

func (f *fakeGitHub) accessToken(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	delay := f.delay
	f.mu.Unlock()
	time.Sleep(delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.exchangeDown {
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Accept") != "application/json" || r.FormValue("client_id") != f.clientID || r.FormValue("client_secret") != f.secret {
		json.NewEncoder(w).Encode(map[string]string{"error": "incorrect_client_credentials"})
		return
	}
	switch r.FormValue("grant_type") {
	case "", "authorization_code":
		if !f.codes[r.FormValue("code")] {
			json.NewEncoder(w).Encode(map[string]string{"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."})
			return
		}
		delete(f.codes, r.FormValue("code"))
	case "refresh_token":
		if !f.refresh[r.FormValue("refresh_token")] {
			json.NewEncoder(w).Encode(map[string]string{"error": "bad_refresh_token"})
			return
		}
		delete(f.refresh, r.FormValue("refresh_token"))
	default:
		json.NewEncoder(w).Encode(map[string]string{"error": "unsupported_grant_type"})
		return
	}
	f.n++
	access := fmt.Sprintf("gho_fakeaccess%06dSECRET", f.n)
	f.tokens[access] = f.login
	f.issued = append(f.issued, access)
	ans := map[string]any{"access_token": access, "token_type": "bearer", "scope": "read:user,user:email,repo,admin:repo_hook"}
	if f.expiresIn > 0 {
		ref := fmt.Sprintf("ghr_fakerefresh%06dSECRET", f.n)
		f.refresh[ref] = true
		f.issued = append(f.issued, ref)
		ans["expires_in"], ans["refresh_token"], ans["refresh_token_expires_in"] = f.expiresIn, ref, 15811200
	}
	json.NewEncoder(w).Encode(ans)
}

func (f *fakeGitHub) user(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.apiDown {
		http.Error(w, `{"message":"unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) <= len(prefix) || f.tokens[h[len(prefix):]] == "" {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]string{"message": "Bad credentials"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"id": f.userID, "login": f.login, "type": "User"})
}

func (f *fakeGitHub) set(fn func(f *fakeGitHub)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeGitHub) issuedTokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.issued...)
}
