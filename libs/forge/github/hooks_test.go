package github

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/forge"
)

// A hook is registered with the URL, the secret, JSON, certificate checks and
// exactly the GitHub events of the project's events; PATCH changes its events;
// DELETE removes it and a second DELETE (404) is fine.
func TestHooks(t *testing.T) {
	f, srv, _ := fakeForge(t, Options{})
	ctx := context.Background()
	h := forge.Hook{URL: "https://ci.example/api/v1/webhooks/github/p1", Secret: "s3cret-value", Events: []string{"manual", "tag", "push"}}
	id, err := f.CreateHook(ctx, "octo/app", h)
	if err != nil || id <= 0 {
		t.Fatalf("CreateHook = %d, %v", id, err)
	}
	hooks := srv.Hooks("octo/app")
	if len(hooks) != 1 {
		t.Fatalf("hooks = %+v, want one", hooks)
	}
	got := hooks[0]
	c := got.Config
	if got.ID != id || !got.Active || !slices.Equal(got.Events, []string{"push"}) || c["url"] != h.URL ||
		c["secret"] != h.Secret || c["content_type"] != "json" || c["insecure_ssl"] != "0" {
		t.Errorf("hook = %+v", got)
	}

	h.Events = []string{"pull_request", "push"}
	if err := f.UpdateHook(ctx, "octo/app", id, h); err != nil {
		t.Fatal(err)
	}
	if got := srv.Hooks("octo/app")[0]; !slices.Equal(got.Events, []string{"pull_request", "push"}) || !got.Active || got.Config["secret"] != h.Secret {
		t.Errorf("after update: %+v", got)
	}
	h.Events = []string{"manual"}
	if err := f.UpdateHook(ctx, "octo/app", id, h); err != nil {
		t.Fatal(err)
	}
	if got := srv.Hooks("octo/app")[0]; got.Active {
		t.Errorf("a hook for manual runs only should be inactive: %+v", got)
	}

	if err := f.DeleteHook(ctx, "octo/app", id); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Hooks("octo/app")); n != 0 {
		t.Errorf("%d hooks after delete", n)
	}
	if err := f.DeleteHook(ctx, "octo/app", id); err != nil {
		t.Errorf("deleting a gone hook: %v", err)
	}
	if err := f.UpdateHook(ctx, "octo/app", id, h); !errors.Is(err, forge.ErrNotFound) {
		t.Errorf("updating a gone hook: %v, want ErrNotFound", err)
	}
}

// A repository the token cannot reach is an error naming it, never the secret.
func TestCreateHookFails(t *testing.T) {
	f, _, _ := fakeForge(t, Options{})
	_, err := f.CreateHook(context.Background(), "octo/none", forge.Hook{URL: "https://ci.example/x", Secret: "s3cret-value", Events: []string{"push"}})
	if !errors.Is(err, forge.ErrNotFound) || !strings.Contains(err.Error(), "octo/none") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("err = %v", err)
	}
	if _, err := f.CreateHook(context.Background(), "octo/app", forge.Hook{URL: "https://ci.example/x"}); !errors.Is(err, forge.ErrInvalid) {
		t.Errorf("no secret: %v", err)
	}
	bad, _, _ := fakeForge(t, Options{Token: "ghp_wrong"})
	if _, err := bad.CreateHook(context.Background(), "octo/app", forge.Hook{URL: "https://ci.example/x", Secret: "s3cret-value"}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("wrong token: %v", err)
	}
}

func TestHookEvents(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"push", "tag"}, []string{"push"}},
		{[]string{"pull_request", "manual", "schedule"}, []string{"pull_request"}},
		{[]string{"manual"}, nil},
	} {
		if got := HookEvents(c.in); !slices.Equal(got, c.want) {
			t.Errorf("HookEvents(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
