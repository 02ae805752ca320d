package e2e_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/proto/simpleci/api/openapi"
)

// matrixCaller is one column of the authorization matrix.
type matrixCaller struct {
	name  string
	token string
	role  auth.Role // "" for the outsider, the revoked token and no token
}

// matrixRow is one API operation: how to call it for a caller (setting up what the call
// consumes, as the admin), the permission it takes, and whether it touches a resource of
// the organisation (another organisation's member gets 404) or is the admins' (runner
// tokens: 403 to every other user).
type matrixRow struct {
	perm      auth.Permission
	scoped    bool
	adminOnly bool
	call      func(c matrixCaller, n int) (method, path string, body any)
	// allowed is the answer to a caller the role check lets through; 0 means 200.
	allowed int
}

// TestAuthorizationMatrix: every operation of the REST API (the operations of the API
// document, made from the protos' HTTP rules, and the log stream) × owner, maintainer,
// developer, viewer, an owner of another organisation (and no member of this one), a
// revoked token and no token gets
// exactly the allowed answer: 200, 403 for a role that lacks the permission, 404 for
// another organisation's resource (never 403: ids do not leak), 401 without a valid
// token. The users are made through the members API; an operation without a row fails.
func TestAuthorizationMatrix(t *testing.T) {
	data := t.TempDir()
	admin, _ := startDevWith(t, nil, data, nil, "--trigger-rate", "off")

	// A finished run of the demo project to read, cancel and tail.
	var r run
	admin.json("POST", "/api/v1/projects/demo/runs", map[string]string{"ref": "main"}, http.StatusOK, &r)
	r = admin.waitRun(r.ID, 60*time.Second)

	member := func(login, role string) string {
		var m struct {
			Token string `json:"token"`
			Role  string `json:"role"`
		}
		admin.json("POST", "/api/v1/members", map[string]string{"login": login, "role": role}, http.StatusOK, &m)
		if m.Token == "" || m.Role != role {
			t.Fatalf("member %s: %+v", login, m)
		}
		return m.Token
	}
	callers := []matrixCaller{
		{"owner", member("m-owner", "owner"), auth.Owner},
		{"maintainer", member("m-maintainer", "maintainer"), auth.Maintainer},
		{"developer", member("m-developer", "developer"), auth.Developer},
		{"viewer", member("m-viewer", "viewer"), auth.Viewer},
		{"other-org", member("m-outsider", "owner"), ""},
		{"revoked", "", ""},
		{"no-token", "", ""},
	}
	// The outsider owns another organisation, which it creates, acting there with a token
	// of it; then it leaves this one (its tokens here are revoked).
	outsider := &api{t: t, base: admin.base, token: callers[4].token}
	outsider.json("POST", "/api/v1/organizations", map[string]string{"name": "other"}, http.StatusOK, nil)
	var otk apiToken
	outsider.json("POST", "/api/v1/tokens", map[string]string{"name": "other", "organization": "other"}, http.StatusOK, &otk)
	admin.json("DELETE", "/api/v1/members/m-outsider", nil, http.StatusOK, nil)
	callers[4].token = otk.Token
	// A team of this organisation, of viewers, to read and change.
	admin.json("POST", "/api/v1/teams", map[string]string{"name": "matrix", "role": "viewer"}, http.StatusOK, nil)
	var tok apiToken
	admin.json("POST", "/api/v1/tokens", map[string]string{"name": "to-revoke"}, http.StatusOK, &tok)
	admin.json("DELETE", "/api/v1/tokens/"+tok.ID, nil, http.StatusOK, nil)
	callers[5].token = tok.Token

	newProject := func(name string) {
		dir, _ := gitRepo(t, nil)
		admin.json("POST", "/api/v1/projects", map[string]any{"name": name, "provider": "local", "repository": dir}, http.StatusOK, nil)
	}
	rows := map[string]matrixRow{
		"ProjectService_ListProjects": {perm: auth.Read, call: getOp("/api/v1/projects")},
		"ProjectService_GetProject":   {perm: auth.Read, scoped: true, call: getOp("/api/v1/projects/demo")},
		"ProjectService_CreateProject": {perm: auth.Configure, call: func(c matrixCaller, n int) (string, string, any) {
			dir, _ := gitRepo(t, nil)
			return "POST", "/api/v1/projects", map[string]any{"name": fmt.Sprintf("new-%s-%d", c.name, n), "provider": "local", "repository": dir}
		}},
		"ProjectService_UpdateProject": {perm: auth.Configure, scoped: true, call: func(matrixCaller, int) (string, string, any) {
			return "PATCH", "/api/v1/projects/demo", map[string]any{"events": []string{"push", "manual"}}
		}},
		"ProjectService_DeleteProject": {perm: auth.Administer, scoped: true, call: func(c matrixCaller, n int) (string, string, any) {
			name := fmt.Sprintf("del-%s-%d", c.name, n)
			newProject(name)
			return "DELETE", "/api/v1/projects/" + name, nil
		}},
		"ProjectService_ListSecrets": {perm: auth.Read, scoped: true, call: getOp("/api/v1/projects/demo/secrets")},
		"ProjectService_SetSecret": {perm: auth.Configure, scoped: true, call: func(matrixCaller, int) (string, string, any) {
			return "PUT", "/api/v1/projects/demo/secrets/MATRIX", map[string]string{"value": "matrix-value"}
		}},
		"ProjectService_DeleteSecret": {perm: auth.Configure, scoped: true, call: func(c matrixCaller, n int) (string, string, any) {
			admin.json("PUT", "/api/v1/projects/demo/secrets/GONE", map[string]string{"value": "gone-value"}, http.StatusOK, nil)
			return "DELETE", "/api/v1/projects/demo/secrets/GONE", nil
		}},
		"RunService_ListRuns":      {perm: auth.Read, scoped: true, call: getOp("/api/v1/projects/demo/runs")},
		"RunService_GetRun":        {perm: auth.Read, scoped: true, call: getOp("/api/v1/runs/" + r.ID)},
		"RunService_ListRunEvents": {perm: auth.Read, scoped: true, call: getOp("/api/v1/runs/" + r.ID + "/events")},
		"LogService_GetLogs":       {perm: auth.Read, scoped: true, call: getOp("/api/v1/runs/" + r.ID + "/logs")},
		"LogService_TailLogs":      {perm: auth.Read, scoped: true, call: getOp("/api/v1/runs/" + r.ID + "/logs:stream")},
		"RunService_ListTiers":     {perm: auth.Read, call: getOp("/api/v1/tiers")},
		"RunService_TriggerRun": {perm: auth.Run, scoped: true, call: func(matrixCaller, int) (string, string, any) {
			return "POST", "/api/v1/projects/demo/runs", map[string]string{"ref": "main"}
		}},
		"RunService_CancelRun": {perm: auth.Run, scoped: true, call: func(matrixCaller, int) (string, string, any) {
			return "POST", "/api/v1/runs/" + r.ID + ":cancel", map[string]any{}
		}},
		"RunService_RerunRun": {perm: auth.Run, scoped: true, call: func(matrixCaller, int) (string, string, any) {
			return "POST", "/api/v1/runs/" + r.ID + ":rerun", map[string]any{}
		}},
		"RunService_ListSchedules": {perm: auth.Read, scoped: true, call: getOp("/api/v1/projects/demo/schedules")},
		"RunService_SetSchedules": {perm: auth.Configure, scoped: true, call: func(matrixCaller, int) (string, string, any) {
			return "PUT", "/api/v1/projects/demo/schedules", map[string]any{"schedules": []any{}}
		}},
		"FileService_ListArtifacts": {perm: auth.Read, scoped: true, call: getOp("/api/v1/runs/" + r.ID + "/artifacts")},
		"FileService_ListCaches":    {perm: auth.Read, scoped: true, call: getOp("/api/v1/projects/demo/caches")},
		// No such entry: a caller the role check lets through hears 404.
		"FileService_DeleteCache": {perm: auth.Configure, scoped: true, allowed: http.StatusNotFound, call: func(matrixCaller, int) (string, string, any) {
			return "DELETE", "/api/v1/projects/demo/caches/no-such-key", nil
		}},
		"MemberService_ListMembers": {perm: auth.Read, call: getOp("/api/v1/members")},
		"MemberService_AddMember": {perm: auth.Administer, call: func(c matrixCaller, n int) (string, string, any) {
			return "POST", "/api/v1/members", map[string]string{"login": fmt.Sprintf("add-%s-%d", c.name, n), "role": "viewer"}
		}},
		"MemberService_UpdateMember": {perm: auth.Administer, scoped: true, call: func(matrixCaller, int) (string, string, any) {
			return "PATCH", "/api/v1/members/m-viewer", map[string]string{"role": "viewer"}
		}},
		"MemberService_RemoveMember": {perm: auth.Administer, scoped: true, call: func(c matrixCaller, n int) (string, string, any) {
			login := fmt.Sprintf("rm-%s-%d", c.name, n)
			member(login, "viewer")
			return "DELETE", "/api/v1/members/" + login, nil
		}},
		"OrganizationService_ListOrganizations": {perm: auth.Authenticated, call: getOp("/api/v1/organizations")},
		"OrganizationService_CreateOrganization": {perm: auth.Authenticated, call: func(c matrixCaller, n int) (string, string, any) {
			return "POST", "/api/v1/organizations", map[string]string{"name": fmt.Sprintf("org-%s-%d", c.name, n)}
		}},
		"TeamService_ListTeams": {perm: auth.Read, call: getOp("/api/v1/teams")},
		"TeamService_GetTeam":   {perm: auth.Read, scoped: true, call: getOp("/api/v1/teams/matrix")},
		"TeamService_CreateTeam": {perm: auth.Administer, call: func(c matrixCaller, n int) (string, string, any) {
			return "POST", "/api/v1/teams", map[string]string{"name": fmt.Sprintf("t-%s-%d", c.name, n), "role": "viewer"}
		}},
		"TeamService_UpdateTeam": {perm: auth.Administer, scoped: true, call: func(matrixCaller, int) (string, string, any) {
			return "PATCH", "/api/v1/teams/matrix", map[string]string{"role": "viewer"}
		}},
		"TeamService_DeleteTeam": {perm: auth.Administer, scoped: true, call: func(c matrixCaller, n int) (string, string, any) {
			name := fmt.Sprintf("del-%s-%d", c.name, n)
			admin.json("POST", "/api/v1/teams", map[string]string{"name": name, "role": "viewer"}, http.StatusOK, nil)
			return "DELETE", "/api/v1/teams/" + name, nil
		}},
		"TeamService_AddTeamMember": {perm: auth.Administer, scoped: true, call: func(matrixCaller, int) (string, string, any) {
			return "PUT", "/api/v1/teams/matrix/members/m-viewer", nil
		}},
		"TeamService_RemoveTeamMember": {perm: auth.Administer, scoped: true, call: func(matrixCaller, int) (string, string, any) {
			admin.json("PUT", "/api/v1/teams/matrix/members/m-developer", nil, http.StatusOK, nil)
			return "DELETE", "/api/v1/teams/matrix/members/m-developer", nil
		}},
		"TokenService_CreateToken": {perm: auth.Authenticated, call: func(c matrixCaller, _ int) (string, string, any) {
			body := map[string]string{"name": "matrix", "expiresIn": "1h"}
			if c.name == "other-org" { // no member of its own organisation any more: it names its other one
				body["organization"] = "other"
			}
			return "POST", "/api/v1/tokens", body
		}},
		"TokenService_ListTokens": {perm: auth.Authenticated, call: getOp("/api/v1/tokens")},
		// Another user's token (the admin's) is 404 to everyone else.
		"TokenService_RevokeToken": {perm: auth.Authenticated, scoped: true, call: func(matrixCaller, int) (string, string, any) {
			return "DELETE", "/api/v1/tokens/" + tok.ID, nil
		}},
		"RunnerTokenService_ListRunners": {adminOnly: true, call: getOp("/api/v1/runners")},
		"RunnerTokenService_RegisterRunner": {adminOnly: true, call: func(c matrixCaller, n int) (string, string, any) {
			return "POST", "/api/v1/runners", map[string]string{"name": fmt.Sprintf("r-%s-%d", c.name, n)}
		}},
		"RunnerTokenService_RevokeRunner": {adminOnly: true, call: func(c matrixCaller, n int) (string, string, any) {
			name := fmt.Sprintf("rv-%s-%d", c.name, n)
			admin.json("POST", "/api/v1/runners", map[string]string{"name": name}, http.StatusOK, nil)
			return "DELETE", "/api/v1/runners/" + name, nil
		}},
		// dev has no sign-in with GitHub: whoever passes the role check hears so (400).
		"GitHubService_ListGitHubRepositories": {perm: auth.Read, allowed: http.StatusBadRequest, call: getOp("/api/v1/github/repositories")},
	}

	// Every operation of the API document has a row.
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapi.Swagger, &doc); err != nil {
		t.Fatal(err)
	}
	ops := []string{"LogService_TailLogs"} // a gateway operation over TailLogs
	for _, methods := range doc.Paths {
		for _, op := range methods {
			ops = append(ops, op.OperationID)
		}
	}
	slices.Sort(ops)
	for _, op := range ops {
		if _, ok := rows[op]; !ok {
			t.Errorf("operation %s has no row in the authorization matrix: add one", op)
		}
	}
	for op := range rows {
		if !slices.Contains(ops, op) {
			t.Errorf("matrix row %s names no operation", op)
		}
	}

	for _, op := range ops {
		row, ok := rows[op]
		if !ok {
			continue
		}
		for n, c := range callers {
			want := cmp.Or(row.allowed, http.StatusOK)
			switch {
			case c.name == "revoked" || c.name == "no-token":
				want = http.StatusUnauthorized
			case row.adminOnly:
				want = http.StatusForbidden
			case c.name == "other-org" && row.scoped:
				want = http.StatusNotFound
			case c.name == "other-org":
			case !c.role.Grants(row.perm):
				want = http.StatusForbidden
			case op == "TokenService_RevokeToken":
				want = http.StatusNotFound // the admin's token, not the caller's
			}
			method, path, body := row.call(c, n)
			code, b := (&api{t: t, base: admin.base, token: c.token}).do(method, path, body, nil)
			if code != want {
				t.Errorf("%s (%s %s) as %s: %d, want %d: %.200s", op, method, path, c.name, code, want, b)
			}
			if code == http.StatusForbidden && strings.Contains(string(b), "sci_") {
				t.Errorf("%s as %s: the refusal shows a token: %s", op, c.name, b)
			}
		}
	}
}

// runCLI runs the simpleci client against base with token; its combined output.
func runCLI(base, token string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SIMPLECI_SERVER="+base, "SIMPLECI_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func getOp(path string) func(matrixCaller, int) (string, string, any) {
	return func(matrixCaller, int) (string, string, any) { return "GET", path, nil }
}

// TestMembersCLI drives `simpleci members` and `simpleci projects update|delete`: an owner
// adds a developer (its token printed once) who may trigger but not change settings, the
// role is changed and the member removed (its token refused), a project is updated and
// deleted.
func TestMembersCLI(t *testing.T) {
	a := startDev(t)
	cli := func(token string, args ...string) (string, error) { return runCLI(a.base, token, args...) }
	out, err := cli(a.token, "members", "add", "cli-dev", "--role", "developer")
	f := strings.Fields(out)
	if err != nil || len(f) == 0 || !strings.HasPrefix(f[len(f)-1], "sci_") || !strings.Contains(out, "as developer") {
		t.Fatalf("members add: %v\n%s", err, out)
	}
	dev := f[len(f)-1]
	if out, err := cli(a.token, "members", "list"); err != nil || !strings.Contains(out, "cli-dev") || !strings.Contains(out, "developer") || strings.Contains(out, dev) {
		t.Fatalf("members list: %v\n%s", err, out)
	}
	if out, err := cli(dev, "trigger", "demo", "--ref", "main"); err != nil || !strings.HasPrefix(out, "run ") {
		t.Fatalf("a developer's trigger: %v\n%s", err, out)
	}
	if out, err := cli(dev, "projects", "update", "demo", "--network", "off"); err == nil || !strings.Contains(out, "403") || !strings.Contains(out, "maintainer") {
		t.Fatalf("a developer's project update: %v\n%s", err, out)
	}
	if out, err := cli(a.token, "members", "set", "cli-dev", "--role", "viewer"); err != nil || !strings.Contains(out, "now viewer") {
		t.Fatalf("members set: %v\n%s", err, out)
	}
	// At once in dev (one process: the auth service drops the cached verification).
	if out, err := cli(dev, "trigger", "demo", "--ref", "main"); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("a demoted member's trigger: %v\n%s", err, out)
	}
	if out, err := cli(a.token, "members", "add", "x", "--role", "admin"); err == nil || !strings.Contains(out, "400") {
		t.Fatalf("members add with a bad role: %v\n%s", err, out)
	}
	if out, err := cli(a.token, "projects", "update", "demo", "--events", "push,tag", "--network", "off"); err != nil || !strings.Contains(out, "events push,tag") || !strings.Contains(out, "network off") {
		t.Fatalf("projects update: %v\n%s", err, out)
	}
	var demo struct {
		WebhookPath string `json:"webhookPath"`
	}
	a.json("GET", "/api/v1/projects/demo", nil, http.StatusOK, &demo)
	if out, err := cli(a.token, "projects", "delete", "demo"); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("projects delete: %v\n%s", err, out)
	}
	if code, b := a.do("GET", "/api/v1/projects/demo", nil, nil); code != http.StatusNotFound {
		t.Fatalf("the deleted project: %d %s", code, b)
	}
	hook := map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + strings.Repeat("0", 64)}
	if code, b := a.do("POST", demo.WebhookPath, []byte(`{"ref": "refs/heads/main"}`), hook); code != http.StatusNotFound {
		t.Fatalf("a webhook to the deleted project: %d %s, want 404", code, b)
	}
	if out, err := cli(a.token, "members", "remove", "cli-dev"); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("members remove: %v\n%s", err, out)
	}
	refusedWithin(t, a.base, dev)
	if out, err := cli(a.token, "members", "remove", "admin"); err == nil || !strings.Contains(out, "last owner") {
		t.Fatalf("removing the last owner: %v\n%s", err, out)
	}
}
