package github

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/github/githubtest"
)

const token = "ghp_faketoken0123456789"

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// fakeForge starts a fake GitHub with repository octo/app and a forge pointed at it.
func fakeForge(t *testing.T, opts Options) (*Forge, *githubtest.Server, string) {
	t.Helper()
	srv := githubtest.New(t, token)
	srv.CreateRepo("octo/app")
	sha := srv.Commit("octo/app", "main", map[string]string{".simpleci.yml": "steps: []\n", "dir/a.txt": "a"})
	opts.APIURL, opts.WebURL = srv.APIURL(), srv.WebURL()
	if opts.Token == "" {
		opts.Token = token
	}
	if opts.AllowNetworks == nil {
		opts.AllowNetworks = loopback
	}
	f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return f, srv, sha
}

func TestReadFile(t *testing.T) {
	f, srv, sha := fakeForge(t, Options{MaxFileSize: 2 << 20})
	ctx := context.Background()
	got, err := f.ReadFile(ctx, "octo/app", sha, ".simpleci.yml")
	if err != nil || string(got) != "steps: []\n" {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
	for name, path := range map[string]string{"missing file": "nope.yml", "directory": "dir"} {
		if _, err := f.ReadFile(ctx, "octo/app", sha, path); !errors.Is(err, forge.ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", name, err)
		}
	}
	if _, err := f.ReadFile(ctx, "octo/app", strings.Repeat("1", 40), ".simpleci.yml"); !errors.Is(err, forge.ErrNotFound) {
		t.Errorf("missing commit: err = %v", err)
	}
	if _, err := f.ReadFile(ctx, "octo/none", sha, ".simpleci.yml"); !errors.Is(err, forge.ErrNotFound) {
		t.Errorf("missing repository: err = %v", err)
	}
	for _, p := range []string{"../x", "/etc/passwd"} {
		if _, err := f.ReadFile(ctx, "octo/app", sha, p); !errors.Is(err, forge.ErrInvalid) {
			t.Errorf("path %q: err = %v, want ErrInvalid", p, err)
		}
	}

	// Over 1 MiB the API answers without content: read raw, within the limit.
	big := strings.Repeat("x", 1<<20+10)
	huge := strings.Repeat("y", 2<<20+1)
	sha2 := srv.Commit("octo/app", "main", map[string]string{"big.txt": big, "huge.txt": huge})
	got, err = f.ReadFile(ctx, "octo/app", sha2, "big.txt")
	if err != nil || string(got) != big {
		t.Fatalf("big file: %d bytes, %v", len(got), err)
	}
	if _, err := f.ReadFile(ctx, "octo/app", sha2, "huge.txt"); !errors.Is(err, forge.ErrTooLarge) {
		t.Errorf("huge file: err = %v, want ErrTooLarge", err)
	}
}

func TestCommitMessage(t *testing.T) {
	f, srv, sha := fakeForge(t, Options{})
	ctx := context.Background()
	if got, err := f.CommitMessage(ctx, "octo/app", sha); err != nil || got != "commit" {
		t.Errorf("CommitMessage = %q, %v; want %q", got, err, "commit")
	}
	msg := "Fix <b>the</b> build\n\nBecause ü " + strings.Repeat("z", 2<<10)
	sha2 := srv.CommitMessage("octo/app", "main", msg+"\n", nil)
	got, err := f.CommitMessage(ctx, "octo/app", strings.ToUpper(sha2))
	if err != nil || len(got) > forge.MaxCommitMessage || !strings.HasPrefix(got, "Fix <b>the</b> build\n\nBecause ü zz") || !strings.HasSuffix(got, " [...]") {
		t.Errorf("long message: %d bytes %.60q..., %v; want it cut to %d bytes", len(got), got, err, forge.MaxCommitMessage)
	}
	if _, err := f.CommitMessage(ctx, "octo/app", strings.Repeat("e", 40)); !errors.Is(err, forge.ErrNotFound) {
		t.Errorf("unknown commit: err = %v, want ErrNotFound", err)
	}
	if _, err := f.CommitMessage(ctx, "octo/app", "main"); !errors.Is(err, forge.ErrInvalid) {
		t.Errorf("not a sha: err = %v, want ErrInvalid", err)
	}
}

func TestResolveRef(t *testing.T) {
	f, srv, sha := fakeForge(t, Options{})
	srv.Tag("octo/app", "v1", sha)
	ctx := context.Background()
	for _, ref := range []string{"main", "refs/heads/main", "v1", "refs/tags/v1", sha} {
		got, err := f.ResolveRef(ctx, "octo/app", ref)
		if err != nil || got != sha {
			t.Errorf("ResolveRef(%q) = %q, %v; want %s", ref, got, err, sha)
		}
	}
	if _, err := f.ResolveRef(ctx, "octo/app", "nope"); !errors.Is(err, forge.ErrNotFound) {
		t.Errorf("unknown ref: err = %v", err)
	}
	if _, err := f.ResolveRef(ctx, "not a repo", "main"); !errors.Is(err, forge.ErrInvalid) {
		t.Errorf("bad repository: err = %v", err)
	}
}

func TestCheckout(t *testing.T) {
	f, _, sha := fakeForge(t, Options{})
	dir := filepath.Join(t.TempDir(), "ws")
	if err := f.Checkout(context.Background(), "octo/app", sha, dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, ".simpleci.yml")); err != nil || string(b) != "steps: []\n" {
		t.Fatalf("checked-out file: %q, %v", b, err)
	}
	head, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil || strings.TrimSpace(string(head)) != sha {
		t.Errorf("HEAD = %s, %v", head, err)
	}
	// The token stays out of the workspace.
	config, err := os.ReadFile(filepath.Join(dir, ".git", "config"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(config), token) || strings.Contains(string(config), "extraHeader") || strings.Contains(string(config), "Authorization") {
		t.Errorf(".git/config holds the credentials:\n%s", config)
	}
}

func TestWrongTokenIsRefusedAndNotShown(t *testing.T) {
	f, _, sha := fakeForge(t, Options{Token: "ghp_wrong_token_value"})
	ctx := context.Background()
	_, err := f.ReadFile(ctx, "octo/app", sha, ".simpleci.yml")
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("ReadFile with a wrong token: %v", err)
	}
	err2 := f.Checkout(ctx, "octo/app", sha, filepath.Join(t.TempDir(), "ws"))
	if err2 == nil {
		t.Fatal("checkout with a wrong token succeeded")
	}
	for _, e := range []error{err, err2} {
		if strings.Contains(e.Error(), "ghp_wrong_token_value") {
			t.Errorf("error shows the token: %v", e)
		}
	}
}

func TestLoopbackNeedsAllowing(t *testing.T) {
	f, _, sha := fakeForge(t, Options{AllowNetworks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	ctx := context.Background()
	if _, err := f.ReadFile(ctx, "octo/app", sha, ".simpleci.yml"); !errors.Is(err, forge.ErrNotAllowed) {
		t.Errorf("API on loopback: err = %v, want ErrNotAllowed", err)
	}
	if err := f.Checkout(ctx, "octo/app", sha, filepath.Join(t.TempDir(), "ws")); !errors.Is(err, forge.ErrNotAllowed) {
		t.Errorf("git on loopback: err = %v, want ErrNotAllowed", err)
	}
	if err := f.SetStatus(ctx, "octo/app", sha, forge.Status{State: forge.StatusPending}); !errors.Is(err, forge.ErrNotAllowed) {
		t.Errorf("status on loopback: err = %v, want ErrNotAllowed", err)
	}
}

func TestSetStatus(t *testing.T) {
	f, srv, sha := fakeForge(t, Options{})
	ctx := context.Background()
	if err := f.SetStatus(ctx, "octo/app", sha, forge.Status{State: forge.StatusPending, TargetURL: "https://ci.example/api/v1/runs/r1", Description: "queued"}); err != nil {
		t.Fatal(err)
	}
	if err := f.SetStatus(ctx, "octo/app", sha, forge.Status{State: forge.StatusSuccess, Description: strings.Repeat("d", 300)}); err != nil {
		t.Fatal(err)
	}
	got := srv.Statuses()
	if len(got) != 2 || got[0].State != "pending" || got[0].Context != StatusContext || got[0].TargetURL != "https://ci.example/api/v1/runs/r1" ||
		got[0].SHA != sha || got[0].Repo != "octo/app" || got[1].State != "success" || len(got[1].Description) > 140 {
		t.Errorf("statuses = %+v", got)
	}
	if err := f.SetStatus(ctx, "octo/app", sha, forge.Status{State: "done"}); !errors.Is(err, forge.ErrInvalid) {
		t.Errorf("bad state: err = %v", err)
	}
	if err := f.SetStatus(ctx, "octo/app", strings.Repeat("2", 40), forge.Status{State: forge.StatusFailure}); err == nil || !strings.Contains(err.Error(), "422") {
		t.Errorf("unknown commit: err = %v", err)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for name, o := range map[string]Options{
		"api with credentials": {APIURL: "https://user:pw@ghe.example/api/v3/"},
		"web not http":         {WebURL: "ssh://ghe.example/"},
		"token with newline":   {Token: "abc\n"},
		"api query":            {APIURL: "https://ghe.example/api/v3/?x=1"},
	} {
		_, err := New(o)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "pw@") {
			t.Errorf("%s: error shows the credentials: %v", name, err)
		}
	}
}
