package service_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/github"
	"github.com/simpleci/simpleci/libs/forge/github/githubtest"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"github.com/simpleci/simpleci/services/project/service"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const ghToken = "ghp_projecttest0123456789"

// withGitHub points s's github forge at a fake GitHub holding octo/app.
func withGitHub(t *testing.T, s *service.Service, token string) *githubtest.Server {
	t.Helper()
	srv := githubtest.New(t, ghToken)
	srv.CreateRepo("octo/app")
	f, err := github.New(github.Options{APIURL: srv.APIURL(), WebURL: srv.WebURL(), Token: token,
		AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := forge.NewRegistry(f)
	if err != nil {
		t.Fatal(err)
	}
	s.WithForges(reg)
	s.WithPublicURL("https://ci.example/")
	return srv
}

// TestGitHubHookLifecycle: creating a github project registers its hook (URL, secret,
// JSON, exactly the GitHub events of its events), the API shows its id but never the
// secret, PATCH of events updates it, DELETE removes it.
func TestGitHubHookLifecycle(t *testing.T) {
	s := newService(t)
	srv := withGitHub(t, s, ghToken)
	alice := user(t, "org1", "alice")
	p, err := s.CreateProject(alice, &apiv1.CreateProjectRequest{Name: "app", Provider: "github", Repository: "octo/app", Events: []string{"tag", "manual", "push"}})
	if err != nil {
		t.Fatal(err)
	}
	hooks := srv.Hooks("octo/app")
	if len(hooks) != 1 {
		t.Fatalf("hooks = %+v, want one", hooks)
	}
	h := hooks[0]
	if h.Config["url"] != "https://ci.example/api/v1/webhooks/github/"+p.GetId() || h.Config["secret"] != p.GetWebhookSecret() ||
		h.Config["content_type"] != "json" || h.Config["insecure_ssl"] != "0" || !h.Active || !slices.Equal(h.Events, []string{"push"}) {
		t.Errorf("hook = %+v", h)
	}
	if p.GetWebhook().GetId() != h.ID || !p.GetWebhook().GetActive() {
		t.Errorf("project's webhook = %v, want id %d active", p.GetWebhook(), h.ID)
	}
	got, err := s.GetProject(alice, &apiv1.GetProjectRequest{Project: "app"})
	if err != nil || got.GetWebhook().GetId() != h.ID || got.GetWebhookSecret() != "" {
		t.Fatalf("GetProject = %v, %v", got, err)
	}

	got, err = s.UpdateProject(alice, &apiv1.UpdateProjectRequest{Project: "app", Events: []string{"pull_request", "push"}})
	if err != nil {
		t.Fatal(err)
	}
	if h := srv.Hooks("octo/app")[0]; !slices.Equal(h.Events, []string{"pull_request", "push"}) || h.Config["secret"] != p.GetWebhookSecret() {
		t.Errorf("after PATCH: %+v", h)
	}
	got, err = s.UpdateProject(alice, &apiv1.UpdateProjectRequest{Project: "app", Events: []string{"manual"}})
	if err != nil || got.GetWebhook().GetActive() || srv.Hooks("octo/app")[0].Active {
		t.Errorf("manual only: project %v (%v), hook %+v: want an inactive hook", got.GetWebhook(), err, srv.Hooks("octo/app"))
	}

	if _, err := s.DeleteProject(alice, &apiv1.DeleteProjectRequest{Project: "app"}); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Hooks("octo/app")); n != 0 {
		t.Errorf("%d hooks after the project was deleted", n)
	}
}

// TestGitHubHookGoneOnGitHub: a hook someone removed on GitHub is registered anew on
// PATCH, and deleting the project then is fine.
func TestGitHubHookGoneOnGitHub(t *testing.T) {
	s := newService(t)
	srv := withGitHub(t, s, ghToken)
	alice := user(t, "org1", "alice")
	p, err := s.CreateProject(alice, &apiv1.CreateProjectRequest{Name: "app", Provider: "github", Repository: "octo/app"})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := github.New(github.Options{APIURL: srv.APIURL(), WebURL: srv.WebURL(), Token: ghToken,
		AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err := f.DeleteHook(alice, "octo/app", p.GetWebhook().GetId()); err != nil {
		t.Fatal(err)
	}
	got, err := s.UpdateProject(alice, &apiv1.UpdateProjectRequest{Project: "app", Events: []string{"push", "pull_request"}})
	if err != nil {
		t.Fatal(err)
	}
	hooks := srv.Hooks("octo/app")
	if len(hooks) != 1 || hooks[0].ID != got.GetWebhook().GetId() || hooks[0].ID == p.GetWebhook().GetId() {
		t.Fatalf("hooks %+v, project's %v: want a new hook", hooks, got.GetWebhook())
	}
	if err := f.DeleteHook(alice, "octo/app", hooks[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteProject(alice, &apiv1.DeleteProjectRequest{Project: "app"}); err != nil {
		t.Errorf("delete with the hook gone on GitHub: %v", err)
	}
}

// TestGitHubHookRefused: when GitHub refuses the hook (a token without admin rights,
// a repository it cannot see), the creation fails as the forge's failure (the
// gateway's 502), saying so, naming no secret, and nothing is stored.
func TestGitHubHookRefused(t *testing.T) {
	for name, c := range map[string]struct{ token, repo string }{
		"wrong token":  {"ghp_wrong0123456789", "octo/app"},
		"unknown repo": {ghToken, "octo/none"},
	} {
		t.Run(name, func(t *testing.T) {
			s := newService(t)
			srv := withGitHub(t, s, c.token)
			alice := user(t, "org1", "alice")
			_, err := s.CreateProject(alice, &apiv1.CreateProjectRequest{Name: "app", Provider: "github", Repository: c.repo})
			st := status.Convert(err)
			if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "webhook") || !strings.Contains(st.Message(), "nothing was stored") {
				t.Fatalf("err = %v", err)
			}
			if strings.Contains(st.Message(), c.token) {
				t.Errorf("the error shows the token: %v", err)
			}
			var reason string
			for _, d := range st.Details() {
				if ei, ok := d.(*errdetails.ErrorInfo); ok {
					reason = ei.GetReason()
				}
			}
			if reason != service.ReasonForge {
				t.Errorf("reason %q, want %q", reason, service.ReasonForge)
			}
			list, err := s.ListProjects(alice, &apiv1.ListProjectsRequest{})
			if err != nil || len(list.GetProjects()) != 0 || len(srv.Hooks("octo/app")) != 0 {
				t.Errorf("after a refused creation: %v, %v, hooks %+v", list, err, srv.Hooks("octo/app"))
			}
		})
	}
}

// A local project gets no hook and shows none.
func TestLocalProjectNoHook(t *testing.T) {
	s := newService(t)
	withGitHub(t, s, ghToken)
	p := create(t, s, user(t, "org1", "alice"), "web")
	if p.GetWebhook() != nil {
		t.Errorf("local project's webhook = %v", p.GetWebhook())
	}
}

// TestGitHubHookLiveness: GetProject shows the hook's last delivery as GitHub reports
// it; with GitHub gone the project is still shown, saying why the delivery is missing;
// the list never asks GitHub.
func TestGitHubHookLiveness(t *testing.T) {
	s := newService(t)
	srv := withGitHub(t, s, ghToken)
	alice := user(t, "org1", "alice")
	p, err := s.CreateProject(alice, &apiv1.CreateProjectRequest{Name: "app", Provider: "github", Repository: "octo/app"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetProject(alice, &apiv1.GetProjectRequest{Project: "app"})
	if err != nil || got.GetWebhook().GetLastResponse().GetStatus() != "unused" || got.GetWebhook().GetLastResponse().GetCode() != 0 {
		t.Fatalf("before a delivery: %v %v", got.GetWebhook(), err)
	}
	srv.RecordDelivery("octo/app", p.GetWebhook().GetId(), 202, "OK")
	got, err = s.GetProject(alice, &apiv1.GetProjectRequest{Project: "app"})
	if lr := got.GetWebhook().GetLastResponse(); err != nil || lr.GetCode() != 202 || lr.GetStatus() != "active" || lr.GetMessage() != "OK" {
		t.Fatalf("after a delivery: %v %v", got.GetWebhook(), err)
	}
	before := srv.Requests()
	if _, err := s.ListProjects(alice, &apiv1.ListProjectsRequest{}); err != nil || srv.Requests() != before {
		t.Errorf("ListProjects asked GitHub (%d requests) %v", srv.Requests()-before, err)
	}
	srv.Close()
	got, err = s.GetProject(alice, &apiv1.GetProjectRequest{Project: "app"})
	if err != nil || got.GetWebhook().GetLastResponse() != nil || !strings.Contains(got.GetWebhook().GetLastResponseUnavailable(), "github could not be asked") ||
		got.GetWebhook().GetId() != p.GetWebhook().GetId() {
		t.Fatalf("with GitHub gone: %v %v", got.GetWebhook(), err)
	}
}
