package service_test

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/seal"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	"github.com/simpleci/simpleci/services/project/service"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newService(t *testing.T) *service.Service {
	t.Helper()
	db, err := sqldb.Open(testCtx(t), filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := service.New(testCtx(t), db, []string{"local", "github"})
	if err != nil {
		t.Fatal(err)
	}
	s.WithTiers(func(context.Context) ([]string, error) { return []string{"large", "medium", "standard"}, nil })
	return s
}

// newServiceWithKeys is newService with secrets enabled (a fresh keyring).
func newServiceWithKeys(t *testing.T) *service.Service {
	t.Helper()
	s := newService(t)
	keys, err := seal.LoadOrCreate(filepath.Join(t.TempDir(), "keyring"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WithKeys(testCtx(t), keys); err != nil {
		t.Fatal(err)
	}
	return s
}

func user(t *testing.T, org, login string) context.Context {
	return auth.WithPrincipal(testCtx(t), &authv1.Principal{UserId: "u-" + login, OrgId: org, Login: login})
}

func internal(t *testing.T) context.Context {
	return auth.WithPrincipal(testCtx(t), &authv1.Principal{Login: "service:scheduler", Service: auth.Scheduler})
}

func create(t *testing.T, s *service.Service, ctx context.Context, name string) *apiv1.Project {
	t.Helper()
	p, err := s.CreateProject(ctx, &apiv1.CreateProjectRequest{Name: name, Provider: "local", Repository: "/srv/git/" + name})
	if err != nil {
		t.Fatalf("CreateProject(%s): %v", name, err)
	}
	return p
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestCreateProject(t *testing.T) {
	s := newService(t)
	ctx := user(t, "org1", "alice")
	tests := []struct {
		name       string
		req        *apiv1.CreateProjectRequest
		wantEvents []string
		wantTier   string
	}{
		{"defaults", &apiv1.CreateProjectRequest{Name: "app", Provider: "local", Repository: "/srv/git/app"}, []string{"manual", "push"}, "standard"},
		{"events sorted and deduplicated", &apiv1.CreateProjectRequest{Name: "lib-2", Provider: "github", Repository: "acme/lib",
			Events: []string{"tag", "push", "tag", "pull_request"}, Tier: "large"}, []string{"pull_request", "push", "tag"}, "large"},
		{"repository trimmed", &apiv1.CreateProjectRequest{Name: "0trim", Provider: "local", Repository: "  /srv/x  ", Events: []string{"schedule"}, Tier: "medium"},
			[]string{"schedule"}, "medium"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.CreateProject(ctx, tt.req)
			if err != nil {
				t.Fatalf("CreateProject: %v", err)
			}
			if p.GetId() == "" || p.GetOrgId() != "org1" || p.GetName() != tt.req.Name || p.GetProvider() != tt.req.Provider {
				t.Fatalf("project %v", p)
			}
			if p.GetRepository() != strings.TrimSpace(tt.req.Repository) {
				t.Errorf("repository %q", p.GetRepository())
			}
			if !slices.Equal(p.GetEvents(), tt.wantEvents) || p.GetTier() != tt.wantTier {
				t.Errorf("events %v tier %q; want %v %q", p.GetEvents(), p.GetTier(), tt.wantEvents, tt.wantTier)
			}
			if !hex64.MatchString(p.GetWebhookSecret()) {
				t.Errorf("webhook secret %q: want 64 hex digits", p.GetWebhookSecret())
			}
			if want := "/api/v1/webhooks/" + p.GetProvider() + "/" + p.GetId(); p.GetWebhookPath() != want {
				t.Errorf("webhook path %q, want %q", p.GetWebhookPath(), want)
			}
			if p.GetCreatedAt() == nil || time.Since(p.GetCreatedAt().AsTime()) > time.Minute {
				t.Errorf("created_at %v", p.GetCreatedAt())
			}
		})
	}
	t.Run("secrets differ", func(t *testing.T) {
		a := create(t, s, ctx, "sa")
		b := create(t, s, ctx, "sb")
		if a.GetWebhookSecret() == b.GetWebhookSecret() || a.GetId() == b.GetId() {
			t.Fatal("two projects share a secret or an id")
		}
	})
}

func TestCreateProjectValidation(t *testing.T) {
	s := newService(t)
	ctx := user(t, "org1", "alice")
	valid := func() *apiv1.CreateProjectRequest {
		return &apiv1.CreateProjectRequest{Name: "app", Provider: "local", Repository: "/srv/git/app", Events: []string{"push"}, Tier: "standard"}
	}
	tests := []struct {
		name   string
		modify func(*apiv1.CreateProjectRequest)
		want   []string // fragments, all in one message
	}{
		{"empty name", func(r *apiv1.CreateProjectRequest) { r.Name = "" }, []string{`name ""`}},
		{"upper-case name", func(r *apiv1.CreateProjectRequest) { r.Name = "App" }, []string{`name "App"`}},
		{"name starting with dash", func(r *apiv1.CreateProjectRequest) { r.Name = "-app" }, []string{`name "-app"`}},
		{"name with slash", func(r *apiv1.CreateProjectRequest) { r.Name = "a/b" }, []string{`name "a/b"`}},
		{"name too long", func(r *apiv1.CreateProjectRequest) { r.Name = strings.Repeat("a", 64) }, []string{"name"}},
		{"unknown provider", func(r *apiv1.CreateProjectRequest) { r.Provider = "gitlab" }, []string{`provider "gitlab"`, "local, github"}},
		{"empty provider", func(r *apiv1.CreateProjectRequest) { r.Provider = "" }, []string{`provider ""`}},
		{"empty repository", func(r *apiv1.CreateProjectRequest) { r.Repository = "" }, []string{"repository: required"}},
		{"blank repository", func(r *apiv1.CreateProjectRequest) { r.Repository = " \t " }, []string{"repository: required"}},
		{"repository too long", func(r *apiv1.CreateProjectRequest) { r.Repository = strings.Repeat("r", 1025) }, []string{"repository"}},
		{"unknown event", func(r *apiv1.CreateProjectRequest) { r.Events = []string{"push", "deploy"} }, []string{`events: "deploy"`}},
		{"unknown tier", func(r *apiv1.CreateProjectRequest) { r.Tier = "huge" }, []string{`tier "huge"`}},
		{"everything at once", func(r *apiv1.CreateProjectRequest) {
			*r = apiv1.CreateProjectRequest{Name: "Bad Name", Provider: "svn", Repository: "", Events: []string{"push", "nightly", "merge"}, Tier: "xl"}
		}, []string{`name "Bad Name"`, `provider "svn"`, "repository: required", `events: "nightly"`, `events: "merge"`, `tier "xl"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := valid()
			tt.modify(req)
			p, err := s.CreateProject(ctx, req)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("CreateProject = %v, %v; want InvalidArgument", p, err)
			}
			msg := status.Convert(err).Message()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not mention %q", msg, w)
				}
			}
			if n := strings.Count(msg, "; ") + 1; n != len(tt.want) && tt.name == "everything at once" {
				t.Errorf("message %q has %d problems, want %d", msg, n, len(tt.want))
			}
		})
	}
	t.Run("nothing stored", func(t *testing.T) {
		resp, err := s.ListProjects(ctx, &apiv1.ListProjectsRequest{})
		if err != nil || len(resp.GetProjects()) != 0 {
			t.Fatalf("ListProjects after refused creates: %v, %v", resp.GetProjects(), err)
		}
	})
}

func TestCreateProjectCaller(t *testing.T) {
	s := newService(t)
	req := &apiv1.CreateProjectRequest{Name: "app", Provider: "local", Repository: "/r"}
	if _, err := s.CreateProject(testCtx(t), req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no principal: %v", err)
	}
	if _, err := s.CreateProject(internal(t), req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("internal principal (no org): %v", err)
	}
}

func TestCreateProjectDuplicate(t *testing.T) {
	s := newService(t)
	org1 := user(t, "org1", "alice")
	create(t, s, org1, "app")
	_, err := s.CreateProject(org1, &apiv1.CreateProjectRequest{Name: "app", Provider: "github", Repository: "acme/other"})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), `"app"`) {
		t.Fatalf("duplicate name: %v, want AlreadyExists naming the project", err)
	}
	// Names are unique per organisation only.
	if _, err := s.CreateProject(user(t, "org2", "bob"), &apiv1.CreateProjectRequest{Name: "app", Provider: "local", Repository: "/r"}); err != nil {
		t.Fatalf("same name in another organisation: %v", err)
	}
}

func TestSecretOnlyInCreateResponse(t *testing.T) {
	s := newService(t)
	ctx := user(t, "org1", "alice")
	created := create(t, s, ctx, "app")
	if created.GetWebhookSecret() == "" {
		t.Fatal("create response has no secret")
	}
	for _, ref := range []string{created.GetId(), "app"} {
		t.Run("GetProject "+ref, func(t *testing.T) {
			p, err := s.GetProject(ctx, &apiv1.GetProjectRequest{Project: ref})
			if err != nil {
				t.Fatal(err)
			}
			if p.GetWebhookSecret() != "" {
				t.Fatal("GetProject returned the webhook secret")
			}
			if p.GetId() != created.GetId() || p.GetWebhookPath() != created.GetWebhookPath() || !slices.Equal(p.GetEvents(), created.GetEvents()) ||
				p.GetTier() != created.GetTier() || p.GetRepository() != created.GetRepository() ||
				!p.GetCreatedAt().AsTime().Equal(created.GetCreatedAt().AsTime()) {
				t.Fatalf("GetProject = %v, created %v", p, created)
			}
		})
	}
	t.Run("ListProjects", func(t *testing.T) {
		resp, err := s.ListProjects(ctx, &apiv1.ListProjectsRequest{})
		if err != nil || len(resp.GetProjects()) != 1 {
			t.Fatalf("ListProjects: %v, %v", resp, err)
		}
		if resp.GetProjects()[0].GetWebhookSecret() != "" {
			t.Fatal("ListProjects returned the webhook secret")
		}
		if resp.GetProjects()[0].GetWebhookPath() == "" {
			t.Fatal("ListProjects lost the webhook path")
		}
	})
}

func TestResolveProject(t *testing.T) {
	s := newService(t)
	org1 := user(t, "org1", "alice")
	created := create(t, s, org1, "app")
	shared1 := create(t, s, org1, "shared")
	create(t, s, user(t, "org2", "bob"), "shared")

	t.Run("refuses callers that are not internal", func(t *testing.T) {
		for name, ctx := range map[string]context.Context{
			"user":                    org1,
			"admin user":              auth.WithPrincipal(testCtx(t), &authv1.Principal{UserId: "u1", OrgId: "org1", Login: "admin", Admin: true}),
			"user claiming a service": auth.WithPrincipal(testCtx(t), &authv1.Principal{UserId: "u1", OrgId: "org1", Login: "service:gateway", Service: auth.Gateway}),
			"runner":                  auth.WithPrincipal(testCtx(t), &authv1.Principal{Login: "runner:r1", Runner: "r1"}),
			"nobody":                  testCtx(t),
		} {
			res, err := s.ResolveProject(ctx, &apiv1.ResolveProjectRequest{OrgId: "org1", Project: created.GetId()})
			if status.Code(err) != codes.PermissionDenied || res != nil {
				t.Errorf("%s: ResolveProject = %v, %v; want PermissionDenied", name, res, err)
			}
		}
	})

	tests := []struct {
		name     string
		org, ref string
		wantID   string
		wantCode codes.Code
	}{
		{"by id with org", "org1", created.GetId(), created.GetId(), codes.OK},
		{"by name with org", "org1", "app", created.GetId(), codes.OK},
		{"by id without org (webhooks)", "", created.GetId(), created.GetId(), codes.OK},
		{"by unique name without org", "", "app", created.GetId(), codes.OK},
		{"shared name with org", "org1", "shared", shared1.GetId(), codes.OK},
		{"shared name without org is ambiguous", "", "shared", "", codes.FailedPrecondition},
		{"other org", "org2", created.GetId(), "", codes.NotFound},
		{"unknown", "", "nope", "", codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.ResolveProject(internal(t), &apiv1.ResolveProjectRequest{OrgId: tt.org, Project: tt.ref})
			if status.Code(err) != tt.wantCode {
				t.Fatalf("ResolveProject: %v, want %s", err, tt.wantCode)
			}
			if tt.wantCode != codes.OK {
				return
			}
			if res.GetProject().GetId() != tt.wantID {
				t.Fatalf("resolved %q, want %q", res.GetProject().GetId(), tt.wantID)
			}
			if tt.wantID == created.GetId() && res.GetWebhookSecret() != created.GetWebhookSecret() {
				t.Fatalf("secret %q, want the one returned at creation", res.GetWebhookSecret())
			}
			if res.GetWebhookSecret() == "" || res.GetProject().GetWebhookSecret() != "" {
				t.Fatalf("secret must be in ResolvedProject.webhook_secret only: %v", res)
			}
		})
	}
}

// A project may be named like another project's id; lookups by id must still find the
// project with that id, in particular for webhooks (which carry the id, without org).
func TestResolveProjectIDWinsOverName(t *testing.T) {
	s := newService(t)
	victim := create(t, s, user(t, "org1", "alice"), "app")
	// Another tenant names a project exactly like the victim's id (a lower-case ULID is a valid name).
	if _, err := s.CreateProject(user(t, "org2", "mallory"), &apiv1.CreateProjectRequest{Name: victim.GetId(), Provider: "local", Repository: "/r"}); err != nil {
		t.Fatalf("create the look-alike: %v", err)
	}
	res, err := s.ResolveProject(internal(t), &apiv1.ResolveProjectRequest{Project: victim.GetId()})
	if err != nil || res.GetProject().GetId() != victim.GetId() {
		t.Fatalf("webhook lookup by id = %v, %v; want the project with that id", res.GetProject(), err)
	}
}

func TestOrganisationScoping(t *testing.T) {
	s := newService(t)
	org1 := user(t, "org1", "alice")
	org2 := user(t, "org2", "bob")
	p1 := create(t, s, org1, "app")
	create(t, s, org2, "other")

	for _, ref := range []string{p1.GetId(), "app"} {
		if _, err := s.GetProject(org2, &apiv1.GetProjectRequest{Project: ref}); status.Code(err) != codes.NotFound {
			t.Errorf("GetProject(%s) by another org: %v, want NotFound", ref, err)
		}
	}
	resp, err := s.ListProjects(org2, &apiv1.ListProjectsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetProjects()) != 1 || resp.GetProjects()[0].GetName() != "other" {
		t.Fatalf("org2 lists %v, want only its own project", resp.GetProjects())
	}
	for _, call := range []func(context.Context) error{
		func(ctx context.Context) error {
			_, err := s.GetProject(ctx, &apiv1.GetProjectRequest{Project: "app"})
			return err
		},
		func(ctx context.Context) error {
			_, err := s.ListProjects(ctx, &apiv1.ListProjectsRequest{})
			return err
		},
	} {
		if err := call(testCtx(t)); status.Code(err) != codes.Unauthenticated {
			t.Errorf("without principal: %v, want Unauthenticated", err)
		}
		if err := call(internal(t)); status.Code(err) != codes.PermissionDenied {
			t.Errorf("internal principal without org: %v, want PermissionDenied", err)
		}
	}
}

func TestListProjectsPaging(t *testing.T) {
	s := newService(t)
	ctx := user(t, "org1", "alice")
	var names []string
	for _, n := range []string{"echo", "alpha", "delta", "bravo", "charlie"} {
		create(t, s, ctx, n)
		names = append(names, n)
	}
	create(t, s, user(t, "org2", "bob"), "aaa-other-org")
	slices.Sort(names)

	for _, size := range []int32{1, 2, 3, 5, 6} {
		t.Run(fmt.Sprintf("page size %d", size), func(t *testing.T) {
			var got []string
			token := ""
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatal("paging does not end")
				}
				resp, err := s.ListProjects(ctx, &apiv1.ListProjectsRequest{PageSize: size, PageToken: token})
				if err != nil {
					t.Fatal(err)
				}
				if len(resp.GetProjects()) > int(size) {
					t.Fatalf("page of %d, size %d", len(resp.GetProjects()), size)
				}
				for _, p := range resp.GetProjects() {
					got = append(got, p.GetName())
				}
				token = resp.GetNextPageToken()
				if token == "" {
					break
				}
				if len(resp.GetProjects()) != int(size) {
					t.Fatalf("a short page (%d) has a next token", len(resp.GetProjects()))
				}
			}
			if !slices.Equal(got, names) {
				t.Fatalf("visited %v, want %v (each once, by name)", got, names)
			}
		})
	}
	for _, size := range []int32{0, -1, 201} {
		t.Run(fmt.Sprintf("out-of-range size %d gets the default", size), func(t *testing.T) {
			resp, err := s.ListProjects(ctx, &apiv1.ListProjectsRequest{PageSize: size})
			if err != nil || len(resp.GetProjects()) != 5 || resp.GetNextPageToken() != "" {
				t.Fatalf("ListProjects = %d projects, token %q, %v", len(resp.GetProjects()), resp.GetNextPageToken(), err)
			}
		})
	}
}

func TestListProjectsBadPageToken(t *testing.T) {
	s := newService(t)
	ctx := user(t, "org1", "alice")
	create(t, s, ctx, "app")
	for _, tok := range []string{"not-a-token", "-1"} {
		if _, err := s.ListProjects(ctx, &apiv1.ListProjectsRequest{PageToken: tok}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("page_token %q: %v, want InvalidArgument", tok, err)
		}
	}
}

func TestNewNilDB(t *testing.T) {
	if _, err := service.New(context.Background(), nil, []string{"local"}); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}

// TestTiersFromTheScheduler: a project takes exactly the tiers the scheduler serves,
// added ones too; an unknown tier is refused with the served list; when the scheduler
// cannot say, creating a project is Unavailable (never silently "standard").
func TestTiersFromTheScheduler(t *testing.T) {
	s := newService(t)
	served := []string{"gpu", "standard"}
	var down bool
	s.WithTiers(func(context.Context) ([]string, error) {
		if down {
			return nil, status.Error(codes.Unavailable, "connection refused")
		}
		return served, nil
	})
	ctx := user(t, "org1", "alice")
	p, err := s.CreateProject(ctx, &apiv1.CreateProjectRequest{Name: "a", Provider: "local", Repository: "/r", Tier: "gpu"})
	if err != nil || p.GetTier() != "gpu" {
		t.Fatalf("a tier the scheduler added: %v, %v", p, err)
	}
	_, err = s.CreateProject(ctx, &apiv1.CreateProjectRequest{Name: "b", Provider: "local", Repository: "/r", Tier: "large"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "serves gpu, standard") {
		t.Fatalf("a tier the scheduler does not serve: %v", err)
	}
	down = true
	_, err = s.CreateProject(ctx, &apiv1.CreateProjectRequest{Name: "c", Provider: "local", Repository: "/r"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("scheduler down: %v, want Unavailable", err)
	}
}

// TestJobSecretsOnlyForTheScheduler: a project's secrets are opened for the scheduler's
// identity alone (it hands them to the runner of a job it leased); a runner, another
// service or a user is refused, whatever project it names.
func TestJobSecretsOnlyForTheScheduler(t *testing.T) {
	s := newService(t)
	created := create(t, s, user(t, "org1", "alice"), "app")
	for name, ctx := range map[string]context.Context{
		"runner":            auth.WithPrincipal(testCtx(t), &authv1.Principal{Login: "runner:r1", Runner: "r1"}),
		"gateway":           auth.WithPrincipal(testCtx(t), &authv1.Principal{Login: "service:gateway", Service: auth.Gateway}),
		"admin user":        auth.WithPrincipal(testCtx(t), &authv1.Principal{UserId: "u1", OrgId: "org1", Login: "admin", Admin: true}),
		"user as scheduler": auth.WithPrincipal(testCtx(t), &authv1.Principal{UserId: "u1", OrgId: "org1", Login: "x", Service: auth.Scheduler}),
		"nobody":            testCtx(t),
	} {
		res, err := s.JobSecrets(ctx, &apiv1.JobSecretsRequest{ProjectId: created.GetId()})
		if status.Code(err) != codes.PermissionDenied || res != nil {
			t.Errorf("%s: JobSecrets = %v, %v; want PermissionDenied", name, res, err)
		}
	}
	if _, err := s.JobSecrets(internal(t), &apiv1.JobSecretsRequest{ProjectId: created.GetId()}); err != nil {
		t.Fatalf("the scheduler: %v", err)
	}
}

// TestSecretLengthInCharacters: a secret's length counts characters, as the engine's
// masking and the API document do: three two-byte characters (6 bytes) are refused, since
// the masker would never hide them.
func TestSecretLengthInCharacters(t *testing.T) {
	s := newServiceWithKeys(t)
	ctx := user(t, "org1", "alice")
	create(t, s, ctx, "app")
	for _, tt := range []struct {
		value string
		want  codes.Code
	}{
		{"ééé", codes.InvalidArgument},
		{"abc", codes.InvalidArgument},
		{"éééé", codes.OK},
		{strings.Repeat("é", service.MaxSecretLength), codes.OK}, // 128 KiB, 64 Ki characters
		{strings.Repeat("é", service.MaxSecretLength+1), codes.InvalidArgument},
	} {
		_, err := s.SetSecret(ctx, &apiv1.SetSecretRequest{Project: "app", Name: "TOKEN", Value: tt.value})
		if status.Code(err) != tt.want {
			t.Errorf("a value of %d characters: %v, want %v", len([]rune(tt.value)), err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), tt.value) {
			t.Errorf("the error quotes the value: %v", err)
		}
	}
}
