package github

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/github/githubtest"
)

// appForge starts a fake GitHub with app 42 installed for octo (octo/app has a
// commit; other/app exists but the app is not installed there) and a forge
// acting as the app.
func appForge(t *testing.T) (*Forge, *githubtest.Server, string) {
	t.Helper()
	srv := githubtest.New(t, token)
	key := srv.EnableApp(42)
	srv.Install("octo")
	srv.CreateRepo("octo/app")
	srv.CreateRepo("other/app")
	sha := srv.Commit("octo/app", "main", map[string]string{"README": "hi"})
	srv.Commit("other/app", "main", map[string]string{"README": "hi"})
	f, err := New(Options{APIURL: srv.APIURL(), WebURL: srv.WebURL(), AppID: 42, AppKey: key, AllowNetworks: loopback})
	if err != nil {
		t.Fatal(err)
	}
	return f, srv, sha
}

func TestAppActsAsItsInstallation(t *testing.T) {
	f, srv, sha := appForge(t)
	ctx := context.Background()
	if b, err := f.ReadFile(ctx, "octo/app", sha, "README"); err != nil || string(b) != "hi" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	if got, err := f.ResolveRef(ctx, "octo/app", "main"); err != nil || got != sha {
		t.Fatalf("ResolveRef = %s, %v", got, err)
	}
	dir := filepath.Join(t.TempDir(), "ws")
	if err := f.Checkout(ctx, "octo/app", sha, dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "README")); err != nil || string(b) != "hi" {
		t.Fatalf("checked-out file = %q, %v", b, err)
	}
	if config, _ := os.ReadFile(filepath.Join(dir, ".git", "config")); strings.Contains(string(config), "ghs_") || strings.Contains(string(config), "Authorization") {
		t.Errorf(".git/config holds the credentials:\n%s", config)
	}
	if err := f.SetStatus(ctx, "octo/app", sha, forge.Status{State: forge.StatusSuccess}); err != nil {
		t.Fatal(err)
	}
	// One installation token served all of it: it lives an hour.
	if n := srv.InstallationTokensMade(); n != 1 {
		t.Errorf("installation tokens made = %d, want 1 (cached)", n)
	}
}

func TestAppRenewsTokensBeforeTheyExpire(t *testing.T) {
	f, srv, sha := appForge(t)
	srv.SetInstallationTokenTTL(tokenMargin - time.Second) // every token is already within the margin
	for range 3 {
		if _, err := f.ResolveRef(context.Background(), "octo/app", sha); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.InstallationTokensMade(); n != 3 {
		t.Errorf("installation tokens made = %d, want 3 (each one renewed)", n)
	}
}

func TestAppNotInstalled(t *testing.T) {
	f, _, _ := appForge(t)
	_, err := f.ResolveRef(context.Background(), "other/app", "main")
	if !errors.Is(err, forge.ErrNotFound) || !strings.Contains(err.Error(), "not installed on other/app") {
		t.Errorf("err = %v, want ErrNotFound saying the app is not installed", err)
	}
	dir := filepath.Join(t.TempDir(), "ws")
	if err := f.Checkout(context.Background(), "other/app", strings.Repeat("a", 40), dir); !errors.Is(err, forge.ErrNotFound) {
		t.Errorf("checkout: err = %v, want ErrNotFound", err)
	}
	// The app uninstalled: a project there can still be deleted (its hook is out of reach).
	if err := f.DeleteHook(context.Background(), "other/app", 7); err != nil {
		t.Errorf("delete a hook where the app is not installed: %v", err)
	}
}

func TestChecks(t *testing.T) {
	f, srv, sha := appForge(t)
	ctx := context.Background()
	if !f.ReportsChecks() {
		t.Fatal("an app forge does not report checks")
	}
	start := time.Now().UTC().Truncate(time.Second)
	id, err := f.CreateCheck(ctx, "octo/app", sha, forge.Check{Name: "simpleci", Status: forge.CheckInProgress, DetailsURL: "https://ci.example/runs/r1", ExternalID: "r1", StartedAt: start})
	if err != nil {
		t.Fatal(err)
	}
	summary := "| step | status |\n|---|---|\n| build | succeeded |\n" + strings.Repeat("x", 70000)
	if err := f.UpdateCheck(ctx, "octo/app", id, forge.Check{Name: "simpleci", Status: forge.CheckCompleted, Conclusion: "success", Title: "run #1 succeeded", Summary: summary, CompletedAt: start.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	got := srv.CheckRuns()
	if len(got) != 1 {
		t.Fatalf("check runs = %+v", got)
	}
	c := got[0]
	if c.ID != id || c.HeadSHA != sha || c.Name != "simpleci" || c.Status != "completed" || c.Conclusion != "success" ||
		c.ExternalID != "r1" || c.DetailsURL != "https://ci.example/runs/r1" || c.Output.Title != "run #1 succeeded" ||
		!strings.HasPrefix(c.Output.Summary, "| step | status |") || len(c.Output.Summary) > maxCheckSummary || c.Updates != 1 {
		t.Errorf("check run = %+v", c)
	}
	for name, bad := range map[string]forge.Check{
		"no name":                {Status: forge.CheckQueued},
		"completed, no verdict":  {Name: "x", Status: forge.CheckCompleted},
		"unknown conclusion":     {Name: "x", Status: forge.CheckCompleted, Conclusion: "great"},
		"in progress, concluded": {Name: "x", Status: forge.CheckInProgress, Conclusion: "success"},
		"unknown status":         {Name: "x", Status: "done"},
	} {
		if _, err := f.CreateCheck(ctx, "octo/app", sha, bad); !errors.Is(err, forge.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestTokenForgeReportsNoChecks(t *testing.T) {
	f, _, sha := fakeForge(t, Options{})
	if f.ReportsChecks() {
		t.Error("a token forge says it reports checks")
	}
	// GitHub refuses check runs to anything but an app; so does the fake.
	if _, err := f.CreateCheck(context.Background(), "octo/app", sha, forge.Check{Name: "simpleci", Status: forge.CheckQueued}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("err = %v, want GitHub's 403", err)
	}
}

func TestNewRefusesBadApps(t *testing.T) {
	for name, opts := range map[string]Options{
		"token and app": {Token: "ghp_x", AppID: 1, AppKey: []byte("-----BEGIN RSA PRIVATE KEY-----\n")},
		"no id":         {AppKey: []byte("x")},
		"not a key":     {AppID: 1, AppKey: []byte("not a key")},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}
