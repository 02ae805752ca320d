package auth

import (
	"context"
	"testing"

	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestMethodPermissionCoversUsers: every method the ACL opens to users has a row in
// MethodPermission (a new user method must say which role it takes), and every row is a
// user method.
func TestMethodPermissionCoversUsers(t *testing.T) {
	for m, callers := range ACL {
		if _, ok := MethodPermission[m]; callers&Users != 0 && !ok {
			t.Errorf("%s is open to users but has no row in MethodPermission (roles.go)", m)
		}
	}
	for m := range MethodPermission {
		if ACL[m]&Users == 0 {
			t.Errorf("MethodPermission row %s: not a method the ACL opens to users", m)
		}
	}
}

// TestRoleGrants is the roles table of docs/api.md.
func TestRoleGrants(t *testing.T) {
	want := map[Role][]Permission{
		"":         {Authenticated},
		"bogus":    {Authenticated},
		Viewer:     {Authenticated, Read},
		Developer:  {Authenticated, Read, Run},
		Maintainer: {Authenticated, Read, Run, Configure},
		Owner:      {Authenticated, Read, Run, Configure, Administer},
	}
	for role, perms := range want {
		for p := Authenticated; p <= Administer; p++ {
			has := false
			for _, q := range perms {
				has = has || q == p
			}
			if got := role.Grants(p); got != has {
				t.Errorf("role %q grants %v: %v, want %v", role, p, got, has)
			}
		}
	}
	for _, s := range []string{"viewer", "developer", "maintainer", "owner"} {
		if r, err := ParseRole(s); err != nil || string(r) != s {
			t.Errorf("ParseRole(%q) = %q, %v", s, r, err)
		}
	}
	for _, s := range []string{"", "Owner", "admin"} {
		if _, err := ParseRole(s); err == nil {
			t.Errorf("ParseRole(%q) accepted", s)
		}
	}
}

type roleVerifier map[string]*authv1.Principal

func (v roleVerifier) VerifyToken(_ context.Context, token string) (*authv1.Principal, error) {
	if p, ok := v[token]; ok {
		return p, nil
	}
	return nil, status.Error(codes.Unauthenticated, "invalid token")
}

// TestInterceptorChecksRole: the interceptor refuses a user whose role lacks the
// method's permission (PermissionDenied, naming the role needed) and lets others by.
func TestInterceptorChecksRole(t *testing.T) {
	user := func(role Role) *authv1.Principal {
		return &authv1.Principal{UserId: "u-" + string(role), OrgId: "o1", Login: "user-" + string(role), Role: string(role)}
	}
	a := &Authenticator{Verifier: roleVerifier{"v": user(Viewer), "d": user(Developer), "m": user(Maintainer), "o": user(Owner), "none": user("")}}
	call := func(token, method string) codes.Code {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))
		_, err := a.Unary()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) { return "ok", nil })
		return status.Code(err)
	}
	tests := []struct {
		method string
		token  string
		want   codes.Code
	}{
		{apiv1.RunService_GetRun_FullMethodName, "v", codes.OK},
		{apiv1.RunService_GetRun_FullMethodName, "none", codes.PermissionDenied},
		{apiv1.RunService_TriggerRun_FullMethodName, "v", codes.PermissionDenied},
		{apiv1.RunService_TriggerRun_FullMethodName, "d", codes.OK},
		{apiv1.RunService_CancelRun_FullMethodName, "d", codes.OK},
		{apiv1.ProjectService_SetSecret_FullMethodName, "d", codes.PermissionDenied},
		{apiv1.ProjectService_SetSecret_FullMethodName, "m", codes.OK},
		{apiv1.ProjectService_CreateProject_FullMethodName, "m", codes.OK},
		{apiv1.MemberService_AddMember_FullMethodName, "m", codes.PermissionDenied},
		{apiv1.MemberService_AddMember_FullMethodName, "o", codes.OK},
		{apiv1.MemberService_ListMembers_FullMethodName, "v", codes.OK},
		{apiv1.TokenService_CreateToken_FullMethodName, "none", codes.OK},
		{apiv1.TokenService_CreateToken_FullMethodName, "nope", codes.Unauthenticated},
	}
	for _, tt := range tests {
		if got := call(tt.token, tt.method); got != tt.want {
			t.Errorf("%s as %q: %v, want %v", tt.method, tt.token, got, tt.want)
		}
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer v"))
	_, err := a.Unary()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: apiv1.RunService_TriggerRun_FullMethodName}, nil)
	if msg := status.Convert(err).Message(); msg != "user user-viewer (viewer in this organisation) may not TriggerRun: that takes the developer role or above" {
		t.Errorf("refusal message: %q", msg)
	}
}

// TestHighest: a member's effective role is the most of its own and its teams' roles;
// unknown roles and none count for nothing.
func TestHighest(t *testing.T) {
	for _, c := range []struct {
		in   []Role
		want Role
	}{
		{nil, ""},
		{[]Role{""}, ""},
		{[]Role{"boss", ""}, ""},
		{[]Role{Viewer, ""}, Viewer},
		{[]Role{Viewer, Maintainer, Developer}, Maintainer},
		{[]Role{Owner, Viewer}, Owner},
		{[]Role{"", "boss", Developer}, Developer},
	} {
		if got := Highest(c.in...); got != c.want {
			t.Errorf("Highest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
