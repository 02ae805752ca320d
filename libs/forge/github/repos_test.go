package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/github/githubtest"
)

// The user's repositories, page by page as GitHub's Link header says, only those they
// administer; a wrong token is ErrTokenRefused; an internal API host needs allowing.
func TestAdminRepositories(t *testing.T) {
	srv := githubtest.New(t, token)
	for _, r := range []string{"octo/a", "octo/b", "octo/c", "octo/d"} {
		srv.CreateRepo(r)
	}
	srv.SetRepo("octo/b", false, false)
	srv.SetRepo("octo/c", true, true)
	srv.Set(func(k *githubtest.Knobs, _ *githubtest.User) { k.MaxPerPage = 2 })
	c, err := NewUserClient(Options{APIURL: srv.APIURL(), AllowNetworks: loopback})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var got []string
	page := 1
	for page != 0 {
		repos, next, err := c.AdminRepositories(ctx, token, page, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range repos {
			got = append(got, fmt.Sprintf("%s %v %s %s", r.FullName, r.Private, r.DefaultBranch, strings.TrimPrefix(r.HTMLURL, srv.URL)))
		}
		page = next
	}
	want := "octo/a false main /octo/a|octo/c true main /octo/c|octo/d false main /octo/d"
	if strings.Join(got, "|") != want {
		t.Errorf("repositories %q, want %q", got, want)
	}
	if _, _, err := c.AdminRepositories(ctx, "wrong", 1, 10); !errors.Is(err, ErrTokenRefused) || strings.Contains(err.Error(), "wrong") {
		t.Errorf("a refused token: %v", err)
	}
	guarded, err := NewUserClient(Options{APIURL: srv.APIURL()})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := guarded.AdminRepositories(ctx, token, 1, 10); !errors.Is(err, forge.ErrNotAllowed) {
		t.Errorf("an internal API host without allowing it: %v", err)
	}
}

// HookStatus reads last_response: unused at first, then the recorded delivery.
func TestHookStatus(t *testing.T) {
	f, srv, _ := fakeForge(t, Options{})
	ctx := context.Background()
	id, err := f.CreateHook(ctx, "octo/app", forge.Hook{URL: "https://ci.example/h", Secret: "s3cret-value", Events: []string{"push"}})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := f.HookStatus(ctx, "octo/app", id); err != nil || st != (forge.HookStatus{Active: true, LastStatus: "unused"}) {
		t.Errorf("new hook: %+v %v", st, err)
	}
	srv.RecordDelivery("octo/app", id, http.StatusUnauthorized, "Invalid HTTP Response: 401")
	if st, err := f.HookStatus(ctx, "octo/app", id); err != nil || st != (forge.HookStatus{Active: true, LastCode: 401, LastStatus: "failed", LastMessage: "Invalid HTTP Response: 401"}) {
		t.Errorf("after a delivery: %+v %v", st, err)
	}
	if _, err := f.HookStatus(ctx, "octo/app", id+100); !errors.Is(err, forge.ErrNotFound) {
		t.Errorf("unknown hook: %v", err)
	}
}
