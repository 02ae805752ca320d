// Package github is the forge for GitHub and GitHub Enterprise Server, built on
// go-github. A project's repository is "owner/name".
//
// Deliveries are verified with the project's webhook secret (X-Hub-Signature-256)
// before the body is parsed (ParseWebhook). Files and refs are read through the
// REST API (contents and commits), commit statuses are posted through it
// (SetStatus), and Checkout fetches over git smart HTTP with the operator's token
// handed to git as an http.extraHeader in git's environment: never in a URL, never
// in the workspace's .git/config, never in an error.
//
// Every connection is checked by package netguard: an API or web URL whose host
// is a loopback, private, link-local or metadata address (a GitHub Enterprise
// Server inside the operator's network) must be allowed with
// Options.AllowNetworks (--allow-repo-network).
package github

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"

	gh "github.com/google/go-github/v60/github"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/local"
	"github.com/simpleci/simpleci/libs/forge/netguard"
)

// Name is the provider name in a forge.Registry and in the webhook URL
// /api/v1/webhooks/github/{project}.
const Name = "github"

// Defaults for Options fields left empty.
const (
	DefaultAPIURL      = "https://api.github.com/"
	DefaultWebURL      = "https://github.com/"
	DefaultMaxFileSize = 4 << 20
	// DefaultTimeout bounds one API request.
	DefaultTimeout = 30 * time.Second
	// StatusContext is the context of the commit statuses SimpleCI posts.
	StatusContext = "simpleci"
)

// Options configure a Forge.
type Options struct {
	// APIURL is the REST API's base URL; default DefaultAPIURL. GitHub
	// Enterprise Server's is https://HOST/api/v3/.
	APIURL string
	// WebURL is the web (and git) base URL; default DefaultWebURL. A repository
	// "o/r" is cloned from WebURL + "o/r.git".
	WebURL string
	// Token authenticates every API request and git fetch. Empty works for
	// public repositories within GitHub's anonymous rate limit; SetStatus needs one.
	Token string
	// AllowNetworks are internal networks the API and web hosts may be in
	// (package netguard); everything else internal is refused.
	AllowNetworks []netip.Prefix
	// MaxFileSize is the largest file ReadFile returns; default DefaultMaxFileSize.
	MaxFileSize int64
	// Timeout bounds one API request; default DefaultTimeout.
	Timeout time.Duration
	// GitTimeout bounds one git invocation of Checkout; default local.DefaultTimeout.
	GitTimeout time.Duration
	// Git is the git executable; default "git" found in PATH.
	Git string
	// AppID and AppKey (its private key, PEM) make the forge act as a GitHub
	// App: each repository is read, cloned, hooked and reported on with the
	// app's installation token for it (see app.go), and runs are shown as check
	// runs too. Exclusive with Token.
	AppID  int64
	AppKey []byte
}

// Forge is the GitHub provider. It is safe for concurrent use.
type Forge struct {
	client      *gh.Client
	web         *url.URL
	maxFileSize int64
	git         *local.Forge  // with Token; nil for an app, which clones with gitFor
	gitOpts     local.Options // for gitFor
	app         *appAuth      // nil unless the forge is a GitHub App
}

var (
	_ forge.Forge             = (*Forge)(nil)
	_ forge.StatusReporter    = (*Forge)(nil)
	_ forge.RepositoryMatcher = (*Forge)(nil)
)

// New returns a GitHub forge, or an error naming each bad option.
func New(opts Options) (*Forge, error) {
	var problems []error
	api, err := baseURL("API URL", opts.APIURL, DefaultAPIURL)
	if err != nil {
		problems = append(problems, err)
	}
	web, err := baseURL("web URL", opts.WebURL, DefaultWebURL)
	if err != nil {
		problems = append(problems, err)
	}
	if opts.Token != "" && (opts.AppID != 0 || len(opts.AppKey) > 0) {
		problems = append(problems, errors.New("give a token or a GitHub App (id and private key), not both"))
	}
	if strings.ContainsAny(opts.Token, "\r\n\x00 ") {
		problems = append(problems, errors.New("token has white space or control characters (a token file should hold the token alone)"))
	}
	if opts.MaxFileSize < 0 || opts.Timeout < 0 || opts.GitTimeout < 0 {
		problems = append(problems, errors.New("sizes and timeouts must not be negative"))
	}
	gitOpts := local.Options{Git: opts.Git, Timeout: opts.GitTimeout, AllowNetworks: opts.AllowNetworks}
	var git *local.Forge
	if web != nil {
		gitOpts.Protocols = []string{web.Scheme}
		if git, err = gitWithToken(gitOpts, opts.Token); err != nil {
			problems = append(problems, err)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("github forge: %w", errors.Join(problems...))
	}
	client, app, err := newClient(api, opts)
	if err != nil {
		return nil, fmt.Errorf("github forge: %w", err)
	}
	f := &Forge{client: client, web: web, maxFileSize: opts.MaxFileSize, git: git, gitOpts: gitOpts, app: app}
	if f.maxFileSize == 0 {
		f.maxFileSize = DefaultMaxFileSize
	}
	return f, nil
}

// newClient is go-github for the API at api: every connection through netguard
// (opts.AllowNetworks), a deadline per request, redirects only to the API's host,
// authenticated with opts.Token when there is one, or as the GitHub App of
// opts.AppID and opts.AppKey (app.go), which it returns too.
func newClient(api *url.URL, opts Options) (*gh.Client, *appAuth, error) {
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	guard := netguard.New(opts.AllowNetworks)
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would dial for us and bypass the guard
		DialContext:           guard.Dialer(10 * time.Second).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	httpClient := &http.Client{
		Transport: transport,
		Timeout:   timeout,
		// The API answers file contents with a redirect only to its own hosts;
		// anywhere else must not see the token.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 || req.URL.Host != via[0].URL.Host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	var app *appAuth
	if opts.AppID != 0 || len(opts.AppKey) > 0 {
		var err error
		if app, err = newAppAuth(opts.AppID, opts.AppKey, transport, api, timeout); err != nil {
			return nil, nil, err
		}
		httpClient.Transport = installationTransport{a: app, api: api, base: transport}
	}
	client := gh.NewClient(httpClient)
	if opts.Token != "" {
		client = client.WithAuthToken(opts.Token)
	}
	client.BaseURL = api
	client.UploadURL = api
	return client, app, nil
}

// gitWithToken is git for fetching from GitHub with token ("": anonymous). git
// reads GIT_CONFIG_COUNT/KEY/VALUE like -c options, from its environment only:
// nothing reaches the command line, the remote URL or the checkout's
// .git/config. GitHub takes a token as basic authentication with the user name
// x-access-token.
func gitWithToken(opts local.Options, token string) (*local.Forge, error) {
	if token != "" {
		basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + token))
		opts.Env = []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader",
			"GIT_CONFIG_VALUE_0=Authorization: Basic " + basic}
	}
	return local.New(opts)
}

// baseURL parses an http(s) base URL without credentials, query or fragment
// and gives it the trailing slash go-github needs.
func baseURL(what, raw, def string) (*url.URL, error) {
	if raw == "" {
		raw = def
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s %q is not a URL", what, forge.Redact(raw))
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("%s %q must be an https:// (or http://) URL", what, forge.Redact(raw))
	case u.Host == "":
		return nil, fmt.Errorf("%s %q has no host", what, forge.Redact(raw))
	case u.User != nil:
		return nil, fmt.Errorf("%s %q must not carry credentials: give the token with the token file", what, forge.Redact(raw))
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%s %q must not have a query or fragment", what, raw)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, nil
}

// Name returns "github".
func (f *Forge) Name() string { return Name }

// repoNameRE is GitHub's "owner/name": an owner of letters, digits and single
// hyphens (at most 39), a name of letters, digits, '.', '_' and '-' (at most 100),
// not "." or "..".
var repoNameRE = regexp.MustCompile(`^` + RepositoryPattern + `$`)

// RepositoryPattern is the form of a GitHub repository ("owner/name") as a regular
// expression without anchors, for the API document's pattern.
const RepositoryPattern = `[A-Za-z0-9]([A-Za-z0-9]|-[A-Za-z0-9]){0,38}/[A-Za-z0-9._-]{1,100}`

// SplitRepository checks that repo is "owner/name" and returns both parts
// (forge.ErrInvalid otherwise).
func SplitRepository(repo string) (owner, name string, err error) {
	if !repoNameRE.MatchString(repo) {
		return "", "", fmt.Errorf("%w: repository %q is not a GitHub \"owner/name\"", forge.ErrInvalid, forge.Bound(repo))
	}
	owner, name, _ = strings.Cut(repo, "/")
	if name == "." || name == ".." || strings.HasSuffix(strings.ToLower(name), ".git") {
		return "", "", fmt.Errorf("%w: repository %q: name %q is not a GitHub repository name (leave out .git)", forge.ErrInvalid, repo, name)
	}
	return owner, name, nil
}

// MatchesRepository compares "owner/name"s as GitHub does, ignoring case.
func (f *Forge) MatchesRepository(project, delivered string) bool {
	return delivered != "" && strings.EqualFold(project, delivered)
}

// CheckRepository vets the repository of a project being created: GitHub's
// "owner/name" form, returned as given (the project service stores it).
func (f *Forge) CheckRepository(_ context.Context, repo string) (string, []string, error) {
	if _, _, err := SplitRepository(repo); err != nil {
		return "", nil, err
	}
	return repo, nil, nil
}
