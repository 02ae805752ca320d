package service_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"github.com/simpleci/simpleci/services/auth/service"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestMembers: the bootstrap admin owns its organisation; an owner adds users with a
// role (their first token carries it through VerifyToken), changes and removes them;
// the last owner stays; bad logins and roles are refused with what is wrong.
func TestMembers(t *testing.T) {
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
		if p, _ := auth.PrincipalFrom(actx); p.GetRole() != "owner" {
			t.Fatalf("bootstrap admin's role %q, want owner", p.GetRole())
		}

		tokens := map[string]string{}
		for _, r := range []string{"viewer", "developer", "maintainer"} {
			m, err := svc.AddMember(actx, &apiv1.AddMemberRequest{Login: "u-" + r, Role: r})
			if err != nil {
				t.Fatalf("AddMember %s: %v", r, err)
			}
			if m.GetRole() != r || m.GetToken() == "" {
				t.Fatalf("AddMember %s: %v", r, m)
			}
			tokens[r] = m.GetToken()
			p, _ := auth.PrincipalFrom(as(t, svc, m.GetToken()))
			admP, _ := auth.PrincipalFrom(actx)
			if p.GetRole() != r || p.GetLogin() != "u-"+r || p.GetOrgId() != admP.GetOrgId() || p.GetAdmin() {
				t.Fatalf("principal of %s: %v", r, p)
			}
		}
		list, err := svc.ListMembers(actx, &apiv1.ListMembersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range list.GetMembers() {
			got = append(got, m.GetLogin()+":"+m.GetRole())
		}
		if want := []string{"admin:owner", "u-developer:developer", "u-maintainer:maintainer", "u-viewer:viewer"}; !slices.Equal(got, want) {
			t.Fatalf("members %v, want %v", got, want)
		}

		code := func(err error) codes.Code { return status.Code(err) }
		if _, err := svc.AddMember(actx, &apiv1.AddMemberRequest{Login: "u-viewer", Role: "viewer"}); code(err) != codes.AlreadyExists {
			t.Errorf("AddMember of a taken login: %v", err)
		}
		if _, err := svc.AddMember(actx, &apiv1.AddMemberRequest{Login: "Bad Login", Role: "viewer"}); code(err) != codes.InvalidArgument {
			t.Errorf("AddMember of a bad login: %v", err)
		}
		if _, err := svc.AddMember(actx, &apiv1.AddMemberRequest{Login: "x", Role: "admin"}); code(err) != codes.InvalidArgument {
			t.Errorf("AddMember with a bad role: %v", err)
		}
		// The last owner stays one.
		if _, err := svc.UpdateMember(actx, &apiv1.UpdateMemberRequest{Login: "admin", Role: "viewer"}); code(err) != codes.FailedPrecondition {
			t.Errorf("demoting the last owner: %v", err)
		}
		if _, err := svc.RemoveMember(actx, &apiv1.RemoveMemberRequest{Login: "admin"}); code(err) != codes.FailedPrecondition {
			t.Errorf("removing the last owner: %v", err)
		}
		if _, err := svc.UpdateMember(actx, &apiv1.UpdateMemberRequest{Login: "nobody", Role: "viewer"}); code(err) != codes.NotFound {
			t.Errorf("UpdateMember of nobody: %v", err)
		}
		// Promote the viewer; its next verification carries the new role, and this
		// process's cache forgets its token at once.
		if _, err := svc.UpdateMember(actx, &apiv1.UpdateMemberRequest{Login: "u-viewer", Role: "owner"}); err != nil {
			t.Fatal(err)
		}
		if len(revoked) != 1 {
			t.Errorf("OnRevoke told %v after a role change, want the member's one token", revoked)
		}
		revoked = nil
		if p, _ := auth.PrincipalFrom(as(t, svc, tokens["viewer"])); p.GetRole() != "owner" {
			t.Fatalf("promoted role %q", p.GetRole())
		}
		// Now two owners: the admin may step down.
		if _, err := svc.UpdateMember(actx, &apiv1.UpdateMemberRequest{Login: "admin", Role: "maintainer"}); err != nil {
			t.Fatalf("demoting one of two owners: %v", err)
		}
		revoked = nil
		// Removing a member revokes its tokens.
		if _, err := svc.RemoveMember(as(t, svc, tokens["viewer"]), &apiv1.RemoveMemberRequest{Login: "u-developer"}); err != nil {
			t.Fatal(err)
		}
		if c := verifyCode(svc, tokens["developer"]); c != codes.Unauthenticated {
			t.Errorf("removed member's token: %v, want Unauthenticated", c)
		}
		if len(revoked) != 1 {
			t.Errorf("OnRevoke told %v, want the removed member's one token", revoked)
		}
		if _, err := svc.RemoveMember(actx, &apiv1.RemoveMemberRequest{Login: "u-developer"}); code(err) != codes.NotFound {
			t.Errorf("removing a removed member: %v", err)
		}
		// A removed member can be added again, with a new token; the old one stays revoked.
		back, err := svc.AddMember(actx, &apiv1.AddMemberRequest{Login: "u-developer", Role: "viewer"})
		if err != nil {
			t.Fatalf("adding a removed member again: %v", err)
		}
		if p, _ := auth.PrincipalFrom(as(t, svc, back.GetToken())); p.GetRole() != "viewer" || p.GetLogin() != "u-developer" {
			t.Errorf("the member added again: %v", p)
		}
		if c := verifyCode(svc, tokens["developer"]); c != codes.Unauthenticated {
			t.Errorf("the removed member's old token: %v", c)
		}
		if _, err := svc.AddMember(actx, &apiv1.AddMemberRequest{Login: "u-developer", Role: "viewer"}); code(err) != codes.AlreadyExists {
			t.Errorf("adding a member twice: %v", err)
		}
	})
}
