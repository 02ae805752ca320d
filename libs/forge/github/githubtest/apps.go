package githubtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The GitHub App side of the fake, as GitHub documents it:
//   - GET  /repos/{o}/{r}/installation with the app's JWT (RS256, iss = app id,
//     at most 10 minutes): the installation, or 404 when the app is not installed
//     https://docs.github.com/en/rest/apps/apps#get-a-repository-installation-for-the-authenticated-app
//   - POST /app/installations/{id}/access_tokens with the JWT: {token, expires_at}
//     https://docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app
//   - POST /repos/{o}/{r}/check-runs and PATCH /repos/{o}/{r}/check-runs/{id}:
//     only with an installation token (anything else 403, as GitHub answers a
//     personal token) https://docs.github.com/en/rest/checks/runs
// An installation token works for the rest of the API and git like Token, on the
// repositories of the owner it was installed for.

// CheckRun is a check run the fake keeps; Updates counts the PATCHes.
type CheckRun struct {
	ID         int64  `json:"id"`
	Repo       string `json:"-"`
	HeadSHA    string `json:"head_sha"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Conclusion string `json:"conclusion,omitempty"`
	DetailsURL string `json:"details_url,omitempty"`
	ExternalID string `json:"external_id,omitempty"`
	Output     struct {
		Title   string `json:"title,omitempty"`
		Summary string `json:"summary,omitempty"`
	} `json:"output"`
	StartedAt   string `json:"started_at,omitempty"`
	CompletedAt string `json:"completed_at,omitempty"`
	Updates     int    `json:"-"`
}

// app is the fake's one GitHub App.
type app struct {
	id       int64
	key      *rsa.PublicKey
	installs map[string]int64        // owner → installation id
	tokens   map[string]installation // installation token → what it is for
	tokenTTL time.Duration
	checks   []CheckRun
	made     int // installation tokens made
}

type installation struct {
	id      int64
	owner   string
	expires time.Time
}

// EnableApp makes the fake know a GitHub App with the given id and returns its
// private key in PEM form (PKCS #1), for a key file.
func (s *Server) EnableApp(id int64) []byte {
	s.t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.app = &app{id: id, key: &key.PublicKey, installs: map[string]int64{}, tokens: map[string]installation{}, tokenTTL: time.Hour}
	s.mu.Unlock()
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

// Install installs the app on every repository of owner.
func (s *Server) Install(owner string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.app.installs[strings.ToLower(owner)] = int64(1000 + len(s.app.installs))
}

// SetInstallationTokenTTL sets how long the installation tokens made from now
// on live (GitHub: one hour).
func (s *Server) SetInstallationTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.app.tokenTTL = d
}

// InstallationTokensMade counts the installation tokens the fake has issued.
func (s *Server) InstallationTokensMade() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.app == nil {
		return 0
	}
	return s.app.made
}

// CheckRuns returns the check runs created so far, oldest first.
func (s *Server) CheckRuns() []CheckRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.app == nil {
		return nil
	}
	return append([]CheckRun(nil), s.app.checks...)
}

// installationToken reports whether token is a live installation token for a
// request to path (its owner's repositories, or git).
func (s *Server) installationToken(token, path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.app == nil {
		return false
	}
	for t, in := range s.app.tokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			return time.Now().Before(in.expires) && ownerOf(path) == in.owner
		}
	}
	return false
}

var ownerRE = regexp.MustCompile(`^(?:/api/v3/repos)?/([^/]+)/`)

func ownerOf(path string) string {
	m := ownerRE.FindStringSubmatch(path)
	if m == nil {
		return ""
	}
	return strings.ToLower(m[1])
}

var (
	installationRE = regexp.MustCompile(`^/api/v3/repos/([^/]+)/([^/]+)/installation$`)
	accessTokensRE = regexp.MustCompile(`^/api/v3/app/installations/([0-9]+)/access_tokens$`)
	checkRunsRE    = regexp.MustCompile(`^/api/v3/repos/([^/]+/[^/]+)/check-runs(?:/([0-9]+))?$`)
)

// serveApp answers the app's own requests (JWT) and check runs; it reports
// whether the request was one of them.
func (s *Server) serveApp(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodGet && installationRE.MatchString(p):
		if !s.appJWT(w, r) {
			return true
		}
		m := installationRE.FindStringSubmatch(p)
		s.mu.Lock()
		id, ok := s.app.installs[strings.ToLower(m[1])]
		appID := s.app.id
		s.mu.Unlock()
		if _, exists := s.repoDir(m[1] + "/" + m[2]); !ok || !exists {
			apiError(w, http.StatusNotFound, "Not Found")
			return true
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "app_id": appID, "account": map[string]any{"login": m[1]}})
	case r.Method == http.MethodPost && accessTokensRE.MatchString(p):
		if !s.appJWT(w, r) {
			return true
		}
		id, _ := strconv.ParseInt(accessTokensRE.FindStringSubmatch(p)[1], 10, 64)
		s.mu.Lock()
		defer s.mu.Unlock()
		for owner, inst := range s.app.installs {
			if inst == id {
				b := make([]byte, 18)
				_, _ = rand.Read(b)
				token := "ghs_" + hex.EncodeToString(b)
				expires := time.Now().Add(s.app.tokenTTL)
				s.app.tokens[token] = installation{id: id, owner: owner, expires: expires}
				s.app.made++
				writeJSON(w, http.StatusCreated, map[string]any{"token": token, "expires_at": expires.UTC().Format(time.RFC3339)})
				return true
			}
		}
		apiError(w, http.StatusNotFound, "Not Found")
	case checkRunsRE.MatchString(p):
		s.checkRun(w, r, checkRunsRE.FindStringSubmatch(p))
	default:
		return false
	}
	return true
}

// appJWT checks the app's JWT as GitHub does, answering 401 when it fails.
func (s *Server) appJWT(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	a := s.app
	s.mu.Unlock()
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if a == nil || !ok {
		apiError(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
		return false
	}
	claims := jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return a.key, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err == nil && (claims.Issuer != strconv.FormatInt(a.id, 10) || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 10*time.Minute+time.Second) {
		err = fmt.Errorf("issuer %q or lifetime refused", claims.Issuer)
	}
	if err != nil {
		apiError(w, http.StatusUnauthorized, "'Expiration time' claim ('exp') or 'Issuer' claim ('iss') is invalid: "+err.Error())
		return false
	}
	return true
}

// checkRun creates (POST) or updates (PATCH) a check run; only an installation
// token may.
func (s *Server) checkRun(w http.ResponseWriter, r *http.Request, m []string) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !s.installationToken(token, r.URL.Path) {
		apiError(w, http.StatusForbidden, "You must authenticate via a GitHub App.")
		return
	}
	repo, id := m[1], m[2]
	var in CheckRun
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		apiError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	switch in.Status {
	case "queued", "in_progress", "completed", "":
	default:
		apiError(w, http.StatusUnprocessableEntity, "Validation Failed")
		return
	}
	if in.Status == "completed" && in.Conclusion == "" {
		apiError(w, http.StatusUnprocessableEntity, "Validation Failed: conclusion is required when status is completed")
		return
	}
	switch {
	case id == "" && r.Method == http.MethodPost:
		if dir, ok := s.repoDir(repo); !ok || s.rev(dir, in.HeadSHA+"^{commit}") == "" || in.Name == "" {
			apiError(w, http.StatusUnprocessableEntity, "Validation Failed")
			return
		}
		s.mu.Lock()
		s.next++
		in.ID, in.Repo = s.next, repo
		if in.Status == "" {
			in.Status = "queued"
		}
		s.app.checks = append(s.app.checks, in)
		s.mu.Unlock()
		writeJSON(w, http.StatusCreated, in)
	case id != "" && r.Method == http.MethodPatch:
		n, _ := strconv.ParseInt(id, 10, 64)
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, c := range s.app.checks {
			if c.ID != n || c.Repo != repo {
				continue
			}
			if in.Status != "" {
				c.Status = in.Status
			}
			if in.Conclusion != "" {
				c.Conclusion = in.Conclusion
			}
			if in.Output.Title != "" || in.Output.Summary != "" {
				c.Output = in.Output
			}
			if in.CompletedAt != "" {
				c.CompletedAt = in.CompletedAt
			}
			if in.DetailsURL != "" {
				c.DetailsURL = in.DetailsURL
			}
			c.Updates++
			s.app.checks[i] = c
			writeJSON(w, http.StatusOK, c)
			return
		}
		apiError(w, http.StatusNotFound, "Not Found")
	default:
		apiError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	}
}
