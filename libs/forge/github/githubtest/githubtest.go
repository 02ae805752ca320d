// Package githubtest is a fake GitHub for tests: an httptest server speaking the
// parts of the REST API that SimpleCI uses (contents, commits, statuses, hooks with
// their last delivery, the authenticated user and their repositories, paged), the
// OAuth web flow of sign-in (EnableOAuth) and git smart HTTP, served by git's own
// http-backend over bare repositories the test creates. Every API and git request
// must carry the operator's token (New) or one the OAuth flow issued, as the API
// takes it ("Authorization: Bearer TOKEN" or "token TOKEN") or as git sends it
// (basic authentication, any user, the token as password); anything else gets 401.
// The OAuth endpoints (/login/oauth/...) take none, as GitHub's.
package githubtest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// HTTPBackend is Debian's git http-backend, the CGI program git's smart HTTP is served by.
const HTTPBackend = "/usr/lib/git-core/git-http-backend"

// Status is a commit status the fake recorded.
type Status struct {
	Repo        string `json:"-"`
	SHA         string `json:"-"`
	State       string `json:"state"`
	TargetURL   string `json:"target_url"`
	Description string `json:"description"`
	Context     string `json:"context"`
}

// Hook is a repository webhook the fake keeps, shaped as GitHub shows it
// (https://docs.github.com/en/rest/repos/webhooks#get-a-repository-webhook).
type Hook struct {
	ID     int64             `json:"id"`
	Type   string            `json:"type"`
	Name   string            `json:"name"`
	Active bool              `json:"active"`
	Events []string          `json:"events"`
	Config map[string]string `json:"config"`
	// LastResponse is the hook's last delivery as GitHub reports it: {"code": null,
	// "status": "unused", "message": null} until the first one (Deliver, RecordDelivery).
	LastResponse HookResponse `json:"last_response"`
}

// HookResponse is a hook's "last_response" (GitHub's hook-response schema: code,
// status and message, each nullable).
type HookResponse struct {
	Code    *int    `json:"code"`
	Status  *string `json:"status"`
	Message *string `json:"message"`
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server
	// Token is the only credential the fake accepts.
	Token string

	t     testing.TB
	root  string // holds OWNER/NAME.git bare repositories
	mu    sync.Mutex
	stats []Status
	hooks map[string][]Hook
	next  int64
	reqs  int
	app   *app            // see apps.go; nil until EnableApp
	repos map[string]Repo // by "owner/name", every repository CreateRepo made

	// The OAuth web flow (oauth.go).
	clientID, clientSecret string
	user                   User
	knobs                  Knobs
	n                      int
	codes                  map[string]bool      // issued, unspent codes
	userTokens             map[string]time.Time // access token → expiry (zero: never)
	refresh                map[string]bool      // valid refresh tokens
	issued                 []string
}

// New starts a fake accepting token; it stops when the test ends.
func New(t testing.TB, token string) *Server {
	t.Helper()
	if _, err := os.Stat(HTTPBackend); err != nil {
		t.Skipf("git http-backend not installed (%v)", err)
	}
	s := &Server{Token: token, t: t, root: t.TempDir(), hooks: map[string][]Hook{}, repos: map[string]Repo{},
		codes: map[string]bool{}, userTokens: map[string]time.Time{}, refresh: map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// APIURL is the base URL to give package github as its API URL.
func (s *Server) APIURL() string { return s.URL + "/api/v3/" }

// WebURL is the base URL to give package github as its web URL.
func (s *Server) WebURL() string { return s.URL + "/" }

// Statuses returns the statuses posted so far, oldest first.
func (s *Server) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Status(nil), s.stats...)
}

// Hooks returns the hooks of repo ("owner/name").
func (s *Server) Hooks(repo string) []Hook {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Hook(nil), s.hooks[repo]...)
}

// Requests counts the requests served (authenticated or not).
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs
}

// CreateRepo makes an empty bare repository "owner/name" and returns its git directory.
func (s *Server) CreateRepo(repo string) string {
	s.t.Helper()
	dir := filepath.Join(s.root, repo+".git")
	s.git("", "init", "-q", "--bare", "-b", "main", dir)
	s.git(dir, "config", "http.receivepack", "false")
	s.mu.Lock()
	s.next++
	s.repos[repo] = Repo{ID: s.next, Admin: true}
	s.mu.Unlock()
	return dir
}

// Commit commits files (path → content) on branch of repo (created when
// needed), with the parent the branch had and the message "commit", and returns
// the commit id.
func (s *Server) Commit(repo, branch string, files map[string]string) string {
	s.t.Helper()
	return s.CommitMessage(repo, branch, "commit", files)
}

// CommitMessage is Commit with the commit message given.
func (s *Server) CommitMessage(repo, branch, message string, files map[string]string) string {
	s.t.Helper()
	bare := filepath.Join(s.root, repo+".git")
	work := s.t.TempDir()
	s.git("", "clone", "-q", bare, work)
	s.git(work, "checkout", "-q", "-B", branch)
	if out := s.gitOut(work, "ls-remote", "origin", "refs/heads/"+branch); out != "" {
		s.git(work, "reset", "-q", "--hard", "origin/"+branch)
	}
	for p, content := range files {
		full := filepath.Join(work, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			s.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
	s.git(work, "add", "-A")
	s.git(work, "-c", "user.name=Fake", "-c", "user.email=fake@example.com", "commit", "-q", "--allow-empty", "--cleanup=verbatim", "-m", message)
	s.git(work, "push", "-q", "origin", "HEAD:refs/heads/"+branch)
	return strings.TrimSpace(s.gitOut(work, "rev-parse", "HEAD"))
}

// Tag makes a lightweight tag at sha in repo.
func (s *Server) Tag(repo, tag, sha string) {
	s.git(filepath.Join(s.root, repo+".git"), "tag", tag, sha)
}

func (s *Server) git(dir string, args ...string) { s.gitOut(dir, args...) }

func (s *Server) gitOut(dir string, args ...string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("git %v: %v: %s", args, err, stderr.String())
	}
	return string(out)
}

// authorized checks the token: the operator's in constant time, or one the OAuth flow issued.
func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	var got string
	switch {
	case strings.HasPrefix(h, "Bearer "):
		got = strings.TrimPrefix(h, "Bearer ")
	case strings.HasPrefix(h, "token "):
		got = strings.TrimPrefix(h, "token ")
	case strings.HasPrefix(strings.ToLower(h), "basic "):
		raw, err := base64.StdEncoding.DecodeString(h[len("basic "):])
		if err != nil {
			return false
		}
		_, got, _ = strings.Cut(string(raw), ":")
	}
	if got == "" {
		return false
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.Token)) == 1 || s.installationToken(got, r.URL.Path) {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userToken(got)
}

var (
	contentsRE = regexp.MustCompile(`^/api/v3/repos/([^/]+/[^/]+)/contents/(.+)$`)
	commitsRE  = regexp.MustCompile(`^/api/v3/repos/([^/]+/[^/]+)/commits/(.+)$`)
	statusesRE = regexp.MustCompile(`^/api/v3/repos/([^/]+/[^/]+)/statuses/([0-9a-f]{40})$`)
	hooksRE    = regexp.MustCompile(`^/api/v3/repos/([^/]+/[^/]+)/hooks(?:/([0-9]+))?$`)
	gitRE      = regexp.MustCompile(`^/([^/]+/[^/]+\.git)(/.*)$`)
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.reqs++
	s.mu.Unlock()
	if s.serveApp(w, r) {
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/login/oauth/authorize":
		s.authorize(w, r)
		return
	case r.Method == http.MethodPost && r.URL.Path == "/login/oauth/access_token":
		s.accessToken(w, r)
		return
	}
	if !s.authorized(r) {
		if gitRE.MatchString(r.URL.Path) {
			w.Header().Set("WWW-Authenticate", `Basic realm="GitHub"`)
		}
		apiError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	p := r.URL.Path
	switch {
	case gitRE.MatchString(p):
		m := gitRE.FindStringSubmatch(p)
		if _, err := os.Stat(filepath.Join(s.root, m[1])); err != nil {
			http.NotFound(w, r)
			return
		}
		h := &cgi.Handler{Path: HTTPBackend, Root: "/", Env: []string{
			"GIT_PROJECT_ROOT=" + s.root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + os.DevNull,
		}}
		h.ServeHTTP(w, r)
	case r.Method == http.MethodGet && contentsRE.MatchString(p):
		m := contentsRE.FindStringSubmatch(p)
		s.contents(w, r, m[1], m[2], r.URL.Query().Get("ref"))
	case r.Method == http.MethodGet && commitsRE.MatchString(p):
		m := commitsRE.FindStringSubmatch(p)
		s.commit(w, r, m[1], m[2])
	case r.Method == http.MethodPost && statusesRE.MatchString(p):
		m := statusesRE.FindStringSubmatch(p)
		s.status(w, r, m[1], m[2])
	case r.Method == http.MethodGet && p == "/api/v3/user":
		s.authUser(w)
	case r.Method == http.MethodGet && p == "/api/v3/user/repos":
		s.userRepos(w, r)
	case hooksRE.MatchString(p):
		m := hooksRE.FindStringSubmatch(p)
		s.hook(w, r, m[1], m[2])
	default:
		apiError(w, http.StatusNotFound, "Not Found")
	}
}

func (s *Server) repoDir(repo string) (string, bool) {
	dir := filepath.Join(s.root, repo+".git")
	_, err := os.Stat(dir)
	return dir, err == nil
}

// rev runs git rev-parse --verify in a repository; "" when nothing matches.
func (s *Server) rev(dir, what string) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "--git-dir="+dir, "rev-parse", "-q", "--verify", "--end-of-options", what).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func (s *Server) contents(w http.ResponseWriter, r *http.Request, repo, path, ref string) {
	dir, ok := s.repoDir(repo)
	if ref == "" {
		ref = "HEAD"
	}
	if !ok || s.rev(dir, ref+"^{commit}") == "" {
		apiError(w, http.StatusNotFound, "No commit found for the ref "+ref)
		return
	}
	object := ref + ":" + path
	kind := strings.TrimSpace(s.runGit(dir, "cat-file", "-t", object))
	switch kind {
	case "blob":
	case "tree":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`[]`))
		return
	default:
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	data := []byte(s.runGit(dir, "cat-file", "blob", object))
	if strings.Contains(r.Header.Get("Accept"), "raw") {
		w.Header().Set("Content-Type", "application/vnd.github.raw")
		_, _ = w.Write(data)
		return
	}
	body := map[string]any{"type": "file", "name": filepath.Base(path), "path": path, "size": len(data),
		"sha": strings.TrimSpace(s.runGit(dir, "rev-parse", object)), "encoding": "base64",
		"content": base64.StdEncoding.EncodeToString(data)}
	if len(data) > 1<<20 { // GitHub leaves out the content of files over 1 MiB
		body["encoding"], body["content"] = "none", ""
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) runGit(dir string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "git", append([]string{"--git-dir=" + dir}, args...)...).Output()
	return string(out)
}

func (s *Server) commit(w http.ResponseWriter, r *http.Request, repo, ref string) {
	dir, ok := s.repoDir(repo)
	if !ok {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	sha := s.rev(dir, ref+"^{commit}")
	if sha == "" {
		apiError(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+ref)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "sha") {
		_, _ = w.Write([]byte(sha))
		return
	}
	// GitHub's commit: the message as git stores it, without the header.
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	obj, err := exec.CommandContext(ctx, "git", "--git-dir="+dir, "cat-file", "commit", sha).Output()
	if err != nil {
		apiError(w, http.StatusInternalServerError, "git cat-file: "+err.Error())
		return
	}
	_, msg, _ := strings.Cut(string(obj), "\n\n")
	writeJSON(w, http.StatusOK, map[string]any{"sha": sha, "commit": map[string]any{"message": msg}})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, repo, sha string) {
	var st Status
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&st); err != nil {
		apiError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	switch st.State {
	case "pending", "success", "failure", "error":
	default:
		apiError(w, http.StatusUnprocessableEntity, "Validation Failed")
		return
	}
	if dir, ok := s.repoDir(repo); !ok || s.rev(dir, sha+"^{commit}") == "" {
		apiError(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+sha)
		return
	}
	st.Repo, st.SHA = repo, sha
	s.mu.Lock()
	s.stats = append(s.stats, st)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, st)
}

func (s *Server) hook(w http.ResponseWriter, r *http.Request, repo, id string) {
	if _, ok := s.repoDir(repo); !ok {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case id != "" && r.Method == http.MethodGet:
		n, _ := strconv.ParseInt(id, 10, 64)
		for _, h := range s.hooks[repo] {
			if h.ID == n {
				writeJSON(w, http.StatusOK, masked(h))
				return
			}
		}
		apiError(w, http.StatusNotFound, "Not Found")
	case id == "" && r.Method == http.MethodGet:
		out := []Hook{}
		for _, h := range s.hooks[repo] {
			out = append(out, masked(h))
		}
		writeJSON(w, http.StatusOK, out)
	case id == "" && r.Method == http.MethodPost:
		var h Hook
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&h); err != nil || h.Config["url"] == "" {
			apiError(w, http.StatusUnprocessableEntity, "Validation Failed")
			return
		}
		s.next++
		h.ID, h.Type = s.next, "Repository"
		if h.Name == "" {
			h.Name = "web"
		}
		unused := "unused"
		h.LastResponse = HookResponse{Status: &unused}
		s.hooks[repo] = append(s.hooks[repo], h)
		writeJSON(w, http.StatusCreated, masked(h))
	case id != "" && r.Method == http.MethodPatch:
		n, _ := strconv.ParseInt(id, 10, 64)
		var edit struct {
			Active *bool             `json:"active"`
			Events []string          `json:"events"`
			Config map[string]string `json:"config"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&edit); err != nil {
			apiError(w, http.StatusUnprocessableEntity, "Validation Failed")
			return
		}
		for i, h := range s.hooks[repo] {
			if h.ID != n {
				continue
			}
			if edit.Active != nil {
				h.Active = *edit.Active
			}
			if edit.Events != nil {
				h.Events = edit.Events
			}
			if edit.Config != nil {
				h.Config = edit.Config
			}
			s.hooks[repo][i] = h
			writeJSON(w, http.StatusOK, masked(h))
			return
		}
		apiError(w, http.StatusNotFound, "Not Found")
	case id != "" && r.Method == http.MethodDelete:
		n, _ := strconv.ParseInt(id, 10, 64)
		for i, h := range s.hooks[repo] {
			if h.ID == n {
				s.hooks[repo] = append(s.hooks[repo][:i], s.hooks[repo][i+1:]...)
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		apiError(w, http.StatusNotFound, "Not Found")
	default:
		apiError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	}
}

// masked is a hook as GitHub shows it: the secret hidden.
func masked(h Hook) Hook {
	c := make(map[string]string, len(h.Config))
	for k, v := range h.Config {
		c[k] = v
	}
	if c["secret"] != "" {
		c["secret"] = "********"
	}
	h.Config = c
	return h
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		fmt.Fprintln(os.Stderr, "githubtest:", err)
	}
}
