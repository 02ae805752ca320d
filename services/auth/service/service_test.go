package service_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	"github.com/simpleci/simpleci/services/auth/service"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type env struct {
	dbPath string
	db     *sqldb.DB
	svc    *service.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := sqldb.Open(testCtx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := service.New(testCtx(t), db)
	if err != nil {
		t.Fatal(err)
	}
	return &env{dbPath: path, db: db, svc: svc}
}

func TestNewNilDB(t *testing.T) {
	if _, err := service.New(context.Background(), nil); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}

func TestBootstrapCreatesTokenFile(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	file := filepath.Join(t.TempDir(), "state", "nested", "admin-token")

	token, created, err := e.svc.Bootstrap(ctx, file)
	if err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	if !created {
		t.Fatal("first Bootstrap: created = false")
	}
	if !strings.HasPrefix(token, service.TokenPrefix) || len(token) < len(service.TokenPrefix)+32 {
		t.Fatalf("token %q: want %q and at least 32 more characters", token, service.TokenPrefix)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("token file mode %o, want 600", mode)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(b)) != token {
		t.Fatalf("file holds %q, Bootstrap returned %q", b, token)
	}
	if di, err := os.Stat(filepath.Dir(file)); err != nil || di.Mode().Perm()&0o077 != 0 {
		t.Fatalf("token directory: %v, mode %v; want no group/other access", err, di.Mode().Perm())
	}

	t.Run("idempotent", func(t *testing.T) {
		again, created, err := e.svc.Bootstrap(ctx, file)
		if err != nil || created || again != token {
			t.Fatalf("second Bootstrap = %q, %v, %v; want the same token, not created", again, created, err)
		}
	})
	t.Run("idempotent across a new Service over the same database", func(t *testing.T) {
		db2, err := sqldb.Open(ctx, e.dbPath)
		if err != nil {
			t.Fatal(err)
		}
		defer db2.Close()
		svc2, err := service.New(ctx, db2)
		if err != nil {
			t.Fatal(err)
		}
		again, created, err := svc2.Bootstrap(ctx, file)
		if err != nil || created || again != token {
			t.Fatalf("Bootstrap on a new Service = %q, %v, %v", again, created, err)
		}
		if _, err := svc2.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: token}); err != nil {
			t.Fatalf("new Service refuses the token: %v", err)
		}
	})
	t.Run("one org, one admin, one token", func(t *testing.T) {
		for table, want := range map[string]int{"auth_orgs": 1, "auth_users": 1, "auth_tokens": 1} {
			var n int
			if err := e.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != want {
				t.Errorf("%s has %d rows, want %d", table, n, want)
			}
		}
	})
}

func TestBootstrapExistingFile(t *testing.T) {
	good := service.TokenPrefix + strings.Repeat("ab", 20)
	tests := []struct {
		name    string
		content string
		want    string // "" means Bootstrap must fail
	}{
		{"operator-supplied token", good, good},
		{"trailing newline and spaces", "  " + good + "\n\n", good},
		{"exactly 32 characters after the prefix", service.TokenPrefix + strings.Repeat("x", 32), service.TokenPrefix + strings.Repeat("x", 32)},
		{"empty file", "", ""},
		{"no prefix", strings.Repeat("ab", 30), ""},
		{"prefix only", service.TokenPrefix, ""},
		{"too short", service.TokenPrefix + strings.Repeat("x", 31), ""},
		{"other prefix", "ghp_" + strings.Repeat("ab", 20), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := testCtx(t)
			file := filepath.Join(t.TempDir(), "admin-token")
			if err := os.WriteFile(file, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			token, created, err := e.svc.Bootstrap(ctx, file)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("Bootstrap accepted %q as a token", tt.content)
				}
				if !strings.Contains(err.Error(), file) {
					t.Errorf("error %q should name the file", err)
				}
				b, _ := os.ReadFile(file)
				if string(b) != tt.content {
					t.Errorf("Bootstrap rewrote a malformed token file: %q", b)
				}
				var n int
				if err := e.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM auth_tokens`).Scan(&n); err != nil || n != 0 {
					t.Errorf("auth_tokens has %d rows (%v), want 0", n, err)
				}
				return
			}
			if err != nil || created || token != tt.want {
				t.Fatalf("Bootstrap = %q, %v, %v; want %q, not created", token, created, err, tt.want)
			}
			if _, err := e.svc.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: tt.want}); err != nil {
				t.Fatalf("VerifyToken refuses the bootstrapped token: %v", err)
			}
		})
	}
}

func TestBootstrapUnreadableFile(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir() // a directory where the file should be
	if _, _, err := e.svc.Bootstrap(testCtx(t), dir); err == nil {
		t.Fatal("Bootstrap with a directory as token file succeeded")
	}
}

func TestVerifyToken(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	token, _, err := e.svc.Bootstrap(ctx, filepath.Join(t.TempDir(), "admin-token"))
	if err != nil {
		t.Fatal(err)
	}

	p, err := e.svc.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: token})
	if err != nil {
		t.Fatalf("VerifyToken: %v", err)
	}
	if p.GetLogin() != "admin" || !p.GetAdmin() || p.GetUserId() == "" || p.GetOrgId() == "" {
		t.Fatalf("principal %v: want the admin user of an organisation", p)
	}

	for _, tt := range []struct{ name, token string }{
		{"empty", ""},
		{"prefix only", service.TokenPrefix},
		{"other sci token", service.TokenPrefix + strings.Repeat("0", 48)},
		{"without prefix", strings.TrimPrefix(token, service.TokenPrefix)},
		{"trailing newline", token + "\n"},
		{"upper case", strings.ToUpper(token)},
		{"truncated", token[:len(token)-1]},
		{"sha256 hash of the token", storedHash(t, e)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: tt.token})
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("VerifyToken(%q): %v, want Unauthenticated", tt.token, err)
			}
		})
	}

	t.Run("Local adapter", func(t *testing.T) {
		p, err := service.Local{S: e.svc}.VerifyToken(ctx, token)
		if err != nil || p.GetLogin() != "admin" {
			t.Fatalf("Local.VerifyToken = %v, %v", p, err)
		}
		if _, err := (service.Local{S: e.svc}).VerifyToken(ctx, "sci_nope"); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("Local.VerifyToken(bad) = %v", err)
		}
	})
	t.Run("Client adapter sets a deadline", func(t *testing.T) {
		c := &fakeAuthClient{svc: e.svc}
		p, err := service.Client{C: c}.VerifyToken(context.Background(), token)
		if err != nil || p.GetLogin() != "admin" {
			t.Fatalf("Client.VerifyToken = %v, %v", p, err)
		}
		if !c.hadDeadline {
			t.Fatal("Client.VerifyToken called auth without a deadline")
		}
	})
}

type fakeAuthClient struct {
	svc         *service.Service
	hadDeadline bool
}

func (f *fakeAuthClient) VerifyToken(ctx context.Context, in *authv1.VerifyTokenRequest, _ ...grpc.CallOption) (*authv1.Principal, error) {
	_, f.hadDeadline = ctx.Deadline()
	return f.svc.VerifyToken(ctx, in)
}

// storedHash returns the stored token hash, to check that presenting the hash itself is refused.
func storedHash(t *testing.T, e *env) string {
	t.Helper()
	var h string
	if err := e.db.QueryRowContext(testCtx(t), `SELECT hash FROM auth_tokens LIMIT 1`).Scan(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestPlainTokenNeverStored scans every auth_* table, and the database files themselves,
// for the token.
func TestPlainTokenNeverStored(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	var tokens []string
	for _, f := range []string{"a", "b"} {
		tok, _, err := e.svc.Bootstrap(ctx, filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok)
	}
	// And a runner's token (auth_runners).
	rt, err := e.svc.RegisterRunner(as(t, e.svc, tokens[1]), &apiv1.RegisterRunnerRequest{Name: "needle"})
	if err != nil {
		t.Fatal(err)
	}
	tokens = append(tokens, rt.GetToken())
	// The secret part alone must not be stored either.
	var needles []string
	for _, tok := range tokens {
		needles = append(needles, tok, strings.TrimPrefix(tok, service.TokenPrefix), strings.TrimPrefix(tok, "scr_needle_"))
	}

	rows, err := e.db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'auth\_%' ESCAPE '\' AND name <> ?`,
		service.Schema.VersionTable())
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	// auth_oauth_states holds hashes of sign-in states and auth_github_accounts sealed
	// GitHub tokens (TestGitHubTokenSealed); a new table must be added to this scan.
	if len(tables) != 9 {
		t.Fatalf("auth tables %v, want auth_orgs, auth_users, auth_tokens, auth_runners, auth_oauth_states, auth_github_accounts, auth_memberships, auth_teams, auth_team_members", tables)
	}
	cells := 0
	for _, table := range tables {
		t.Run(table, func(t *testing.T) {
			rows, err := e.db.QueryContext(ctx, `SELECT * FROM `+table)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			cols, _ := rows.Columns()
			for rows.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				for i, v := range vals {
					var s string
					switch v := v.(type) {
					case string:
						s = v
					case []byte:
						s = string(v)
					default:
						continue
					}
					cells++
					for _, n := range needles {
						if strings.Contains(s, n) {
							t.Errorf("%s.%s holds the plain token", table, cols[i])
						}
					}
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
	if cells == 0 {
		t.Fatal("no text cells scanned")
	}

	t.Run("database files", func(t *testing.T) {
		if _, err := e.db.ExecContext(ctx, `PRAGMA wal_checkpoint(FULL)`); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(e.dbPath + "*")
		if len(files) == 0 {
			t.Fatal("no database files found")
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range tokens {
				if bytes.Contains(b, []byte(tok)) {
					t.Errorf("%s contains a plain token", filepath.Base(f))
				}
			}
		}
	})
	t.Run("the hash is stored", func(t *testing.T) {
		var n int
		err := e.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM auth_tokens WHERE length(hash) = 64`).Scan(&n)
		if err != nil || n != 2 {
			t.Fatalf("%d hashed tokens (%v), want 2", n, err)
		}
	})
}

// A second token file is a rotation: its token is the admin's, the first one's is revoked.
func TestBootstrapSecondTokenFile(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	a, _, err := e.svc.Bootstrap(ctx, filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, created, err := e.svc.Bootstrap(ctx, filepath.Join(dir, "b"))
	if err != nil || !created || a == b {
		t.Fatalf("second file: %q created %v err %v", b, created, err)
	}
	_, errA := e.svc.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: a})
	pb, errB := e.svc.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: b})
	if status.Code(errA) != codes.Unauthenticated || errB != nil || pb.GetLogin() != "admin" {
		t.Fatalf("tokens: first %v (want Unauthenticated), second %v %v", errA, errB, pb)
	}
	var users int
	if err := e.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM auth_users`).Scan(&users); err != nil || users != 1 {
		t.Fatalf("%d users (%v), want 1", users, err)
	}
}
