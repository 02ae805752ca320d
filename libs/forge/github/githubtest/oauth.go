package githubtest

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// User is the GitHub account that signs in through the fake's OAuth web flow.
type User struct {
	ID    int64
	Login string
}

// Knobs change how the fake answers; set them with Server.Set.
type Knobs struct {
	// TokenLifetime > 0 makes the OAuth flow's access tokens expire (expires_in) and
	// come with refresh tokens, as a GitHub App's expiring user tokens do.
	TokenLifetime time.Duration
	// TokenEndpointDown makes /login/oauth/access_token answer 500.
	TokenEndpointDown bool
	// UserDown makes GET /user and GET /user/repos answer 503.
	UserDown bool
	// TokenDelay holds every answer of the token endpoint back (to make callers overlap).
	TokenDelay time.Duration
	// MaxPerPage caps per_page of GET /user/repos (GitHub's cap is 100; 0 means 100).
	MaxPerPage int
}

// Set changes the fake's knobs (and the signing-in user) under its lock.
func (s *Server) Set(fn func(k *Knobs, u *User)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.knobs, &s.user)
}

// EnableOAuth makes the fake an OAuth App (or GitHub App) with clientID and secret that
// user signs in to: /login/oauth/authorize approves at once.
func (s *Server) EnableOAuth(clientID, secret string, user User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clientID, s.clientSecret, s.user = clientID, secret, user
}

// IssuedTokens returns every access and refresh token the OAuth flow handed out, oldest first.
func (s *Server) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// RevokeAccessTokens makes every access token the OAuth flow issued so far unusable
// (the user revoked the app): the API answers them 401.
func (s *Server) RevokeAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.userTokens = map[string]time.Time{}
}

// RevokeRefreshTokens makes every refresh token issued so far unusable.
func (s *Server) RevokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh = map[string]bool{}
}

// authorize approves at once and redirects back with a code, as GitHub does once the
// user has authorised the app:
// https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps#web-application-flow
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	ok := s.clientID != "" && q.Get("client_id") == s.clientID
	var code string
	if ok {
		s.n++
		code = fmt.Sprintf("fake-code-%d", s.n)
		s.codes[code] = true
	}
	s.mu.Unlock()
	if !ok || q.Get("state") == "" || q.Get("redirect_uri") == "" {
		http.Error(w, "bad authorize request", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
}

// accessToken is the token endpoint: the authorization_code grant (web flow) and the
// refresh_token grant of expiring user tokens. GitHub answers a refused grant with 200
// and an "error" member, e.g. bad_verification_code:
// https://docs.github.com/en/apps/oauth-apps/maintaining-oauth-apps/troubleshooting-oauth-app-access-token-request-errors
// https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens
func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	delay := s.knobs.TokenDelay
	s.mu.Unlock()
	time.Sleep(delay)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.knobs.TokenEndpointDown {
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	}
	if s.clientID == "" || r.Header.Get("Accept") != "application/json" || r.PostForm.Get("client_id") != s.clientID ||
		subtle.ConstantTimeCompare([]byte(r.PostForm.Get("client_secret")), []byte(s.clientSecret)) != 1 {
		writeJSON(w, http.StatusOK, map[string]string{"error": "incorrect_client_credentials",
			"error_description": "The client_id and/or client_secret passed are incorrect."})
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "", "authorization_code":
		code := r.PostForm.Get("code")
		if !s.codes[code] {
			writeJSON(w, http.StatusOK, map[string]string{"error": "bad_verification_code",
				"error_description": "The code passed is incorrect or expired."})
			return
		}
		delete(s.codes, code)
	case "refresh_token":
		ref := r.PostForm.Get("refresh_token")
		if !s.refresh[ref] {
			writeJSON(w, http.StatusOK, map[string]string{"error": "bad_refresh_token",
				"error_description": "The refresh token passed is incorrect or expired."})
			return
		}
		delete(s.refresh, ref)
	default:
		writeJSON(w, http.StatusOK, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	s.n++
	access := fmt.Sprintf("gho_fake%06d_access_token", s.n)
	var expires time.Time
	if s.knobs.TokenLifetime > 0 {
		expires = time.Now().Add(s.knobs.TokenLifetime)
	}
	s.userTokens[access] = expires
	s.issued = append(s.issued, access)
	ans := map[string]any{"access_token": access, "token_type": "bearer", "scope": "read:user,user:email,repo,admin:repo_hook"}
	if s.knobs.TokenLifetime > 0 {
		ref := fmt.Sprintf("ghr_fake%06d_refresh_token", s.n)
		s.refresh[ref] = true
		s.issued = append(s.issued, ref)
		ans["expires_in"], ans["refresh_token"], ans["refresh_token_expires_in"] = int64(s.knobs.TokenLifetime/time.Second), ref, 15811200
	}
	writeJSON(w, http.StatusOK, ans)
}

// userToken reports whether tok is an unexpired token of the OAuth flow. Callers hold s.mu.
func (s *Server) userToken(tok string) bool {
	exp, ok := s.userTokens[tok]
	return ok && (exp.IsZero() || time.Now().Before(exp))
}

// authUser answers GET /user: the signed-in user
// (https://docs.github.com/en/rest/users/users#get-the-authenticated-user).
func (s *Server) authUser(w http.ResponseWriter) {
	s.mu.Lock()
	u, down := s.user, s.knobs.UserDown
	s.mu.Unlock()
	if down {
		apiError(w, http.StatusServiceUnavailable, "Service Unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": u.ID, "login": u.Login, "type": "User",
		"html_url": s.URL + "/" + u.Login})
}
