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

// TestOrganizations: a user creates a second organisation (owner there), makes a token
// bound to each and acts in that one only, with its role there; another user is added
// to it as an existing user (no token made for it); removing a member revokes only its
// tokens bound to that organisation.
func TestOrganizations(t *testing.T) {
	dialects(t, func(t *testing.T, db *sqldb.DB) {
		ctx := testCtx(t)
		svc, err := service.New(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		admin, _, err := svc.Bootstrap(ctx, filepath.Join(t.TempDir(), "admin-token"))
		if err != nil {
			t.Fatal(err)
		}
		actx := as(t, svc, admin)
		adminP, _ := auth.PrincipalFrom(actx)
		code := func(err error) codes.Code { return status.Code(err) }

		alice, err := svc.AddMember(actx, &apiv1.AddMemberRequest{Login: "alice", Role: "developer"})
		if err != nil {
			t.Fatal(err)
		}
		home := as(t, svc, alice.GetToken())
		o, err := svc.CreateOrganization(home, &apiv1.CreateOrganizationRequest{Name: "acme"})
		if err != nil || o.GetRole() != "owner" || o.GetName() != "acme" {
			t.Fatalf("CreateOrganization: %v %v", o, err)
		}
		if _, err := svc.CreateOrganization(actx, &apiv1.CreateOrganizationRequest{Name: "acme"}); code(err) != codes.AlreadyExists {
			t.Errorf("a taken organisation name: %v", err)
		}
		if _, err := svc.CreateOrganization(actx, &apiv1.CreateOrganizationRequest{Name: "Bad Name"}); code(err) != codes.InvalidArgument {
			t.Errorf("a bad organisation name: %v", err)
		}
		list, err := svc.ListOrganizations(home, &apiv1.ListOrganizationsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range list.GetOrganizations() {
			got = append(got, o.GetName()+":"+o.GetRole()+":"+map[bool]string{true: "current", false: "-"}[o.GetCurrent()])
		}
		if want := []string{"acme:owner:-", "default:developer:current"}; !slices.Equal(got, want) {
			t.Fatalf("organisations %v, want %v", got, want)
		}

		tok, err := svc.CreateToken(home, &apiv1.CreateTokenRequest{Name: "acme", Organization: "acme"})
		if err != nil || tok.GetOrganization() != "acme" {
			t.Fatalf("CreateToken in acme: %v %v", tok, err)
		}
		acme := as(t, svc, tok.GetToken())
		p, _ := auth.PrincipalFrom(acme)
		if p.GetRole() != "owner" || p.GetOrgId() == adminP.GetOrgId() || p.GetLogin() != "alice" {
			t.Fatalf("the acme token's principal: %v", p)
		}
		if def, err := svc.CreateToken(acme, &apiv1.CreateTokenRequest{Name: "acme too"}); err != nil || def.GetOrganization() != "acme" {
			t.Fatalf("a token without organization is bound to the calling token's: %v %v", def, err)
		}
		if def, err := svc.CreateToken(home, &apiv1.CreateTokenRequest{Name: "home"}); err != nil || def.GetOrganization() != "default" {
			t.Fatalf("a token without organization made with the home token: %v %v", def, err)
		}
		for _, org := range []string{"nope", "acme"} {
			if _, err := svc.CreateToken(actx, &apiv1.CreateTokenRequest{Name: "x", Organization: org}); code(err) != codes.NotFound {
				t.Errorf("the admin's token in %s (not its organisation): %v, want NotFound", org, err)
			}
		}
		ts, err := svc.ListTokens(home, &apiv1.ListTokensRequest{})
		if err != nil {
			t.Fatal(err)
		}
		orgs := map[string]string{}
		for _, t := range ts.GetTokens() {
			orgs[t.GetName()] = t.GetOrganization()
		}
		if orgs["first"] != "default" || orgs["acme"] != "acme" || orgs["home"] != "default" {
			t.Errorf("listed tokens' organisations: %v", orgs)
		}

		// The admin, an existing user, is added to acme: no token is made for it; it
		// makes one bound to acme and acts there as a viewer.
		m, err := svc.AddMember(acme, &apiv1.AddMemberRequest{Login: "admin", Role: "viewer"})
		if err != nil || m.GetToken() != "" {
			t.Fatalf("adding an existing user: %v %v", m, err)
		}
		if _, err := svc.AddMember(acme, &apiv1.AddMemberRequest{Login: "admin", Role: "viewer"}); code(err) != codes.AlreadyExists {
			t.Errorf("adding a member twice: %v", err)
		}
		if _, err := svc.AddMember(acme, &apiv1.AddMemberRequest{Login: "github:nobody", Role: "viewer"}); code(err) != codes.NotFound {
			t.Errorf("adding a GitHub user that never signed in: %v", err)
		}
		at, err := svc.CreateToken(actx, &apiv1.CreateTokenRequest{Name: "in-acme", Organization: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		if p2, _ := auth.PrincipalFrom(as(t, svc, at.GetToken())); p2.GetRole() != "viewer" || p2.GetOrgId() != p.GetOrgId() {
			t.Fatalf("the admin in acme: %v", p2)
		}
		members, err := svc.ListMembers(acme, &apiv1.ListMembersRequest{})
		if err != nil || len(members.GetMembers()) != 2 {
			t.Fatalf("acme's members: %v %v", members, err)
		}
		// Removing the admin from acme revokes its acme token only.
		if _, err := svc.RemoveMember(acme, &apiv1.RemoveMemberRequest{Login: "admin"}); err != nil {
			t.Fatal(err)
		}
		if c := verifyCode(svc, at.GetToken()); c != codes.Unauthenticated {
			t.Errorf("the removed member's acme token: %v", c)
		}
		if c := verifyCode(svc, admin); c != codes.OK {
			t.Errorf("the removed member's token of its own organisation: %v", c)
		}
		// Removing alice from default leaves her acme token.
		if _, err := svc.RemoveMember(actx, &apiv1.RemoveMemberRequest{Login: "alice"}); err != nil {
			t.Fatal(err)
		}
		if c := verifyCode(svc, alice.GetToken()); c != codes.Unauthenticated {
			t.Errorf("alice's default token after removal: %v", c)
		}
		if c := verifyCode(svc, tok.GetToken()); c != codes.OK {
			t.Errorf("alice's acme token after her removal from default: %v", c)
		}
		// Without an organisation named, a token is made where the calling token acts
		// (acme), not in the own organisation she left.
		if tk, err := svc.CreateToken(acme, &apiv1.CreateTokenRequest{Name: "x"}); err != nil || tk.GetOrganization() != "acme" {
			t.Errorf("a token made with the acme token after leaving default: %v %v", tk, err)
		}
		if _, err := svc.CreateToken(acme, &apiv1.CreateTokenRequest{Name: "y", Organization: "default"}); code(err) != codes.NotFound {
			t.Errorf("a token of an own organisation the user left: %v", err)
		}
	})
}

// TestTeams: a team's role raises its members' effective role in its organisation only,
// at once in this process; changing the team's role, taking a member out, deleting the
// team and removing the member from the organisation lower it again; teams are scoped to
// their organisation.
func TestTeams(t *testing.T) {
	dialects(t, func(t *testing.T, db *sqldb.DB) {
		ctx := testCtx(t)
		svc, err := service.New(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		var forgotten []string
		svc.OnRevoke = func(id string) { forgotten = append(forgotten, id) }
		admin, _, err := svc.Bootstrap(ctx, filepath.Join(t.TempDir(), "admin-token"))
		if err != nil {
			t.Fatal(err)
		}
		actx := as(t, svc, admin)
		code := func(err error) codes.Code { return status.Code(err) }
		role := func(token string) string {
			p, _ := auth.PrincipalFrom(as(t, svc, token))
			return p.GetRole()
		}
		v, err := svc.AddMember(actx, &apiv1.AddMemberRequest{Login: "vic", Role: "viewer"})
		if err != nil {
			t.Fatal(err)
		}
		// vic owns an organisation of its own, with a team of the same name.
		if _, err := svc.CreateOrganization(as(t, svc, v.GetToken()), &apiv1.CreateOrganizationRequest{Name: "vics"}); err != nil {
			t.Fatal(err)
		}
		vt, err := svc.CreateToken(as(t, svc, v.GetToken()), &apiv1.CreateTokenRequest{Name: "vics", Organization: "vics"})
		if err != nil {
			t.Fatal(err)
		}
		vics := as(t, svc, vt.GetToken())
		if _, err := svc.CreateTeam(vics, &apiv1.CreateTeamRequest{Name: "ops", Role: "viewer"}); err != nil {
			t.Fatal(err)
		}

		team, err := svc.CreateTeam(actx, &apiv1.CreateTeamRequest{Name: "ops", Role: "maintainer"})
		if err != nil || team.GetRole() != "maintainer" || len(team.GetMembers()) != 0 {
			t.Fatalf("CreateTeam: %v %v", team, err)
		}
		if _, err := svc.CreateTeam(actx, &apiv1.CreateTeamRequest{Name: "ops", Role: "viewer"}); code(err) != codes.AlreadyExists {
			t.Errorf("a taken team name: %v", err)
		}
		if _, err := svc.CreateTeam(actx, &apiv1.CreateTeamRequest{Name: "x", Role: "boss"}); code(err) != codes.InvalidArgument {
			t.Errorf("a bad role: %v", err)
		}
		if _, err := svc.CreateTeam(actx, &apiv1.CreateTeamRequest{Name: "-x", Role: "viewer"}); code(err) != codes.InvalidArgument {
			t.Errorf("a bad team name: %v", err)
		}
		forgotten = nil
		team, err = svc.AddTeamMember(actx, &apiv1.AddTeamMemberRequest{Team: "ops", Login: "vic"})
		if err != nil || !slices.Equal(team.GetMembers(), []string{"vic"}) {
			t.Fatalf("AddTeamMember: %v %v", team, err)
		}
		if len(forgotten) != 1 {
			t.Errorf("OnRevoke told %v, want vic's one token of this organisation", forgotten)
		}
		if r := role(v.GetToken()); r != "maintainer" {
			t.Fatalf("vic's role in a maintainer team: %q", r)
		}
		if r := role(vt.GetToken()); r != "owner" {
			t.Errorf("vic's role in its own organisation: %q", r)
		}
		if _, err := svc.AddTeamMember(actx, &apiv1.AddTeamMemberRequest{Team: "ops", Login: "vic"}); err != nil {
			t.Errorf("adding a team member twice: %v", err)
		}
		if _, err := svc.AddTeamMember(actx, &apiv1.AddTeamMemberRequest{Team: "ops", Login: "nobody"}); code(err) != codes.NotFound {
			t.Errorf("adding a non-member to a team: %v", err)
		}
		if _, err := svc.AddTeamMember(actx, &apiv1.AddTeamMemberRequest{Team: "nope", Login: "vic"}); code(err) != codes.NotFound {
			t.Errorf("adding to an unknown team: %v", err)
		}
		// Scoped: vics' team is not default's, and the other way round.
		if got, err := svc.GetTeam(vics, &apiv1.GetTeamRequest{Team: "ops"}); err != nil || got.GetRole() != "viewer" || len(got.GetMembers()) != 0 {
			t.Errorf("vics' own team ops: %v %v", got, err)
		}
		if _, err := svc.AddTeamMember(vics, &apiv1.AddTeamMemberRequest{Team: "ops", Login: "admin"}); code(err) != codes.NotFound {
			t.Errorf("adding another organisation's user to a team: %v", err)
		}
		list, err := svc.ListTeams(actx, &apiv1.ListTeamsRequest{})
		if err != nil || len(list.GetTeams()) != 1 || !slices.Equal(list.GetTeams()[0].GetMembers(), []string{"vic"}) {
			t.Fatalf("ListTeams: %v %v", list, err)
		}

		// A lesser team role does not lower the member's own.
		if _, err := svc.UpdateTeam(actx, &apiv1.UpdateTeamRequest{Team: "ops", Role: "viewer"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.UpdateMember(actx, &apiv1.UpdateMemberRequest{Login: "vic", Role: "developer"}); err != nil {
			t.Fatal(err)
		}
		if r := role(v.GetToken()); r != "developer" {
			t.Errorf("a developer in a viewer team: %q", r)
		}
		if _, err := svc.UpdateTeam(actx, &apiv1.UpdateTeamRequest{Team: "ops", Role: "maintainer"}); err != nil {
			t.Fatal(err)
		}
		if r := role(v.GetToken()); r != "maintainer" {
			t.Errorf("after the team became maintainers: %q", r)
		}
		ms, err := svc.ListMembers(actx, &apiv1.ListMembersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms.GetMembers() {
			if m.GetLogin() == "vic" && (m.GetRole() != "developer" || m.GetEffectiveRole() != "maintainer" || !slices.Equal(m.GetTeams(), []string{"ops"})) {
				t.Errorf("vic as listed: %v", m)
			}
			if m.GetLogin() == "admin" && (m.GetEffectiveRole() != "owner" || len(m.GetTeams()) != 0) {
				t.Errorf("admin as listed: %v", m)
			}
		}
		if _, err := svc.RemoveTeamMember(actx, &apiv1.RemoveTeamMemberRequest{Team: "ops", Login: "vic"}); err != nil {
			t.Fatal(err)
		}
		if r := role(v.GetToken()); r != "developer" {
			t.Errorf("out of the team: %q", r)
		}
		if _, err := svc.RemoveTeamMember(actx, &apiv1.RemoveTeamMemberRequest{Team: "ops", Login: "vic"}); code(err) != codes.NotFound {
			t.Errorf("removing a non-member from a team: %v", err)
		}
		if _, err := svc.AddTeamMember(actx, &apiv1.AddTeamMemberRequest{Team: "ops", Login: "vic"}); err != nil {
			t.Fatal(err)
		}
		forgotten = nil
		if _, err := svc.DeleteTeam(actx, &apiv1.DeleteTeamRequest{Team: "ops"}); err != nil {
			t.Fatal(err)
		}
		if len(forgotten) != 1 {
			t.Errorf("OnRevoke told %v on deleting the team, want vic's token", forgotten)
		}
		if r := role(v.GetToken()); r != "developer" {
			t.Errorf("after the team was deleted: %q", r)
		}
		if _, err := svc.GetTeam(actx, &apiv1.GetTeamRequest{Team: "ops"}); code(err) != codes.NotFound {
			t.Errorf("a deleted team: %v", err)
		}
		if _, err := svc.DeleteTeam(actx, &apiv1.DeleteTeamRequest{Team: "ops"}); code(err) != codes.NotFound {
			t.Errorf("deleting a deleted team: %v", err)
		}
		// Removing a member from the organisation takes it out of its teams: added back,
		// it is not in them.
		if _, err := svc.CreateTeam(actx, &apiv1.CreateTeamRequest{Name: "owners", Role: "owner"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AddTeamMember(actx, &apiv1.AddTeamMemberRequest{Team: "owners", Login: "vic"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.RemoveMember(actx, &apiv1.RemoveMemberRequest{Login: "vic"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AddMember(actx, &apiv1.AddMemberRequest{Login: "vic", Role: "viewer"}); err != nil {
			t.Fatal(err)
		}
		if got, err := svc.GetTeam(actx, &apiv1.GetTeamRequest{Team: "owners"}); err != nil || len(got.GetMembers()) != 0 {
			t.Errorf("a removed member stays in the team: %v %v", got, err)
		}
	})
}

// TestGitHubUserInSecondOrganization: a user from sign-in with GitHub, who owns the
// organisation made for it, is added to another by its login (no token made for it),
// acts there with a token bound to it, and its sign-in tokens stay bound to its own.
func TestGitHubUserInSecondOrganization(t *testing.T) {
	dialects(t, func(t *testing.T, db *sqldb.DB) {
		r := newSignInRig(t, db)
		session := r.signIn()
		own := r.principal(session)
		admin, _, err := r.s.Bootstrap(testCtx(t), filepath.Join(t.TempDir(), "admin-token"))
		if err != nil {
			t.Fatal(err)
		}
		actx := as(t, r.s, admin)
		m, err := r.s.AddMember(actx, &apiv1.AddMemberRequest{Login: "github:octocat", Role: "maintainer"})
		if err != nil || m.GetToken() != "" {
			t.Fatalf("adding github:octocat: %v %v", m, err)
		}
		tok, err := r.s.CreateToken(as(t, r.s, session), &apiv1.CreateTokenRequest{Name: "ci", Organization: "default"})
		if err != nil {
			t.Fatal(err)
		}
		p := r.principal(tok.GetToken())
		adminP, _ := auth.PrincipalFrom(actx)
		if p.GetOrgId() != adminP.GetOrgId() || p.GetRole() != "maintainer" || p.GetUserId() != own.GetUserId() {
			t.Fatalf("octocat in default: %v", p)
		}
		again := r.principal(r.signIn())
		if again.GetOrgId() != own.GetOrgId() || again.GetRole() != "owner" {
			t.Fatalf("a new sign-in acts in its own organisation: %v, first %v", again, own)
		}
		if _, err := r.s.RemoveMember(actx, &apiv1.RemoveMemberRequest{Login: "github:octocat"}); err != nil {
			t.Fatal(err)
		}
		if c := verifyCode(r.s, tok.GetToken()); c != codes.Unauthenticated {
			t.Errorf("the default token after removal: %v", c)
		}
		if c := verifyCode(r.s, session); c != codes.OK {
			t.Errorf("the sign-in token after removal from default: %v", c)
		}
	})
}
