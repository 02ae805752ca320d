package e2e_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// revokeBound is the documented bound (docs/security.md) within which a revoked token is
// refused everywhere: the verification cache's lifetime (auth.CacheTTL), plus slack for
// the test's own requests.
const revokeBound = 5*time.Second + 2*time.Second

type apiToken struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Created  string `json:"createdAt"`
	Expires  string `json:"expiresAt"`
	LastUsed string `json:"lastUsedAt"`
	Token    string `json:"token"`
}

// refusedWithin waits until token is refused (401) on an authenticated call, within
// revokeBound.
func refusedWithin(t *testing.T, base, token string) {
	t.Helper()
	u := &api{t: t, base: base, token: token}
	start := time.Now()
	eventually(t, revokeBound, "the revoked token refused with 401", func() bool {
		code, _ := u.do("GET", "/api/v1/projects", nil, nil)
		return code == http.StatusUnauthorized
	})
	t.Logf("revoked token refused after %v", time.Since(start).Round(time.Millisecond))
}

// TestDevTokens drives the token API of `simpleci dev` over REST and the CLI: create,
// use, list, revoke (refused within the documented bound), and rotation of the admin
// token by replacing its file.
func TestDevTokens(t *testing.T) {
	data := t.TempDir()
	a, p, _ := startDevIn(t, data)

	var tok apiToken
	t.Run("REST", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		a.json("POST", "/api/v1/tokens", map[string]string{"name": "e2e", "expiresIn": "1h"}, http.StatusOK, &tok)
		if !strings.HasPrefix(tok.Token, "sci_") || tok.ID == "" || tok.Expires == "" {
			t.Fatalf("created %+v", tok)
		}
		u := &api{t: t, base: a.base, token: tok.Token}
		u.json("GET", "/api/v1/projects", nil, http.StatusOK, nil)

		code, b := a.do("GET", "/api/v1/tokens", nil, nil)
		if code != http.StatusOK || !strings.Contains(string(b), tok.ID) || strings.Contains(string(b), tok.Token) || strings.Contains(string(b), `"token"`) {
			t.Fatalf("list: %d %s: want the id, never the token", code, b)
		}
		for _, bad := range []map[string]string{{"name": "x", "expiresIn": "9000h"}, {"name": "x", "expiresIn": "soon"}, {"name": ""}, {"name": strings.Repeat("n", 65)}} {
			if code, b := a.do("POST", "/api/v1/tokens", bad, nil); code != http.StatusBadRequest {
				t.Errorf("create %v: %d %s, want 400", bad, code, b)
			}
		}
		if code, _ := (&api{t: t, base: a.base}).do("GET", "/api/v1/tokens", nil, nil); code != http.StatusUnauthorized {
			t.Errorf("list without a token: %d, want 401", code)
		}
		if code, b := a.do("DELETE", "/api/v1/tokens/no-such-token", nil, nil); code != http.StatusNotFound {
			t.Errorf("revoke an unknown id: %d %s, want 404", code, b)
		}

		a.json("DELETE", "/api/v1/tokens/"+tok.ID, nil, http.StatusOK, nil)
		refusedWithin(t, a.base, tok.Token)
		if code, _ := a.do("DELETE", "/api/v1/tokens/"+tok.ID, nil, nil); code != http.StatusNotFound {
			t.Errorf("revoking twice: %d, want 404", code)
		}
	})

	t.Run("CLI", func(t *testing.T) {
		cli := func(token string, args ...string) (string, error) { return runCLI(a.base, token, args...) }
		out, err := cli(a.token, "tokens", "create", "from-cli", "--expires", "2h")
		if err != nil {
			t.Fatalf("tokens create: %v\n%s", err, out)
		}
		f := strings.Fields(out)
		if len(f) < 2 || f[0] != "token" || !strings.HasPrefix(f[len(f)-1], "sci_") {
			t.Fatalf("tokens create printed %q", out)
		}
		id, secret := f[1], f[len(f)-1]
		if out, err := cli(secret, "projects", "list"); err != nil || !strings.Contains(out, "demo") {
			t.Fatalf("the new token does not work: %v\n%s", err, out)
		}
		if out, err := cli(a.token, "tokens", "list"); err != nil || !strings.Contains(out, id) || !strings.Contains(out, "from-cli") || strings.Contains(out, secret) {
			t.Fatalf("tokens list: %v\n%s", err, out)
		}
		if out, err := cli(a.token, "tokens", "revoke", id); err != nil || !strings.Contains(out, "revoked") {
			t.Fatalf("tokens revoke: %v\n%s", err, out)
		}
		refusedWithin(t, a.base, secret)
		if out, err := cli(secret, "tokens", "list"); err == nil || !strings.Contains(out, "401") {
			t.Fatalf("the revoked token still lists: %v\n%s", err, out)
		}
		if out, err := cli(a.token, "tokens", "revoke", id); err == nil || !strings.Contains(out, "404") {
			t.Fatalf("revoking twice: %v\n%s", err, out)
		}
	})

	t.Run("rotating the admin token file revokes the old token", func(t *testing.T) {
		p.stop()
		fresh := "sci_" + strings.Repeat("f", 40)
		if err := os.WriteFile(filepath.Join(data, "admin-token"), []byte(fresh+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		p.restart(t)
		n := &api{t: t, base: a.base, token: fresh}
		eventually(t, 60*time.Second, "readiness after the restart", func() bool { return n.up("/readyz") })
		n.json("GET", "/api/v1/projects", nil, http.StatusOK, nil)
		old := &api{t: t, base: a.base, token: a.token}
		if code, _ := old.do("GET", "/api/v1/projects", nil, nil); code != http.StatusUnauthorized {
			t.Fatalf("the old admin token after rotation: %d, want 401", code)
		}
		log, _ := os.ReadFile(p.log)
		if c := strings.Count(string(log), "Admin API token (first start)"); c != 1 {
			t.Fatalf("the admin token was printed %d times, want once (first start only)", c)
		}
	})
}
