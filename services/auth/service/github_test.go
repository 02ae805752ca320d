package service_test

import (
	"bytes"
	"io"
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

	"github.com/simpleci/simpleci/libs/forge/github/githubtest"
	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/libs/platform/seal"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	. "github.com/simpleci/simpleci/services/auth/service"
)

// signInRig is the auth service with sign-in with GitHub against a fake GitHub, served
// at srv (the public URL), and a clock the test moves.
type signInRig struct {
	t   *testing.T
	s   *Service
	db  *sqldb.DB
	cfg GitHubConfig
	g   *SignIn
	gh  *githubtest.Server
	srv *httptest.Server
	mu  sync.Mutex
	now time.Time
}

// The OAuth App the fake GitHub knows, and who signs in.
const (
	fakeClientID     = "Iv1.fakeclient"
	fakeClientSecret = "fake-client-secret"
)

func newFakeGitHub(t *testing.T) *githubtest.Server {
	gh := githubtest.New(t, "ghp_operator_token_unused_here")
	gh.EnableOAuth(fakeClientID, fakeClientSecret, githubtest.User{ID: 4242, Login: "octocat"})
	return gh
}

func newSignInRig(t *testing.T, db *sqldb.DB) *signInRig {
	s, err := New(testCtx(t), db)
	if err != nil {
		t.Fatal(err)
	}
	r := &signInRig{t: t, s: s, db: db, gh: newFakeGitHub(t), now: time.Unix(1_800_000_000, 0)}
	s.Now = func() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.now }
	keys, err := seal.Parse("k1:" + strings.Repeat("A", 43) + "=")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	r.cfg = GitHubConfig{ClientID: fakeClientID, ClientSecret: fakeClientSecret, WebURL: r.gh.URL,
		APIURL: r.gh.APIURL(), PublicURL: r.srv.URL + "/", Keys: keys}
	r.g, err = NewSignIn(s, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.g.Register(mux)
	return r
}

func (r *signInRig) advance(d time.Duration) { r.mu.Lock(); r.now = r.now.Add(d); r.mu.Unlock() }

// browser is a client with a cookie jar; follow says whether it follows redirects.
func browser(t *testing.T, follow bool) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

func get(t *testing.T, c *http.Client, u string) (int, string, *http.Response) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}

var sessionToken = regexp.MustCompile(`<code id="token">(sci_[0-9a-f]+)</code>`)

// signIn runs the whole flow as a browser and returns the session token.
func (r *signInRig) signIn() string {
	r.t.Helper()
	code, body, _ := get(r.t, browser(r.t, true), r.srv.URL+"/auth/github/login")
	m := sessionToken.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		r.t.Fatalf("sign-in: %d %s", code, body)
	}
	return m[1]
}

// start begins a sign-in without following GitHub's redirect: the browser (holding the
// state cookie) and the callback URL GitHub would send it to.
func (r *signInRig) start() (*http.Client, string) {
	r.t.Helper()
	c := browser(r.t, false)
	code, body, resp := get(r.t, c, r.srv.URL+"/auth/github/login")
	if code != http.StatusFound {
		r.t.Fatalf("login: %d %s", code, body)
	}
	authorize := resp.Header.Get("Location")
	u, _ := url.Parse(authorize)
	q := u.Query()
	if !strings.HasPrefix(authorize, r.gh.URL+"/login/oauth/authorize?") || q.Get("client_id") != fakeClientID ||
		q.Get("redirect_uri") != r.srv.URL+"/auth/github/callback" || q.Get("scope") != DefaultGitHubScopes || len(q.Get("state")) != 64 {
		r.t.Fatalf("login redirects to %s", authorize)
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == StateCookie {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Value != q.Get("state") || cookie.MaxAge != 600 {
		r.t.Fatalf("state cookie %+v", cookie)
	}
	code, body, resp = get(r.t, c, authorize)
	if code != http.StatusFound {
		r.t.Fatalf("authorize: %d %s", code, body)
	}
	return c, resp.Header.Get("Location")
}

func (r *signInRig) principal(token string) *authv1.Principal {
	r.t.Helper()
	p, err := r.s.VerifyToken(testCtx(r.t), &authv1.VerifyTokenRequest{Token: token})
	if err != nil {
		r.t.Fatalf("session token: %v", err)
	}
	return p
}

func (r *signInRig) count(table string) int {
	r.t.Helper()
	var n int
	if err := r.db.QueryRowContext(testCtx(r.t), `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
		r.t.Fatal(err)
	}
	return n
}

// wantRefused checks a refused callback: the status, the message, and nothing created.
func (r *signInRig) wantRefused(c *http.Client, u string, status int, msg string) {
	r.t.Helper()
	users, tokens := r.count("auth_users"), r.count("auth_tokens")
	code, body, _ := get(r.t, c, u)
	if code != status || !strings.Contains(body, msg) {
		r.t.Fatalf("callback %s: got %d %q, want %d with %q", u, code, body, status, msg)
	}
	if r.count("auth_users") != users || r.count("auth_tokens") != tokens {
		r.t.Fatalf("a refused sign-in created a user or a token")
	}
}

func TestGitHubSignIn(t *testing.T) {
	dialects(t, func(t *testing.T, db *sqldb.DB) {
		r := newSignInRig(t, db)
		first := r.principal(r.signIn())
		if first.GetLogin() != "github:octocat" || first.GetAdmin() || first.GetUserId() == "" || !first.GetExpiresAt().AsTime().Equal(r.now.Add(SessionLifetime)) {
			t.Fatalf("first sign-in: %+v", first)
		}
		var org string
		if err := db.QueryRowContext(testCtx(t), db.Q(`SELECT name FROM auth_orgs WHERE id = ?`), first.GetOrgId()).Scan(&org); err != nil || org != "github-user-4242" {
			t.Fatalf("own organisation: %q %v", org, err)
		}
		if first.GetRole() != "owner" {
			t.Fatalf("role in its own organisation %q, want owner", first.GetRole())
		}
		again := r.principal(r.signIn())
		if again.GetUserId() != first.GetUserId() || again.GetOrgId() != first.GetOrgId() || again.GetTokenId() == first.GetTokenId() {
			t.Fatalf("second sign-in: %+v, first %+v", again, first)
		}
		// A renamed GitHub account stays the same user, under its new login; another
		// account taking the old login later gets it.
		r.gh.Set(func(_ *githubtest.Knobs, u *githubtest.User) { u.Login = "hubot" })
		renamed := r.principal(r.signIn())
		if renamed.GetUserId() != first.GetUserId() || renamed.GetLogin() != "github:hubot" {
			t.Fatalf("after the rename: %+v", renamed)
		}
		r.gh.Set(func(_ *githubtest.Knobs, u *githubtest.User) { u.ID, u.Login = 777, "octocat" })
		other := r.principal(r.signIn())
		if other.GetUserId() == first.GetUserId() || other.GetOrgId() == first.GetOrgId() || other.GetLogin() != "github:octocat" {
			t.Fatalf("another account: %+v", other)
		}
		if n := r.count("auth_github_accounts"); n != 2 {
			t.Fatalf("%d GitHub accounts, want 2", n)
		}
		// Session tokens are ordinary API tokens: listed, revocable.
		if n := r.count("auth_tokens"); n != 4 {
			t.Fatalf("%d tokens, want 4 sessions", n)
		}
	})
}

func TestGitHubSignInState(t *testing.T) {
	r := newSignInRig(t, openSQLite(t))
	t.Run("missing", func(t *testing.T) {
		c, cb := r.start()
		r.wantRefused(c, withParam(cb, "state", ""), http.StatusBadRequest, "no state parameter")
	})
	t.Run("mismatch", func(t *testing.T) {
		c, cb := r.start()
		r.wantRefused(c, withParam(cb, "state", strings.Repeat("0", 64)), http.StatusBadRequest, "does not match")
	})
	t.Run("another browser", func(t *testing.T) {
		// Login CSRF: a callback URL (the attacker's code and state) opened in the victim's
		// browser, which holds no state cookie.
		_, cb := r.start()
		r.wantRefused(browser(t, false), cb, http.StatusBadRequest, "no sign-in in progress")
	})
	t.Run("expired", func(t *testing.T) {
		c, cb := r.start()
		r.advance(StateLifetime + time.Second)
		r.wantRefused(c, cb, http.StatusBadRequest, "expired")
	})
	t.Run("reused", func(t *testing.T) {
		c, cb := r.start()
		jarURL, _ := url.Parse(r.srv.URL + "/auth/github/")
		cookies := c.Jar.Cookies(jarURL)
		if code, body, _ := get(t, c, cb); code != http.StatusOK {
			t.Fatalf("first callback: %d %s", code, body)
		}
		// The callback cleared the cookie; a replay puts it back.
		c.Jar.SetCookies(jarURL, cookies)
		r.wantRefused(c, cb, http.StatusBadRequest, "unknown or was already used")
	})
	t.Run("denied by the user", func(t *testing.T) {
		c, cb := r.start()
		r.wantRefused(c, cb+"&error=access_denied&error_description=The+user+has+denied", http.StatusBadRequest, "access_denied")
	})
}

func TestGitHubSignInFailures(t *testing.T) {
	r := newSignInRig(t, openSQLite(t))
	t.Run("bad code", func(t *testing.T) {
		c, cb := r.start()
		r.wantRefused(c, withParam(cb, "code", "forged"), http.StatusBadRequest, "bad_verification_code")
	})
	t.Run("token endpoint down", func(t *testing.T) {
		c, cb := r.start()
		r.gh.Set(func(k *githubtest.Knobs, _ *githubtest.User) { k.TokenEndpointDown = true })
		defer r.gh.Set(func(k *githubtest.Knobs, _ *githubtest.User) { k.TokenEndpointDown = false })
		r.wantRefused(c, cb, http.StatusBadGateway, "GitHub's token endpoint answered 500")
	})
	t.Run("API down", func(t *testing.T) {
		c, cb := r.start()
		r.gh.Set(func(k *githubtest.Knobs, _ *githubtest.User) { k.UserDown = true })
		defer r.gh.Set(func(k *githubtest.Knobs, _ *githubtest.User) { k.UserDown = false })
		r.wantRefused(c, cb, http.StatusBadGateway, "GitHub's API answered 503")
	})
	t.Run("GitHub unreachable", func(t *testing.T) {
		c, cb := r.start()
		gone := httptest.NewServer(http.NotFoundHandler())
		gone.Close()
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		defer srv.Close()
		cfg := r.cfg
		cfg.WebURL, cfg.PublicURL = gone.URL, srv.URL
		g, err := NewSignIn(r.s, cfg)
		if err != nil {
			t.Fatal(err)
		}
		g.Register(mux)
		// The same browser and state, handed to a service whose GitHub is gone.
		u, _ := url.Parse(cb)
		for _, ck := range c.Jar.Cookies(u) {
			su, _ := url.Parse(srv.URL + "/auth/github/")
			c.Jar.SetCookies(su, []*http.Cookie{ck})
		}
		r.wantRefused(c, srv.URL+"/auth/github/callback?"+u.RawQuery, http.StatusBadGateway, "unreachable")
	})
}

// TestGitHubTokenSealed: the GitHub tokens are nowhere in the database in plain text;
// they open only through GitHubToken.
func TestGitHubTokenSealed(t *testing.T) {
	dir := t.TempDir()
	db, err := sqldb.Open(testCtx(t), filepath.Join(dir, "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := newSignInRig(t, db)
	r.gh.Set(func(k *githubtest.Knobs, _ *githubtest.User) { k.TokenLifetime = 8 * time.Hour })
	user := r.principal(r.signIn()).GetUserId()
	issued := r.gh.IssuedTokens()
	if len(issued) != 2 {
		t.Fatalf("the fake issued %v", issued)
	}
	got, err := r.g.GitHubToken(testCtx(t), user)
	if err != nil || got != issued[0] {
		t.Fatalf("GitHubToken: %q %v, want the issued %q", got, err, issued[0])
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "auth.db*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range append(issued, fakeClientSecret) {
			if bytes.Contains(b, []byte(tok)) {
				t.Fatalf("%s holds %q in plain text", filepath.Base(f), tok)
			}
		}
	}
}

// TestGitHubTokenRefresh: an expiring GitHub token is refreshed with the refresh_token
// grant, and the new pair replaces the old (GitHub rotates refresh tokens).
func TestGitHubTokenRefresh(t *testing.T) {
	r := newSignInRig(t, openSQLite(t))
	r.gh.Set(func(k *githubtest.Knobs, _ *githubtest.User) { k.TokenLifetime = 8 * time.Hour })
	user := r.principal(r.signIn()).GetUserId()
	ctx := testCtx(t)
	first, err := r.g.GitHubToken(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	r.advance(8*time.Hour - 30*time.Second)
	second, err := r.g.GitHubToken(ctx, user)
	if err != nil || second == first {
		t.Fatalf("near its expiry the token should be refreshed: %q %v", second, err)
	}
	if third, err := r.g.GitHubToken(ctx, user); err != nil || third != second {
		t.Fatalf("the refreshed token is stored: %q %v", third, err)
	}
	// The fake spent the first refresh token: a second refresh works only with the new one.
	r.advance(9 * time.Hour)
	fourth, err := r.g.GitHubToken(ctx, user)
	if err != nil || fourth == second {
		t.Fatalf("second refresh: %q %v", fourth, err)
	}
	r.gh.RevokeRefreshTokens()
	r.advance(9 * time.Hour)
	if _, err := r.g.GitHubToken(ctx, user); err == nil || !strings.Contains(err.Error(), "bad_refresh_token") {
		t.Fatalf("a refused refresh: %v", err)
	}
	if _, err := r.g.GitHubToken(ctx, "nobody"); err == nil || !strings.Contains(err.Error(), "has not signed in") {
		t.Fatalf("unknown user: %v", err)
	}
}

// withParam returns u with its query parameter key set to value (empty: removed).
func withParam(u, key, value string) string {
	p, _ := url.Parse(u)
	q := p.Query()
	if q.Del(key); value != "" {
		q.Set(key, value)
	}
	p.RawQuery = q.Encode()
	return p.String()
}

func openSQLite(t *testing.T) *sqldb.DB {
	db, err := sqldb.Open(testCtx(t), filepath.Join(t.TempDir(), "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestGitHubSignInConfig: a half-configured sign-in is refused at start, every problem
// named; an https public URL makes the state cookie Secure.
func TestGitHubSignInConfig(t *testing.T) {
	c := &Component{GitHub: GitHubFlags{ClientID: "id"}}
	got := strings.Join(c.Validate(&node.Config{DatabaseURL: "postgres://x"}), "\n")
	for _, want := range []string{"--github-client-secret-file", "--public-url", "--github-token-keyring or --data", "--admin-token-file or --data"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q do not name %s", got, want)
		}
	}
	if p := (&Component{}).Validate(&node.Config{DataDir: "/d"}); len(p) != 0 {
		t.Errorf("sign-in off: problems %v", p)
	}

	r := newSignInRig(t, openSQLite(t))
	for _, bad := range []struct{ field, value, want string }{
		{"WebURL", "github.com", "--github-url"},
		{"APIURL", "ftp://api", "--github-api-url"},
		{"PublicURL", "", "--public-url"},
	} {
		cfg := r.cfg
		switch bad.field {
		case "WebURL":
			cfg.WebURL = bad.value
		case "APIURL":
			cfg.APIURL = bad.value
		case "PublicURL":
			cfg.PublicURL = bad.value
		}
		if _, err := NewSignIn(r.s, cfg); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s %q: %v, want an error naming %s", bad.field, bad.value, err, bad.want)
		}
	}

	cfg := r.cfg
	cfg.PublicURL = "https://ci.example.com"
	g, err := NewSignIn(r.s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	g.Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/auth/github/login", nil))
	cookies := rec.Result().Cookies()
	if rec.Code != http.StatusFound || len(cookies) != 1 || !cookies[0].Secure || !cookies[0].HttpOnly {
		t.Fatalf("https login: %d %+v", rec.Code, cookies)
	}
	if loc := rec.Header().Get("Location"); !strings.Contains(loc, url.QueryEscape("https://ci.example.com/auth/github/callback")) {
		t.Fatalf("redirect_uri in %s", loc)
	}
}

// TestGitHubTokenRefreshConcurrent: callers needing a refresh at once get one refresh
// (GitHub rotates the refresh token: a second refresh with the old one would fail).
func TestGitHubTokenRefreshConcurrent(t *testing.T) {
	r := newSignInRig(t, openSQLite(t))
	r.gh.Set(func(k *githubtest.Knobs, _ *githubtest.User) { k.TokenLifetime = 8 * time.Hour })
	user := r.principal(r.signIn()).GetUserId()
	r.advance(8 * time.Hour)
	r.gh.Set(func(k *githubtest.Knobs, _ *githubtest.User) { k.TokenDelay = 200 * time.Millisecond })
	var wg sync.WaitGroup
	got := make([]string, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Go(func() { got[i], errs[i] = r.g.GitHubToken(testCtx(t), user) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("caller %d: %q %v, caller 0: %q", i, got[i], errs[i], got[0])
		}
	}
	if n := len(r.gh.IssuedTokens()); n != 4 {
		t.Fatalf("the fake issued %d tokens, want 4 (sign-in and one refresh, each a pair)", n)
	}
}
