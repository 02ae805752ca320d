package service_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	"github.com/simpleci/simpleci/services/auth/service"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRunnerTokens: admins register, list and revoke runners; a runner token verifies to
// a runner principal (no user, no organisation) until it is revoked; nobody else may
// manage runners.
func TestRunnerTokens(t *testing.T) {
	dialects(t, func(t *testing.T, db *sqldb.DB) {
		ctx := testCtx(t)
		svc, err := service.New(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		var revoked []string
		svc.OnRevoke = func(id string) { revoked = append(revoked, id) }
		admin, _, err := svc.Bootstrap(ctx, filepath.Join(t.TempDir(), "admin-token"))
		if err != nil {
			t.Fatal(err)
		}
		actx := as(t, svc, admin)

		r1, err := svc.RegisterRunner(actx, &apiv1.RegisterRunnerRequest{Name: "build-1"})
		if err != nil {
			t.Fatalf("RegisterRunner: %v", err)
		}
		if name, err := auth.RunnerTokenName(r1.GetToken()); err != nil || name != "build-1" {
			t.Fatalf("token %q names %q (%v)", r1.GetToken(), name, err)
		}
		p, err := svc.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: r1.GetToken()})
		if err != nil {
			t.Fatalf("VerifyToken: %v", err)
		}
		if p.GetRunner() != "build-1" || p.GetUserId() != "" || p.GetOrgId() != "" || p.GetAdmin() || p.GetService() != "" || p.GetTokenId() == "" {
			t.Fatalf("runner principal %v", p)
		}
		var stored string
		if err := db.QueryRowContext(ctx, `SELECT hash FROM auth_runners WHERE name = 'build-1'`).Scan(&stored); err != nil || strings.Contains(stored, r1.GetToken()) {
			t.Fatalf("stored %q (%v): want a hash, not the token", stored, err)
		}

		t.Run("bad names", func(t *testing.T) {
			for _, name := range []string{"", "Build", "-x", "a_b", "a b", strings.Repeat("a", 64), "ü"} {
				if _, err := svc.RegisterRunner(actx, &apiv1.RegisterRunnerRequest{Name: name}); status.Code(err) != codes.InvalidArgument {
					t.Errorf("name %q: %v, want InvalidArgument", name, err)
				}
			}
		})
		t.Run("a name is registered once", func(t *testing.T) {
			if _, err := svc.RegisterRunner(actx, &apiv1.RegisterRunnerRequest{Name: "build-1"}); status.Code(err) != codes.AlreadyExists {
				t.Fatalf("second registration: %v, want AlreadyExists", err)
			}
		})
		t.Run("only admins manage runners", func(t *testing.T) {
			bob := auth.WithPrincipal(ctx, &authv1.Principal{UserId: "u-bob", OrgId: "o", Login: "bob"})
			rctx := auth.WithPrincipal(ctx, p)
			sctx := auth.WithPrincipal(ctx, &authv1.Principal{Service: auth.Gateway, Login: "service:gateway"})
			for name, cx := range map[string]func() error{
				"user register":   func() error { _, err := svc.RegisterRunner(bob, &apiv1.RegisterRunnerRequest{Name: "x"}); return err },
				"user list":       func() error { _, err := svc.ListRunners(bob, &apiv1.ListRunnersRequest{}); return err },
				"user revoke":     func() error { _, err := svc.RevokeRunner(bob, &apiv1.RevokeRunnerRequest{Name: "build-1"}); return err },
				"runner register": func() error { _, err := svc.RegisterRunner(rctx, &apiv1.RegisterRunnerRequest{Name: "x"}); return err },
				"service list":    func() error { _, err := svc.ListRunners(sctx, &apiv1.ListRunnersRequest{}); return err },
			} {
				if err := cx(); status.Code(err) != codes.PermissionDenied {
					t.Errorf("%s: %v, want PermissionDenied", name, err)
				}
			}
		})
		t.Run("list shows names, never tokens", func(t *testing.T) {
			if _, err := svc.RegisterRunner(actx, &apiv1.RegisterRunnerRequest{Name: "build-0"}); err != nil {
				t.Fatal(err)
			}
			l, err := svc.ListRunners(actx, &apiv1.ListRunnersRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range l.GetRunners() {
				names = append(names, r.GetName())
				if r.GetToken() != "" || strings.Contains(fmt.Sprint(r), stored) {
					t.Errorf("listed runner carries its token or hash: %v", r)
				}
			}
			if strings.Join(names, ",") != "build-0,build-1" {
				t.Fatalf("runners %v", names)
			}
			if l.GetRunners()[1].GetLastUsedAt() == nil {
				t.Error("build-1 was used, its last use is not shown")
			}
		})
		t.Run("revoke", func(t *testing.T) {
			if _, err := svc.RevokeRunner(actx, &apiv1.RevokeRunnerRequest{Name: "build-1"}); err != nil {
				t.Fatal(err)
			}
			if c := verifyCode(svc, r1.GetToken()); c != codes.Unauthenticated {
				t.Fatalf("revoked runner token: %v, want Unauthenticated", c)
			}
			if len(revoked) != 1 || revoked[0] != p.GetTokenId() {
				t.Fatalf("OnRevoke told %v, want [%s]", revoked, p.GetTokenId())
			}
			if _, err := svc.RevokeRunner(actx, &apiv1.RevokeRunnerRequest{Name: "build-1"}); status.Code(err) != codes.NotFound {
				t.Fatalf("revoking twice: %v, want NotFound", err)
			}
			// The name can be registered again, with a new token; the old stays revoked.
			r2, err := svc.RegisterRunner(actx, &apiv1.RegisterRunnerRequest{Name: "build-1"})
			if err != nil {
				t.Fatal(err)
			}
			if verifyCode(svc, r2.GetToken()) != codes.OK || verifyCode(svc, r1.GetToken()) != codes.Unauthenticated {
				t.Fatal("after re-registering: want the new token valid and the old one refused")
			}
		})
		t.Run("forged runner tokens", func(t *testing.T) {
			for _, tok := range []string{"scr_build-0_" + strings.Repeat("0", 48), "scr_build-0", "scr__x", strings.Replace(r1.GetToken(), "build-1", "build-0", 1)} {
				if c := verifyCode(svc, tok); c != codes.Unauthenticated {
					t.Errorf("token %q: %v, want Unauthenticated", tok, c)
				}
			}
		})
	})
}
