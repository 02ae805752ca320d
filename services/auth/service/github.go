package service

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/simpleci/simpleci/libs/platform/id"
	"github.com/simpleci/simpleci/libs/platform/seal"
)

// Sign-in with GitHub: limits and names (docs/adr/0018-github-sign-in.md).
const (
	// StateLifetime is how long a sign-in may take from /auth/github/login to the callback.
	StateLifetime = 10 * time.Minute
	// SessionLifetime is the lifetime of the API token a sign-in issues.
	SessionLifetime = 7 * 24 * time.Hour
	// SessionTokenName names the tokens a sign-in issues (GET /api/v1/tokens lists them).
	SessionTokenName = "github sign-in"
	// StateCookie holds the state of the browser's pending sign-in.
	StateCookie = "simpleci_github_state"
	// MaxPendingSignIns bounds the stored states (each /auth/github/login adds one for
	// StateLifetime), so that a flood of unauthenticated requests cannot fill the database.
	MaxPendingSignIns = 10000
	// DefaultGitHubScopes are what an OAuth App asks for: the user's profile and e-mail,
	// the repositories they may administer and their webhooks (issue 10).
	DefaultGitHubScopes = "read:user user:email repo admin:repo_hook"
	// githubTimeout bounds every call to GitHub.
	githubTimeout = 15 * time.Second
	// maxGitHubAnswer bounds what is read of a token endpoint's answer.
	maxGitHubAnswer = 64 << 10
	// refreshMargin: a token that expires within it is refreshed before use.
	refreshMargin = time.Minute
)

// GitHubConfig configures sign-in with GitHub.
type GitHubConfig struct {
	// ClientID and ClientSecret are the OAuth App's (or GitHub App's) credentials.
	ClientID, ClientSecret string
	// WebURL is GitHub's web base (https://github.com, or a GitHub Enterprise Server).
	WebURL string
	// APIURL is GitHub's REST API base (https://api.github.com/, or GHES's /api/v3/).
	APIURL string
	// PublicURL is this service's external base URL; the callback is
	// PublicURL/auth/github/callback.
	PublicURL string
	// Scopes are the OAuth scopes asked for, space-separated (empty: DefaultGitHubScopes).
	Scopes string
	// Keys seals the users' GitHub tokens.
	Keys *seal.Keyring
	// Log receives what goes wrong (never a token).
	Log *slog.Logger
	// Client makes the calls to GitHub (nil: one with a githubTimeout deadline).
	Client *http.Client
}

// SignIn serves GET /auth/github/login and GET /auth/github/callback.
type SignIn struct {
	s        *Service
	cfg      GitHubConfig
	web, api *url.URL
	secure   bool
	// refreshing serialises refreshes of GitHub tokens (GitHubToken).
	refreshing sync.Mutex
}

// NewSignIn checks cfg and returns the sign-in handlers over s.
func NewSignIn(s *Service, cfg GitHubConfig) (*SignIn, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("github sign-in: a client id and a client secret are needed")
	}
	if cfg.Keys == nil {
		return nil, errors.New("github sign-in: no keyring to seal GitHub tokens with")
	}
	g := &SignIn{s: s, cfg: cfg}
	var err error
	if g.web, err = absURL("--github-url", cfg.WebURL); err != nil {
		return nil, err
	}
	if g.api, err = absURL("--github-api-url", cfg.APIURL); err != nil {
		return nil, err
	}
	if !strings.HasSuffix(g.api.Path, "/") {
		g.api.Path += "/"
	}
	pub, err := absURL("--public-url", cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	g.secure = pub.Scheme == "https"
	g.cfg.PublicURL = strings.TrimSuffix(pub.String(), "/")
	if g.cfg.Scopes == "" {
		g.cfg.Scopes = DefaultGitHubScopes
	}
	if g.cfg.Log == nil {
		g.cfg.Log = slog.New(slog.DiscardHandler)
	}
	if g.cfg.Client == nil {
		g.cfg.Client = &http.Client{Timeout: githubTimeout}
	}
	return g, nil
}

func absURL(flag, v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s %q: want an absolute http or https URL", flag, v)
	}
	return u, nil
}

// Register adds the sign-in routes to mux.
func (g *SignIn) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /auth/github/login", g.login)
	mux.HandleFunc("GET /auth/github/callback", g.callback)
}

func (g *SignIn) redirectURI() string { return g.cfg.PublicURL + "/auth/github/callback" }

// login starts a sign-in: a new single-use state, kept as a hash in the database and in
// plain in an HttpOnly cookie of this browser, then off to GitHub.
func (g *SignIn) login(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := g.s.Now()
	state := id.Secret(32)
	err := g.s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, g.s.db.Q(`DELETE FROM auth_oauth_states WHERE expires_at <= ?`), now.UnixNano()); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, g.s.db.Q(`SELECT COUNT(*) FROM auth_oauth_states`)).Scan(&n); err != nil {
			return err
		}
		if n >= MaxPendingSignIns {
			return errTooManySignIns
		}
		_, err := tx.ExecContext(ctx, g.s.db.Q(`INSERT INTO auth_oauth_states (hash, expires_at) VALUES (?, ?)`), hash(state), now.Add(StateLifetime).UnixNano())
		return err
	})
	if errors.Is(err, errTooManySignIns) {
		w.Header().Set("Retry-After", "60")
		signInError(w, http.StatusServiceUnavailable, "too many sign-ins in progress: try again in a minute")
		return
	}
	if err != nil {
		g.cfg.Log.Error("github sign-in: store state", "err", err)
		signInError(w, http.StatusInternalServerError, "could not start the sign-in")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: StateCookie, Value: state, Path: "/auth/github/", MaxAge: int(StateLifetime / time.Second),
		HttpOnly: true, Secure: g.secure, SameSite: http.SameSiteLaxMode})
	q := url.Values{"client_id": {g.cfg.ClientID}, "redirect_uri": {g.redirectURI()}, "scope": {g.cfg.Scopes}, "state": {state}}
	http.Redirect(w, r, g.web.JoinPath("login/oauth/authorize").String()+"?"+q.Encode(), http.StatusFound)
}

var errTooManySignIns = errors.New("too many pending sign-ins")

// errSignIn is a sign-in failure the browser is told about, with its HTTP status.
type errSignIn struct {
	code int
	msg  string
}

func (e *errSignIn) Error() string { return e.msg }

func badSignIn(code int, format string, args ...any) error {
	return &errSignIn{code: code, msg: fmt.Sprintf(format, args...)}
}

// callback finishes a sign-in: the state checked and spent, the code exchanged for a
// GitHub token, the GitHub user found or created, and a SimpleCI session token shown once.
func (g *SignIn) callback(w http.ResponseWriter, r *http.Request) {
	// The state cookie is spent whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: StateCookie, Value: "", Path: "/auth/github/", MaxAge: -1,
		HttpOnly: true, Secure: g.secure, SameSite: http.SameSiteLaxMode})
	token, login, err := g.finish(r)
	var e *errSignIn
	if errors.As(err, &e) {
		signInError(w, e.code, e.msg)
		return
	}
	if err != nil {
		g.cfg.Log.Error("github sign-in", "err", err)
		signInError(w, http.StatusInternalServerError, "the sign-in failed on our side")
		return
	}
	g.cfg.Log.Info("github sign-in", "login", login)
	noStore(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = signedInPage.Execute(w, map[string]any{"Login": login, "Token": token, "Days": int(SessionLifetime / (24 * time.Hour))})
}

func (g *SignIn) finish(r *http.Request) (token, login string, err error) {
	ctx := r.Context()
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return "", "", badSignIn(http.StatusBadRequest, "GitHub did not authorize the sign-in: %s %s", clip(e), clip(q.Get("error_description")))
	}
	state := q.Get("state")
	if state == "" {
		return "", "", badSignIn(http.StatusBadRequest, "the callback has no state parameter: start again at /auth/github/login")
	}
	c, cerr := r.Cookie(StateCookie)
	if cerr != nil || c.Value == "" {
		return "", "", badSignIn(http.StatusBadRequest, "this browser has no sign-in in progress (no state cookie): start again at /auth/github/login")
	}
	if subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 {
		return "", "", badSignIn(http.StatusBadRequest, "the state parameter does not match this browser's sign-in: start again at /auth/github/login")
	}
	if err := g.spendState(ctx, state); err != nil {
		return "", "", err
	}
	code := q.Get("code")
	if code == "" {
		return "", "", badSignIn(http.StatusBadRequest, "the callback has no code parameter")
	}
	tok, err := g.token(ctx, url.Values{"code": {code}, "redirect_uri": {g.redirectURI()}})
	if err != nil {
		return "", "", err
	}
	user, err := g.user(ctx, tok.AccessToken)
	if err != nil {
		return "", "", err
	}
	token, err = g.s.signIn(ctx, g.cfg.Keys, user, tok)
	return token, "github:" + user.GetLogin(), err
}

// spendState deletes the stored state: unknown, already used or expired is refused.
func (g *SignIn) spendState(ctx context.Context, state string) error {
	var expires int64
	err := g.s.db.Tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, g.s.db.Q(`SELECT expires_at FROM auth_oauth_states WHERE hash = ?`), hash(state)).Scan(&expires)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, g.s.db.Q(`DELETE FROM auth_oauth_states WHERE hash = ?`), hash(state))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return badSignIn(http.StatusBadRequest, "this sign-in state is unknown or was already used: start again at /auth/github/login")
	}
	if err != nil {
		return err
	}
	if !g.s.Now().Before(time.Unix(0, expires)) {
		return badSignIn(http.StatusBadRequest, "this sign-in took longer than %v and expired: start again at /auth/github/login", StateLifetime)
	}
	return nil
}

// oauthToken is the token endpoint's answer (GitHub answers errors with 200 and "error").
type oauthToken struct {
	AccessToken           string `json:"access_token"`
	Scope                 string `json:"scope"`
	ExpiresIn             int64  `json:"expires_in"`
	RefreshToken          string `json:"refresh_token"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in"`
	Error                 string `json:"error"`
	ErrorDescription      string `json:"error_description"`
}

// token posts a grant (code, or refresh_token) to GitHub's token endpoint. A refused
// grant is a 400 naming GitHub's error; GitHub unreachable or answering nonsense is a 502.
func (g *SignIn) token(ctx context.Context, grant url.Values) (*oauthToken, error) {
	grant.Set("client_id", g.cfg.ClientID)
	grant.Set("client_secret", g.cfg.ClientSecret)
	ctx, cancel := context.WithTimeout(ctx, githubTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.web.JoinPath("login/oauth/access_token").String(), strings.NewReader(grant.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := g.cfg.Client.Do(req)
	if err != nil {
		// The error names the URL, never the body (code, secret).
		return nil, badSignIn(http.StatusBadGateway, "GitHub's token endpoint is unreachable: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxGitHubAnswer))
	if err != nil {
		return nil, badSignIn(http.StatusBadGateway, "GitHub's token endpoint: %v", err)
	}
	var t oauthToken
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &t) != nil {
		return nil, badSignIn(http.StatusBadGateway, "GitHub's token endpoint answered %s, not a token", resp.Status)
	}
	if t.Error != "" {
		return nil, badSignIn(http.StatusBadRequest, "GitHub refused the grant: %s %s", clip(t.Error), clip(t.ErrorDescription))
	}
	if t.AccessToken == "" {
		return nil, badSignIn(http.StatusBadGateway, "GitHub's token endpoint answered without an access token")
	}
	return &t, nil
}

// user reads the signed-in GitHub user with go-github.
func (g *SignIn) user(ctx context.Context, accessToken string) (*github.User, error) {
	ctx, cancel := context.WithTimeout(ctx, githubTimeout)
	defer cancel()
	c := github.NewClient(g.cfg.Client).WithAuthToken(accessToken)
	c.BaseURL = g.api
	u, _, err := c.Users.Get(ctx, "")
	if err != nil {
		var ge *github.ErrorResponse
		if errors.As(err, &ge) && ge.Response != nil {
			return nil, badSignIn(http.StatusBadGateway, "GitHub's API answered %s for the signed-in user", ge.Response.Status)
		}
		return nil, badSignIn(http.StatusBadGateway, "GitHub's API is unreachable: %v", stripToken(err, accessToken))
	}
	if u.GetID() <= 0 || u.GetLogin() == "" {
		return nil, badSignIn(http.StatusBadGateway, "GitHub's API answered a user without id or login")
	}
	return u, nil
}

// stripToken makes sure err's text cannot carry the token.
func stripToken(err error, token string) string {
	return strings.ReplaceAll(err.Error(), token, "[token]")
}

func clip(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// tokenContext binds a sealed GitHub token to its account and kind, so that a sealed
// value copied to another row or column does not open there.
func tokenContext(githubID int64, kind string) []byte {
	return []byte("github-token:" + strconv.FormatInt(githubID, 10) + ":" + kind)
}

type sealedTokens struct {
	keyID                 string
	access, refresh       sql.NullString
	accessExp, refreshExp sql.NullInt64
}

func sealTokens(keys *seal.Keyring, githubID int64, t *oauthToken, now time.Time) (*sealedTokens, error) {
	st := &sealedTokens{}
	kid, b, err := keys.Seal([]byte(t.AccessToken), tokenContext(githubID, "access"))
	if err != nil {
		return nil, err
	}
	st.keyID, st.access = kid, sql.NullString{String: base64.StdEncoding.EncodeToString(b), Valid: true}
	if t.ExpiresIn > 0 {
		st.accessExp = sql.NullInt64{Int64: now.Add(time.Duration(t.ExpiresIn) * time.Second).UnixNano(), Valid: true}
	}
	if t.RefreshToken != "" {
		// Sealed with the same (current) key as the access token: one key_id for both.
		_, b, err := keys.Seal([]byte(t.RefreshToken), tokenContext(githubID, "refresh"))
		if err != nil {
			return nil, err
		}
		st.refresh = sql.NullString{String: base64.StdEncoding.EncodeToString(b), Valid: true}
		if t.RefreshTokenExpiresIn > 0 {
			st.refreshExp = sql.NullInt64{Int64: now.Add(time.Duration(t.RefreshTokenExpiresIn) * time.Second).UnixNano(), Valid: true}
		}
	}
	return st, nil
}

// signIn creates or updates the user of the GitHub account u (keyed by GitHub's user id;
// the login follows renames), stores the GitHub token sealed and issues a session token.
// A new user gets an organisation of their own.
func (s *Service) signIn(ctx context.Context, keys *seal.Keyring, u *github.User, t *oauthToken) (string, error) {
	now := s.Now()
	st, err := sealTokens(keys, u.GetID(), t, now)
	if err != nil {
		return "", err
	}
	login := "github:" + u.GetLogin()
	session := TokenPrefix + id.Secret(24)
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		var userID string
		err := tx.QueryRowContext(ctx, s.db.Q(`SELECT user_id FROM auth_github_accounts WHERE github_id = ?`), u.GetID()).Scan(&userID)
		isNew := errors.Is(err, sql.ErrNoRows)
		if err != nil && !isNew {
			return err
		}
		if isNew {
			userID = id.New()
		}
		if err := s.freeLogin(ctx, tx, login, userID); err != nil {
			return err
		}
		if isNew {
			orgID := id.New()
			if _, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO auth_orgs (id, name, created_at) VALUES (?, ?, ?)`), orgID, "github-user-"+strconv.FormatInt(u.GetID(), 10), now.UnixNano()); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO auth_users (id, org_id, login, admin, created_at) VALUES (?, ?, ?, ?, ?)`), userID, orgID, login, false, now.UnixNano()); err != nil {
				return err
			}
			// The user owns the organisation made for it (docs/adr/0019-roles.md).
			if err := setRole(ctx, s.db, tx, userID, orgID, "owner", now.UnixNano()); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO auth_github_accounts (github_id, user_id, login, key_id, access_sealed, access_expires_at, refresh_sealed, refresh_expires_at, scope, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
				u.GetID(), userID, u.GetLogin(), st.keyID, st.access, st.accessExp, st.refresh, st.refreshExp, t.Scope, now.UnixNano()); err != nil {
				return err
			}
		} else {
			if _, err := tx.ExecContext(ctx, s.db.Q(`UPDATE auth_users SET login = ? WHERE id = ?`), login, userID); err != nil {
				return err
			}
			if err := updateTokens(ctx, s, tx, u.GetID(), st, t.Scope, now, u.GetLogin()); err != nil {
				return err
			}
		}
		// The session token acts in the user's own organisation.
		_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO auth_tokens (hash, id, user_id, org_id, name, created_at, expires_at) SELECT ?, ?, id, org_id, ?, ?, ? FROM auth_users WHERE id = ?`),
			hash(session), id.New(), SessionTokenName, now.UnixNano(), now.Add(SessionLifetime).UnixNano(), userID)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("sign in %s: %w", login, err)
	}
	return session, nil
}

func updateTokens(ctx context.Context, s *Service, tx *sql.Tx, githubID int64, st *sealedTokens, scope string, now time.Time, login string) error {
	_, err := tx.ExecContext(ctx, s.db.Q(`UPDATE auth_github_accounts SET login = ?, key_id = ?, access_sealed = ?, access_expires_at = ?, refresh_sealed = ?, refresh_expires_at = ?, scope = ?, updated_at = ? WHERE github_id = ?`),
		login, st.keyID, st.access, st.accessExp, st.refresh, st.refreshExp, scope, now.UnixNano(), githubID)
	return err
}

// freeLogin makes login available to userID: GitHub logins are unique at any moment, so
// another GitHub user holding it renamed their account since their last sign-in; their
// login becomes "github:#ID" until they sign in again. A local user holding it is an error.
func (s *Service) freeLogin(ctx context.Context, tx *sql.Tx, login, userID string) error {
	var other string
	var gid sql.NullInt64
	err := tx.QueryRowContext(ctx, s.db.Q(`SELECT u.id, a.github_id FROM auth_users u LEFT JOIN auth_github_accounts a ON a.user_id = u.id WHERE u.login = ? AND u.id <> ?`), login, userID).Scan(&other, &gid)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if !gid.Valid {
		return fmt.Errorf("login %s is held by a local user", login)
	}
	_, err = tx.ExecContext(ctx, s.db.Q(`UPDATE auth_users SET login = ? WHERE id = ?`), "github:#"+strconv.FormatInt(gid.Int64, 10), other)
	return err
}

// ErrSignInAgain is GitHubToken's error when only a new sign-in with GitHub gives the
// user a token: none stored, or expired with no usable refresh token.
var ErrSignInAgain = errors.New("sign in with GitHub (again)")

// GitHubToken returns the GitHub access token of userID, refreshed first (refresh_token
// grant, the new tokens stored sealed) when it expires within a minute. It is for the
// service's own calls to GitHub; no API returns it.
func (g *SignIn) GitHubToken(ctx context.Context, userID string) (string, error) {
	if tok, _, _, err := g.current(ctx, userID); tok != "" || err != nil {
		return tok, err
	}
	// One refresh at a time in this process: GitHub rotates the refresh token, so a
	// second refresh with the old one would fail. Whoever waited reads the new token.
	g.refreshing.Lock()
	defer g.refreshing.Unlock()
	tok, gid, st, err := g.current(ctx, userID)
	if tok != "" || err != nil {
		return tok, err
	}
	now := g.s.Now()
	if !st.refresh.Valid {
		return "", fmt.Errorf("%w: the GitHub token of user %s expired and there is no refresh token", ErrSignInAgain, userID)
	}
	if st.refreshExp.Valid && !now.Before(time.Unix(0, st.refreshExp.Int64)) {
		return "", fmt.Errorf("%w: the GitHub refresh token of user %s expired", ErrSignInAgain, userID)
	}
	refresh, err := g.open(gid, st.keyID, st.refresh.String, "refresh")
	if err != nil {
		return "", err
	}
	t, err := g.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
	if err != nil {
		return "", fmt.Errorf("refresh the GitHub token of user %s: %w", userID, err)
	}
	if t.RefreshToken == "" {
		// GitHub always rotates it; keep the old one if an answer does not.
		t.RefreshToken = refresh
	}
	nst, err := sealTokens(g.cfg.Keys, gid, t, now)
	if err != nil {
		return "", err
	}
	err = g.s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, g.s.db.Q(`UPDATE auth_github_accounts SET key_id = ?, access_sealed = ?, access_expires_at = ?, refresh_sealed = ?, refresh_expires_at = ?, updated_at = ? WHERE github_id = ?`),
			nst.keyID, nst.access, nst.accessExp, nst.refresh, nst.refreshExp, now.UnixNano(), gid)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("store the refreshed GitHub token: %w", err)
	}
	return t.AccessToken, nil
}

// current returns userID's GitHub access token unless it expires within refreshMargin;
// then the token is "" and the account's id and sealed tokens are returned.
func (g *SignIn) current(ctx context.Context, userID string) (string, int64, *sealedTokens, error) {
	var gid int64
	st := &sealedTokens{}
	err := g.s.db.QueryRowContext(ctx, g.s.db.Q(`SELECT github_id, key_id, access_sealed, access_expires_at, refresh_sealed, refresh_expires_at FROM auth_github_accounts WHERE user_id = ?`), userID).
		Scan(&gid, &st.keyID, &st.access, &st.accessExp, &st.refresh, &st.refreshExp)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, nil, fmt.Errorf("%w: user %s has not signed in with GitHub", ErrSignInAgain, userID)
	}
	if err != nil {
		return "", 0, nil, err
	}
	if !st.accessExp.Valid || g.s.Now().Add(refreshMargin).Before(time.Unix(0, st.accessExp.Int64)) {
		tok, err := g.open(gid, st.keyID, st.access.String, "access")
		return tok, gid, st, err
	}
	return "", gid, st, nil
}

func (g *SignIn) open(gid int64, keyID, b64, kind string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", fmt.Errorf("sealed GitHub %s token of account %d: %w", kind, gid, err)
	}
	v, err := g.cfg.Keys.Open(keyID, b, tokenContext(gid, kind))
	if err != nil {
		return "", fmt.Errorf("GitHub %s token of account %d: %w", kind, gid, err)
	}
	return string(v), nil
}

func noStore(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}

func signInError(w http.ResponseWriter, code int, msg string) {
	noStore(w)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, "sign-in with GitHub: "+msg)
}

// signedInPage shows the session token once. It is not set as a cookie: the API takes
// bearer tokens only, so no API call rides on a browser's ambient credentials (no CSRF).
var signedInPage = template.Must(template.New("signed-in").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Signed in to SimpleCI</title></head>
<body style="font-family:sans-serif;max-width:48em;margin:2em auto">
<h1>Signed in as {{.Login}}</h1>
<p>Your API token, valid for {{.Days}} days. It is shown only this once: copy it now.</p>
<pre><code id="token">{{.Token}}</code></pre>
<p>Use it as a bearer token: <code>export SIMPLECI_TOKEN=…</code> for the CLI, or
<code>Authorization: Bearer …</code> for the API. Revoke it with <code>DELETE /api/v1/tokens/{id}</code>.</p>
</body></html>
`))
