package service_test

import (
	"slices"
	"strings"
	"testing"

	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestUpdateProject: the fields sent change, the others stay; bad values are refused
// with what is wrong and change nothing; another organisation's project is NotFound.
func TestUpdateProject(t *testing.T) {
	s := newService(t)
	alice := user(t, "org1", "alice")
	p := create(t, s, alice, "web")

	got, err := s.UpdateProject(alice, &apiv1.UpdateProjectRequest{Project: "web", Events: []string{"tag", "push", "tag"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.GetEvents(), []string{"push", "tag"}) || got.GetTier() != p.GetTier() || got.GetNetwork() != p.GetNetwork() || got.GetWebhookSecret() != "" {
		t.Fatalf("after events update: %v", got)
	}
	got, err = s.UpdateProject(alice, &apiv1.UpdateProjectRequest{Project: p.GetId(), Tier: "large", Network: "off"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetTier() != "large" || got.GetNetwork() != "off" || !slices.Equal(got.GetEvents(), []string{"push", "tag"}) {
		t.Fatalf("after tier/network update: %v", got)
	}
	stored, err := s.GetProject(alice, &apiv1.GetProjectRequest{Project: "web"})
	if err != nil || stored.GetTier() != "large" || stored.GetNetwork() != "off" || !slices.Equal(stored.GetEvents(), []string{"push", "tag"}) {
		t.Fatalf("stored: %v, %v", stored, err)
	}

	_, err = s.UpdateProject(alice, &apiv1.UpdateProjectRequest{Project: "web", Events: []string{"nope"}, Tier: "huge", Network: "maybe"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad update: %v", err)
	}
	for _, want := range []string{`events: "nope"`, `"huge"`, `network "maybe"`} {
		if msg := status.Convert(err).Message(); !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %s", msg, want)
		}
	}
	if again, _ := s.GetProject(alice, &apiv1.GetProjectRequest{Project: "web"}); again.GetTier() != "large" {
		t.Errorf("a refused update changed the project: %v", again)
	}

	bob := user(t, "org2", "bob")
	if _, err := s.UpdateProject(bob, &apiv1.UpdateProjectRequest{Project: p.GetId(), Network: "on"}); status.Code(err) != codes.NotFound {
		t.Errorf("another organisation's update: %v, want NotFound", err)
	}
}

// TestDeleteProject: a deleted project and its secrets are gone (its webhook resolution
// is NotFound), its name can be used again, and another organisation's delete is
// NotFound and deletes nothing.
func TestDeleteProject(t *testing.T) {
	s := newServiceWithKeys(t)
	alice, bob := user(t, "org1", "alice"), user(t, "org2", "bob")
	p := create(t, s, alice, "web")
	if _, err := s.SetSecret(alice, &apiv1.SetSecretRequest{Project: "web", Name: "TOKEN", Value: "s3cret-value"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteProject(bob, &apiv1.DeleteProjectRequest{Project: p.GetId()}); status.Code(err) != codes.NotFound {
		t.Fatalf("another organisation's delete: %v, want NotFound", err)
	}
	if _, err := s.GetProject(alice, &apiv1.GetProjectRequest{Project: "web"}); err != nil {
		t.Fatalf("after another organisation's delete: %v", err)
	}
	if _, err := s.DeleteProject(alice, &apiv1.DeleteProjectRequest{Project: "web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetProject(alice, &apiv1.GetProjectRequest{Project: "web"}); status.Code(err) != codes.NotFound {
		t.Errorf("deleted project: %v", err)
	}
	if _, err := s.ResolveProject(internal(t), &apiv1.ResolveProjectRequest{Project: p.GetId()}); status.Code(err) != codes.NotFound {
		t.Errorf("webhook resolution of a deleted project: %v", err)
	}
	if sec, err := s.JobSecrets(internal(t), &apiv1.JobSecretsRequest{ProjectId: p.GetId()}); err != nil || len(sec.GetSecrets()) != 0 {
		t.Errorf("secrets of a deleted project: %v, %v, want none", sec, err)
	}
	again := create(t, s, alice, "web")
	if sec, err := s.ListSecrets(alice, &apiv1.ListSecretsRequest{Project: "web"}); err != nil || len(sec.GetSecrets()) != 0 || again.GetId() == p.GetId() {
		t.Errorf("a new project of the same name inherits: %v, %v", sec, err)
	}
	if _, err := s.DeleteProject(alice, &apiv1.DeleteProjectRequest{Project: p.GetId()}); status.Code(err) != codes.NotFound {
		t.Errorf("deleting twice: %v", err)
	}
}
