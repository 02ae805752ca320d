package service_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/eventstore/pgtest"
	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	"github.com/simpleci/simpleci/services/auth/service"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// dialects runs fn against a fresh SQLite database and, when SIMPLECI_TEST_POSTGRES_URL is
// set (pgtest), a fresh PostgreSQL database.
func dialects(t *testing.T, fn func(t *testing.T, db *sqldb.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := sqldb.Open(testCtx(t), filepath.Join(t.TempDir(), "auth.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		fn(t, db)
	})
	t.Run("postgres", func(t *testing.T) {
		db, err := sqldb.Open(testCtx(t), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		fn(t, db)
	})
}

// clock is a controlled time for the service.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// as returns ctx authenticated with token, as the interceptor would.
func as(t *testing.T, svc *service.Service, token string) context.Context {
	t.Helper()
	p, err := svc.VerifyToken(testCtx(t), &authv1.VerifyTokenRequest{Token: token})
	if err != nil {
		t.Fatalf("VerifyToken: %v", err)
	}
	return auth.WithPrincipal(testCtx(t), p)
}

func verifyCode(svc *service.Service, token string) codes.Code {
	_, err := svc.VerifyToken(context.Background(), &authv1.VerifyTokenRequest{Token: token})
	return status.Code(err)
}

func TestTokens(t *testing.T) {
	dialects(t, func(t *testing.T, db *sqldb.DB) {
		ctx := testCtx(t)
		svc, err := service.New(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		clk := &clock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
		svc.Now = clk.Now
		var revoked []string
		svc.OnRevoke = func(id string) { revoked = append(revoked, id) }
		admin, _, err := svc.Bootstrap(ctx, filepath.Join(t.TempDir(), "admin-token"))
		if err != nil {
			t.Fatal(err)
		}
		actx := as(t, svc, admin)

		tok, err := svc.CreateToken(actx, &apiv1.CreateTokenRequest{Name: "ci laptop", ExpiresIn: "720h"})
		if err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		if !strings.HasPrefix(tok.GetToken(), service.TokenPrefix) || tok.GetId() == "" || tok.GetName() != "ci laptop" {
			t.Fatalf("created %v", tok)
		}
		if got := tok.GetExpiresAt().AsTime().Sub(tok.GetCreatedAt().AsTime()); got != 720*time.Hour {
			t.Fatalf("expires %v after creation, want 720h", got)
		}
		p, err := svc.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: tok.GetToken()})
		if err != nil || p.GetLogin() != "admin" || p.GetTokenId() != tok.GetId() || !p.GetExpiresAt().AsTime().Equal(tok.GetExpiresAt().AsTime()) {
			t.Fatalf("VerifyToken(new token) = %v, %v", p, err)
		}

		t.Run("default and bounded lifetime", func(t *testing.T) {
			d, err := svc.CreateToken(actx, &apiv1.CreateTokenRequest{Name: "default"})
			if err != nil {
				t.Fatal(err)
			}
			if got := d.GetExpiresAt().AsTime().Sub(d.GetCreatedAt().AsTime()); got != service.DefaultTokenLifetime {
				t.Fatalf("default lifetime %v, want %v", got, service.DefaultTokenLifetime)
			}
			for _, in := range []string{"abc", "-1h", "0", "30s", "8761h", "720"} {
				if _, err := svc.CreateToken(actx, &apiv1.CreateTokenRequest{Name: "x", ExpiresIn: in}); status.Code(err) != codes.InvalidArgument {
					t.Errorf("expiresIn %q: %v, want InvalidArgument", in, err)
				}
			}
			for _, name := range []string{"", " lead", "trail ", strings.Repeat("n", service.MaxTokenName+1), "bell\a", "new\nline", "\xff"} {
				if _, err := svc.CreateToken(actx, &apiv1.CreateTokenRequest{Name: name}); status.Code(err) != codes.InvalidArgument {
					t.Errorf("name %q: %v, want InvalidArgument", name, err)
				}
			}
			if _, err := svc.CreateToken(actx, &apiv1.CreateTokenRequest{Name: strings.Repeat("é", service.MaxTokenName), ExpiresIn: "8760h"}); err != nil {
				t.Errorf("longest name and lifetime: %v", err)
			}
		})

		t.Run("list shows metadata, never the token or its hash", func(t *testing.T) {
			if _, err := svc.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: tok.GetToken()}); err != nil {
				t.Fatal(err)
			}
			l, err := svc.ListTokens(actx, &apiv1.ListTokensRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var found *apiv1.Token
			var hashes []string
			rows, _ := db.QueryContext(ctx, `SELECT hash FROM auth_tokens`)
			for rows.Next() {
				var h string
				rows.Scan(&h)
				hashes = append(hashes, h)
			}
			rows.Close()
			for _, x := range l.GetTokens() {
				s := fmt.Sprint(x)
				if x.GetToken() != "" || strings.Contains(s, tok.GetToken()) {
					t.Errorf("listed token carries the secret: %v", x)
				}
				for _, h := range hashes {
					if strings.Contains(s, h) {
						t.Errorf("listed token carries a hash: %v", x)
					}
				}
				if x.GetId() == tok.GetId() {
					found = x
				}
			}
			if found == nil || found.GetLastUsedAt() == nil || found.GetCreatedAt() == nil || found.GetExpiresAt() == nil {
				t.Fatalf("list %v: want the new token with created, expires and last used", l)
			}
			if n := len(l.GetTokens()); n != 4 { // bootstrap, ci laptop, default, longest
				t.Fatalf("%d tokens listed, want 4", n)
			}
		})

		t.Run("another user's token is not found", func(t *testing.T) {
			var orgID string
			if err := db.QueryRowContext(ctx, `SELECT org_id FROM auth_users WHERE login = 'admin'`).Scan(&orgID); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, db.Q(`INSERT INTO auth_users (id, org_id, login, admin, created_at) VALUES ('u-bob', ?, 'bob', ?, 0)`), orgID, false); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, db.Q(`INSERT INTO auth_memberships (user_id, org_id, role, created_at) VALUES ('u-bob', ?, 'viewer', 0)`), orgID); err != nil {
				t.Fatal(err)
			}
			// bob has no token yet: give him one through a principal, as an admin tool would.
			bctx := auth.WithPrincipal(ctx, &authv1.Principal{UserId: "u-bob", OrgId: orgID, Login: "bob"})
			bt, err := svc.CreateToken(bctx, &apiv1.CreateTokenRequest{Name: "bob"})
			if err != nil {
				t.Fatal(err)
			}
			bctx = as(t, svc, bt.GetToken())
			if _, err := svc.RevokeToken(bctx, &apiv1.RevokeTokenRequest{Id: tok.GetId()}); status.Code(err) != codes.NotFound {
				t.Fatalf("bob revoking admin's token: %v, want NotFound", err)
			}
			if _, err := svc.RevokeToken(actx, &apiv1.RevokeTokenRequest{Id: "no-such-id"}); status.Code(err) != codes.NotFound {
				t.Fatalf("unknown id: %v, want NotFound", err)
			}
			l, err := svc.ListTokens(bctx, &apiv1.ListTokensRequest{})
			if err != nil || len(l.GetTokens()) != 1 || l.GetTokens()[0].GetId() != bt.GetId() {
				t.Fatalf("bob's list %v, %v: want only his token", l, err)
			}
			if verifyCode(svc, tok.GetToken()) != codes.OK {
				t.Fatal("admin's token stopped working after bob tried to revoke it")
			}
		})

		t.Run("peers have no tokens", func(t *testing.T) {
			ictx := auth.WithPrincipal(ctx, &authv1.Principal{Login: "service:gateway", Service: auth.Gateway})
			if _, err := svc.CreateToken(ictx, &apiv1.CreateTokenRequest{Name: "x"}); status.Code(err) != codes.PermissionDenied {
				t.Fatalf("internal caller: %v, want PermissionDenied", err)
			}
		})

		t.Run("revoke", func(t *testing.T) {
			if _, err := svc.RevokeToken(actx, &apiv1.RevokeTokenRequest{Id: tok.GetId()}); err != nil {
				t.Fatal(err)
			}
			if c := verifyCode(svc, tok.GetToken()); c != codes.Unauthenticated {
				t.Fatalf("revoked token: %v, want Unauthenticated", c)
			}
			if len(revoked) != 1 || revoked[0] != tok.GetId() {
				t.Fatalf("OnRevoke told %v, want [%s]", revoked, tok.GetId())
			}
			if _, err := svc.RevokeToken(actx, &apiv1.RevokeTokenRequest{Id: tok.GetId()}); status.Code(err) != codes.NotFound {
				t.Fatalf("revoking twice: %v, want NotFound", err)
			}
			l, _ := svc.ListTokens(actx, &apiv1.ListTokensRequest{})
			for _, x := range l.GetTokens() {
				if x.GetId() == tok.GetId() {
					t.Fatal("a revoked token is still listed")
				}
			}
		})

		t.Run("expiry", func(t *testing.T) {
			short, err := svc.CreateToken(actx, &apiv1.CreateTokenRequest{Name: "short", ExpiresIn: "1h"})
			if err != nil {
				t.Fatal(err)
			}
			clk.add(59 * time.Minute)
			if c := verifyCode(svc, short.GetToken()); c != codes.OK {
				t.Fatalf("before expiry: %v", c)
			}
			clk.add(time.Minute)
			if c := verifyCode(svc, short.GetToken()); c != codes.Unauthenticated {
				t.Fatalf("at expiry: %v, want Unauthenticated", c)
			}
			if c := verifyCode(svc, admin); c != codes.OK {
				t.Fatalf("the bootstrap token does not expire: %v", c)
			}
		})

		t.Run("at most MaxActiveTokens", func(t *testing.T) {
			l, _ := svc.ListTokens(actx, &apiv1.ListTokensRequest{})
			active := 0
			for _, x := range l.GetTokens() {
				if x.GetExpiresAt() == nil || x.GetExpiresAt().AsTime().After(clk.Now()) {
					active++
				}
			}
			for i := active; i < service.MaxActiveTokens; i++ {
				if _, err := svc.CreateToken(actx, &apiv1.CreateTokenRequest{Name: fmt.Sprint("t", i)}); err != nil {
					t.Fatalf("token %d: %v", i, err)
				}
			}
			if _, err := svc.CreateToken(actx, &apiv1.CreateTokenRequest{Name: "one too many"}); status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("token %d: %v, want ResourceExhausted", service.MaxActiveTokens+1, err)
			}
			l, _ = svc.ListTokens(actx, &apiv1.ListTokensRequest{})
			if _, err := svc.RevokeToken(actx, &apiv1.RevokeTokenRequest{Id: l.GetTokens()[0].GetId()}); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.CreateToken(actx, &apiv1.CreateTokenRequest{Name: "after a revoke"}); err != nil {
				t.Fatalf("after revoking one: %v", err)
			}
		})
	})
}

// Replacing or removing the admin token file rotates the admin token: the old one is
// refused, and a file holding a revoked token is refused rather than revived.
func TestBootstrapRotation(t *testing.T) {
	dialects(t, func(t *testing.T, db *sqldb.DB) {
		ctx := testCtx(t)
		svc, err := service.New(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "admin-token")
		old, created, err := svc.Bootstrap(ctx, file)
		if err != nil || !created {
			t.Fatal(created, err)
		}
		actx := as(t, svc, old)
		own, err := svc.CreateToken(actx, &apiv1.CreateTokenRequest{Name: "mine"})
		if err != nil {
			t.Fatal(err)
		}

		replacement := service.TokenPrefix + strings.Repeat("r", 40)
		if err := os.WriteFile(file, []byte(replacement+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		got, created, err := svc.Bootstrap(ctx, file)
		if err != nil || created || got != replacement {
			t.Fatalf("Bootstrap after replacing the file = %q, %v, %v", got, created, err)
		}
		if c := verifyCode(svc, old); c != codes.Unauthenticated {
			t.Fatalf("old admin token after rotation: %v, want Unauthenticated", c)
		}
		if c := verifyCode(svc, replacement); c != codes.OK {
			t.Fatalf("new admin token: %v", c)
		}
		if c := verifyCode(svc, own.GetToken()); c != codes.OK {
			t.Fatalf("a token the admin created is not the bootstrap token and stays valid: %v", c)
		}

		// Restoring the old file: refused, naming the file; the old token stays revoked.
		if err := os.WriteFile(file, []byte(old+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.Bootstrap(ctx, file); err == nil || !strings.Contains(err.Error(), "revoked") || !strings.Contains(err.Error(), file) {
			t.Fatalf("Bootstrap with a revoked token in the file: %v, want an error naming the file", err)
		}
		if c := verifyCode(svc, old); c != codes.Unauthenticated {
			t.Fatalf("restored old token: %v", c)
		}
		if c := verifyCode(svc, replacement); c != codes.OK {
			t.Fatalf("a refused restore revoked the current token: %v", c)
		}

		// Removing the file makes a new one at the next start and revokes the current.
		os.Remove(file)
		fresh, created, err := svc.Bootstrap(ctx, file)
		if err != nil || !created {
			t.Fatal(created, err)
		}
		if verifyCode(svc, replacement) != codes.Unauthenticated || verifyCode(svc, fresh) != codes.OK {
			t.Fatal("removing the file did not rotate the admin token")
		}
	})
}
