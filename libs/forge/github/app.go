package github

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	gh "github.com/google/go-github/v60/github"

	"github.com/simpleci/simpleci/libs/forge"
)

// A GitHub App acts on a repository as its installation there: the app signs a
// short JWT with its private key, finds the repository's installation
// (GET /repos/{owner}/{name}/installation) and exchanges the JWT for an
// installation access token (POST /app/installations/{id}/access_tokens), which
// lasts an hour and can do what the app's permissions and the installation's
// repository selection allow. Only an app may create check runs. See
// https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/authenticating-as-a-github-app-installation

// Bounds of the app's credentials.
const (
	// jwtLifetime is under GitHub's 10-minute maximum; jwtSkew backdates the
	// issue time for clocks that run ahead of GitHub's.
	jwtLifetime = 9 * time.Minute
	jwtSkew     = time.Minute
	// tokenMargin: an installation token is replaced this long before it expires,
	// so a request made with it never meets the expiry halfway through a run.
	tokenMargin = 5 * time.Minute
	// maxInstallations bounds the caches: past it they start again empty.
	maxInstallations = 10000
)

// appAuth holds a GitHub App's key and the installation tokens it has made.
type appAuth struct {
	id     int64
	key    *rsa.PrivateKey
	client *gh.Client // signs each request with a fresh JWT

	mu       sync.Mutex
	installs map[string]int64        // lower-case "owner/name" → installation id
	tokens   map[int64]installToken  // installation id → its token
	pending  map[int64]chan struct{} // installation ids whose token is being made
}

type installToken struct {
	token   string
	expires time.Time
}

// newAppAuth checks the app's id and parses its PEM private key. base is the
// transport requests go out through (the netguard-checked one); api the API URL.
func newAppAuth(id int64, pem []byte, base http.RoundTripper, api *url.URL, timeout time.Duration) (*appAuth, error) {
	if id <= 0 {
		return nil, errors.New("the GitHub App id must be a positive number")
	}
	key, err := jwt.ParseRSAPrivateKeyFromPEM(pem)
	if err != nil {
		// The parser's message names the PEM problem, never key material.
		return nil, fmt.Errorf("the GitHub App private key is not an RSA key in PEM form: %v", err)
	}
	a := &appAuth{id: id, key: key, installs: map[string]int64{}, tokens: map[int64]installToken{}, pending: map[int64]chan struct{}{}}
	a.client = gh.NewClient(&http.Client{Transport: jwtTransport{a, base}, Timeout: timeout})
	a.client.BaseURL, a.client.UploadURL = api, api
	return a, nil
}

// signJWT makes the app's JWT (RS256; iss the app id), valid for jwtLifetime.
func (a *appAuth) signJWT(now time.Time) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer:    fmt.Sprint(a.id),
		IssuedAt:  jwt.NewNumericDate(now.Add(-jwtSkew)),
		ExpiresAt: jwt.NewNumericDate(now.Add(jwtLifetime)),
	}).SignedString(a.key)
}

// jwtTransport authenticates the app's own requests with a fresh JWT.
type jwtTransport struct {
	a    *appAuth
	base http.RoundTripper
}

func (t jwtTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	token, err := t.a.signJWT(time.Now())
	if err != nil {
		return nil, fmt.Errorf("sign the GitHub App's JWT: %w", err)
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+token)
	return t.base.RoundTrip(req)
}

// token returns an installation token for repo ("owner/name"), made or renewed
// when the cached one is within tokenMargin of expiring. Concurrent callers for
// one installation wait for one exchange.
func (a *appAuth) token(ctx context.Context, repo string) (string, error) {
	owner, name, err := SplitRepository(repo)
	if err != nil {
		return "", err
	}
	id, err := a.installation(ctx, owner, name)
	if err != nil {
		return "", err
	}
	for {
		a.mu.Lock()
		if t, ok := a.tokens[id]; ok && time.Until(t.expires) > tokenMargin {
			a.mu.Unlock()
			return t.token, nil
		}
		if wait, busy := a.pending[id]; busy {
			a.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		done := make(chan struct{})
		a.pending[id] = done
		a.mu.Unlock()

		t, err := a.exchange(ctx, id, repo)
		a.mu.Lock()
		delete(a.pending, id)
		close(done)
		if err == nil {
			if len(a.tokens) >= maxInstallations {
				a.tokens = map[int64]installToken{}
			}
			a.tokens[id] = t
		}
		a.mu.Unlock()
		if err != nil {
			return "", err
		}
		return t.token, nil
	}
}

// installation finds (and caches) the app's installation on owner/name.
func (a *appAuth) installation(ctx context.Context, owner, name string) (int64, error) {
	key := strings.ToLower(owner + "/" + name)
	a.mu.Lock()
	id, ok := a.installs[key]
	a.mu.Unlock()
	if ok {
		return id, nil
	}
	inst, resp, err := a.client.Apps.FindRepositoryInstallation(ctx, owner, name)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return 0, fmt.Errorf("%w: the GitHub App is not installed on %s/%s (install it on the repository, or give it access)", forge.ErrNotFound, owner, name)
		}
		return 0, apiError(fmt.Sprintf("find the GitHub App's installation on %s/%s", owner, name), resp, err)
	}
	a.mu.Lock()
	if len(a.installs) >= maxInstallations {
		a.installs = map[string]int64{}
	}
	a.installs[key] = inst.GetID()
	a.mu.Unlock()
	return inst.GetID(), nil
}

// exchange makes an installation token.
func (a *appAuth) exchange(ctx context.Context, id int64, repo string) (installToken, error) {
	t, resp, err := a.client.Apps.CreateInstallationToken(ctx, id, nil)
	if err != nil {
		return installToken{}, apiError(fmt.Sprintf("make an installation token for %s", repo), resp, err)
	}
	if t.GetToken() == "" || strings.ContainsAny(t.GetToken(), "\r\n\x00 ") {
		return installToken{}, fmt.Errorf("make an installation token for %s: GitHub answered no usable token", repo)
	}
	expires := t.GetExpiresAt().Time
	if expires.IsZero() {
		expires = time.Now().Add(time.Hour)
	}
	return installToken{token: t.GetToken(), expires: expires}, nil
}

// forget drops what is cached for repo after GitHub refused its token (the app
// was uninstalled, or the installation's token revoked).
func (a *appAuth) forget(repo string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := strings.ToLower(repo)
	if id, ok := a.installs[key]; ok {
		delete(a.tokens, id)
		delete(a.installs, key)
	}
}

// repoPathRE finds the repository an API request is about.
var repoPathRE = regexp.MustCompile(`^repos/([^/]+/[^/]+)(?:/|$)`)

// installationTransport authenticates each API request about a repository as
// the app's installation on it; other requests go out unauthenticated.
type installationTransport struct {
	a    *appAuth
	api  *url.URL
	base http.RoundTripper
}

func (t installationTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rel, ok := strings.CutPrefix(req.URL.EscapedPath(), t.api.EscapedPath())
	m := repoPathRE.FindStringSubmatch(rel)
	if !ok || m == nil || req.URL.Host != t.api.Host {
		return t.base.RoundTrip(req)
	}
	repo, err := url.PathUnescape(m[1])
	if err != nil {
		return nil, err
	}
	token, err := t.a.token(req.Context(), repo)
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		t.a.forget(repo)
	}
	return resp, err
}
