package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/forge/github/githubtest"
)

const (
	fakeClientID     = "Iv1.e2eclient"
	fakeClientSecret = "e2e-client-secret-value"
)

// oauthGitHub is the fake GitHub (githubtest) as an OAuth App that e2e-octocat signs in to.
func oauthGitHub(t *testing.T) *githubtest.Server {
	gh := githubtest.New(t, githubToken)
	gh.EnableOAuth(fakeClientID, fakeClientSecret, githubtest.User{ID: 9001, Login: "e2e-octocat"})
	return gh
}

// TestGitHubSignIn signs in to `simpleci dev` through a fake GitHub as a browser would
// (following redirects, with a cookie jar), then uses the session token on the API; the
// GitHub token shows up in no API answer, no log line and no file of the data directory.
func TestGitHubSignIn(t *testing.T) {
	gh := oauthGitHub(t)
	data := t.TempDir()
	secretFile := filepath.Join(t.TempDir(), "client-secret")
	if err := os.WriteFile(secretFile, []byte(fakeClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin, p := startDevWith(t, nil, data, nil, "--github-client-id", fakeClientID, "--github-client-secret-file", secretFile,
		"--github-url", gh.WebURL(), "--github-api-url", gh.APIURL())

	resp, page, session := signInBehind(t, admin.base, "")
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("the token page is cacheable: Cache-Control %q", cc)
	}
	user := &api{t: t, base: admin.base, token: session}

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

	tokens := gh.IssuedTokens()
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
