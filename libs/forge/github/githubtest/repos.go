package githubtest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Repo is what the fake tells of a repository besides its git content: whether it
// is private and whether the user (anyone the fake authenticates) administers it.
type Repo struct {
	ID      int64
	Private bool
	// Admin is the user's admin permission (CreateRepo: true); false leaves push and pull.
	Admin bool
}

// SetRepo changes what the fake tells of repo (made by CreateRepo; its id stays).
func (s *Server) SetRepo(repo string, private, admin bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.repos[repo]
	if !ok {
		s.t.Fatalf("githubtest: SetRepo of %s, which CreateRepo did not make", repo)
	}
	r.Private, r.Admin = private, admin
	s.repos[repo] = r
}

// userRepos answers GET /user/repos: every repository, sorted by full name (GitHub's
// default sort for this list), paged with page and per_page (default 30, at most 100
// or Knobs.MaxPerPage) and a Link header as GitHub sends it, each repository with the
// user's "permissions".
// https://docs.github.com/en/rest/repos/repos#list-repositories-for-the-authenticated-user
// https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api
func (s *Server) userRepos(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, perPage := 1, 30
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			n = 1 // GitHub treats a bad page as the first
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			perPage = n
		}
	}
	s.mu.Lock()
	if s.knobs.UserDown {
		s.mu.Unlock()
		apiError(w, http.StatusServiceUnavailable, "Service Unavailable")
		return
	}
	limit := 100
	if s.knobs.MaxPerPage > 0 {
		limit = s.knobs.MaxPerPage
	}
	perPage = min(perPage, limit)
	names := make([]string, 0, len(s.repos))
	for name := range s.repos {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	repos := make(map[string]Repo, len(s.repos))
	for k, v := range s.repos {
		repos[k] = v
	}
	s.mu.Unlock()

	last := max(1, (len(names)+perPage-1)/perPage)
	out := []map[string]any{}
	for i := (page - 1) * perPage; i < len(names) && i < page*perPage; i++ {
		out = append(out, s.repoJSON(names[i], repos[names[i]]))
	}
	link := func(p int, rel string) string {
		u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path}
		if r.TLS != nil {
			u.Scheme = "https"
		}
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("page", strconv.Itoa(p))
		v.Set("per_page", strconv.Itoa(perPage))
		u.RawQuery = v.Encode()
		return fmt.Sprintf(`<%s>; rel="%s"`, u.String(), rel)
	}
	// GitHub's order: prev, next, last, first; the first page has no prev/first, the
	// last no next/last.
	var rels []string
	if page > 1 {
		rels = append(rels, link(page-1, "prev"))
	}
	if page < last {
		rels = append(rels, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		rels = append(rels, link(1, "first"))
	}
	if len(rels) > 0 {
		w.Header().Set("Link", strings.Join(rels, ", "))
	}
	writeJSON(w, http.StatusOK, out)
}

// repoJSON is a repository as the list shows it (the fields SimpleCI reads and a few
// more of GitHub's "repository" schema).
func (s *Server) repoJSON(full string, r Repo) map[string]any {
	owner, name, _ := strings.Cut(full, "/")
	visibility := "public"
	if r.Private {
		visibility = "private"
	}
	return map[string]any{
		"id": r.ID, "name": name, "full_name": full, "private": r.Private, "visibility": visibility,
		"owner":    map[string]any{"login": owner, "type": "User"},
		"html_url": s.URL + "/" + full, "url": s.URL + "/api/v3/repos/" + full,
		"clone_url": s.URL + "/" + full + ".git", "default_branch": "main", "fork": false, "archived": false,
		"permissions": map[string]bool{"admin": r.Admin, "maintain": r.Admin, "push": true, "triage": true, "pull": true},
	}
}

// RecordDelivery sets the last_response of hook id of repo, as GitHub does after
// delivering: the answer's code, a status ("active" for a 2xx, otherwise "failed") and
// a message.
func (s *Server) RecordDelivery(repo string, id int64, code int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	status := "failed"
	if code >= 200 && code < 300 {
		status = "active"
	}
	for i, h := range s.hooks[repo] {
		if h.ID == id {
			s.hooks[repo][i].LastResponse = HookResponse{Code: &code, Status: &status, Message: &message}
			return
		}
	}
	s.t.Errorf("githubtest: RecordDelivery for unknown hook %d of %s", id, repo)
}

// Deliver sends body as GitHub would to hook id of repo: signed with the secret the
// hook was registered with (X-Hub-Signature-256), with X-GitHub-Event event and a new
// X-GitHub-Delivery, posted to the hook's URL with its scheme and host replaced by
// base (the test's server: the hook's own URL is the deployment's public one). The
// answer is recorded as the hook's last_response and returned.
func (s *Server) Deliver(repo string, id int64, event string, body []byte, base string) (int, []byte) {
	s.t.Helper()
	s.mu.Lock()
	var hook *Hook
	for _, h := range s.hooks[repo] {
		if h.ID == id {
			hook = &h
		}
	}
	s.mu.Unlock()
	if hook == nil {
		s.t.Fatalf("githubtest: Deliver to unknown hook %d of %s", id, repo)
		return 0, nil
	}
	target, err := url.Parse(hook.Config["url"])
	if err != nil {
		s.t.Fatalf("githubtest: hook url: %v", err)
	}
	b, err := url.Parse(base)
	if err != nil {
		s.t.Fatalf("githubtest: base %q: %v", base, err)
	}
	target.Scheme, target.Host = b.Scheme, b.Host
	mac := hmac.New(sha256.New, []byte(hook.Config["secret"]))
	mac.Write(body)
	guid := make([]byte, 16)
	rand.Read(guid)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/fake")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", hex.EncodeToString(guid))
	req.Header.Set("X-GitHub-Hook-ID", strconv.FormatInt(id, 10))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.RecordDelivery(repo, id, 502, "failed to connect to host")
		return 0, nil
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	msg := "OK"
	if resp.StatusCode/100 != 2 {
		msg = "Invalid HTTP Response: " + strconv.Itoa(resp.StatusCode)
	}
	s.RecordDelivery(repo, id, resp.StatusCode, msg)
	return resp.StatusCode, answer
}
