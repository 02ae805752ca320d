package e2e_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestOrganizationsAndTeams: a user in two organisations, with a token bound to each,
// sees only that organisation's projects (the other's by id or name is 404); an
// existing user is added to a second organisation without a new token; a viewer put in a
// maintainer team may set a secret, and once the team is deleted may not (403) within
// seconds. Teams, organisations and organisation-bound tokens are driven through the CLI.
func TestOrganizationsAndTeams(t *testing.T) {
	orgsAndTeams(t, startDev(t))
}

// TestOrganizationsAndTeamsServices is TestOrganizationsAndTeams against the services as
// separate processes, where a team's change reaches the project service through its token
// cache (at most 5 s).
func TestOrganizationsAndTeamsServices(t *testing.T) {
	orgsAndTeams(t, startServices(t))
}

func orgsAndTeams(t *testing.T, a *api) {
	cli := func(token string, args ...string) string {
		t.Helper()
		out, err := runCLI(a.base, token, args...)
		if err != nil {
			t.Fatalf("simpleci %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	var m struct {
		Token string `json:"token"`
	}
	a.json("POST", "/api/v1/members", map[string]string{"login": "bo", "role": "viewer"}, http.StatusOK, &m)
	home := &api{t: t, base: a.base, token: m.Token}

	// bo makes an organisation of its own and a token acting in it.
	if out := cli(home.token, "orgs", "create", "bo-org"); !strings.Contains(out, "bo-org created") {
		t.Fatalf("orgs create: %s", out)
	}
	out := cli(home.token, "tokens", "create", "bo-org-token", "--org", "bo-org")
	f := strings.Fields(out)
	if !strings.Contains(out, "acts in bo-org") || !strings.HasPrefix(f[len(f)-1], "sci_") {
		t.Fatalf("tokens create --org: %s", out)
	}
	other := &api{t: t, base: a.base, token: f[len(f)-1]}
	if out := cli(home.token, "orgs", "list"); !strings.Contains(out, "bo-org") || !strings.Contains(out, "owner") || !strings.Contains(out, "default *") || !strings.Contains(out, "viewer") {
		t.Fatalf("orgs list: %s", out)
	}
	if code, b := home.do("POST", "/api/v1/tokens", map[string]string{"name": "x", "organization": "not-mine"}, nil); code != http.StatusNotFound {
		t.Fatalf("a token for an organisation bo is not in: %d %s", code, b)
	}

	var mine, shared project
	dir, _ := gitRepo(t, nil)
	other.json("POST", "/api/v1/projects", map[string]any{"name": "bo-proj", "provider": "local", "repository": dir}, http.StatusOK, &mine)
	dir, _ = gitRepo(t, nil)
	a.json("POST", "/api/v1/projects", map[string]any{"name": "shared", "provider": "local", "repository": dir}, http.StatusOK, &shared)
	names := func(c *api) []string {
		var out struct {
			Projects []project `json:"projects"`
		}
		c.json("GET", "/api/v1/projects", nil, http.StatusOK, &out)
		var n []string
		for _, p := range out.Projects {
			n = append(n, p.Name)
		}
		return n
	}
	if got := names(other); len(got) != 1 || got[0] != "bo-proj" {
		t.Errorf("projects with the bo-org token: %v, want [bo-proj]", got)
	}
	if got := names(home); !slices.Contains(got, "shared") || slices.Contains(got, "bo-proj") {
		t.Errorf("projects with the default token: %v, want shared and not bo-proj", got)
	}
	for _, c := range []struct {
		who    *api
		target string
	}{{other, "shared"}, {other, shared.ID}, {home, "bo-proj"}, {home, mine.ID}} {
		if code, b := c.who.do("GET", "/api/v1/projects/"+c.target, nil, nil); code != http.StatusNotFound {
			t.Errorf("the other organisation's project %s: %d %s, want 404", c.target, code, b)
		}
	}

	// An existing user (the admin) joins bo-org: no token comes with it.
	var added struct {
		Login, Role, Token string
	}
	other.json("POST", "/api/v1/members", map[string]string{"login": "admin", "role": "viewer"}, http.StatusOK, &added)
	if added.Token != "" || added.Role != "viewer" {
		t.Errorf("adding an existing user: %+v", added)
	}

	// A viewer in a maintainer team may set a secret; the team deleted, it may not.
	secret := func() int {
		code, _ := home.do("PUT", "/api/v1/projects/shared/secrets/TEAM_SECRET", map[string]string{"value": "team-value"}, nil)
		return code
	}
	if code := secret(); code != http.StatusForbidden {
		t.Fatalf("a viewer's secret: %d, want 403", code)
	}
	if out := cli(a.token, "teams", "create", "ops", "--role", "maintainer"); !strings.Contains(out, "team ops (maintainer)") {
		t.Fatalf("teams create: %s", out)
	}
	if out := cli(a.token, "teams", "add", "ops", "bo"); !strings.Contains(out, "team ops (maintainer): bo") {
		t.Fatalf("teams add: %s", out)
	}
	if out := cli(home.token, "teams", "list"); !strings.Contains(out, "ops") || !strings.Contains(out, "bo") {
		t.Fatalf("teams list: %s", out)
	}
	eventually(t, 10*time.Second, "the team's maintainer role reaching bo", func() bool { return secret() == http.StatusOK })
	if out := cli(a.token, "members", "list"); !strings.Contains(strings.Join(strings.Fields(out), " "), "bo viewer ops maintainer") {
		t.Errorf("members list shows bo's team and effective role: %s", out)
	}
	if code, b := other.do("GET", "/api/v1/teams/ops", nil, nil); code != http.StatusNotFound {
		t.Errorf("another organisation's team: %d %s, want 404", code, b)
	}
	if code, _ := home.do("DELETE", "/api/v1/teams/ops", nil, nil); code != http.StatusForbidden {
		t.Errorf("a maintainer deleting a team: %d, want 403", code)
	}
	if out := cli(a.token, "teams", "delete", "ops"); !strings.Contains(out, "deleted") {
		t.Fatalf("teams delete: %s", out)
	}
	start := time.Now()
	eventually(t, revokeBound, "the deleted team's role gone", func() bool { return secret() == http.StatusForbidden })
	t.Logf("the deleted team's role was gone after %v", time.Since(start).Round(time.Millisecond))
	// The bo-org token is untouched by all this.
	if got := names(other); len(got) != 1 {
		t.Errorf("bo-org projects at the end: %v", got)
	}
}
