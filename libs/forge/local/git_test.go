package local_test

import (
	"context"
	"errors"
	"net/http/cgi"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/local"
)

const pipelinePath = ".simpleci/pipeline.json"

// loopback lets a test's forge reach the test's own git server on 127.0.0.1.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// testRepo is a repository made for one test: two commits on main, an
// annotated tag v1 and a lightweight tag first at the first commit.
type testRepo struct {
	dir           string // working tree
	first, second string // commit ids
}

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFile(t testing.TB, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newTestRepo(t testing.TB) testRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is required by package local and its tests: install git")
	}
	dir := filepath.Join(t.TempDir(), "repo")
	git(t, "", "init", "-q", dir)
	writeFile(t, dir, pipelinePath, `{"version":1}`)
	writeFile(t, dir, "README.md", "first\n")
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "first")
	first := git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "tag", "-a", "v1", "-m", "release 1")
	git(t, dir, "tag", "first")

	writeFile(t, dir, pipelinePath, `{"version":2}`)
	writeFile(t, dir, "sub/dir/new.txt", "new\n")
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "second")
	second := git(t, dir, "rev-parse", "HEAD")
	return testRepo{dir: dir, first: first, second: second}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestReadFile(t *testing.T) {
	repo := newTestRepo(t)
	bare := filepath.Join(t.TempDir(), "bare.git")
	git(t, "", "clone", "-q", "--bare", repo.dir, bare)
	f := newForge(t, local.Options{})

	for _, r := range []struct{ name, repo string }{
		{"working tree", repo.dir},
		{"bare", bare},
		{"file URL", "file://" + bare},
	} {
		t.Run(r.name, func(t *testing.T) {
			got, err := f.ReadFile(ctx(t), r.repo, repo.first, pipelinePath)
			if err != nil || string(got) != `{"version":1}` {
				t.Fatalf("at first commit: %q, %v", got, err)
			}
			got, err = f.ReadFile(ctx(t), r.repo, strings.ToUpper(repo.second), pipelinePath)
			if err != nil || string(got) != `{"version":2}` {
				t.Fatalf("at second commit: %q, %v", got, err)
			}
			if _, err := f.ReadFile(ctx(t), r.repo, repo.first, "sub/dir/new.txt"); !errors.Is(err, forge.ErrNotFound) {
				t.Fatalf("file added later, read at first commit: want ErrNotFound, got %v", err)
			}
		})
	}

	notFound := []struct{ name, sha, path string }{
		{"missing file", repo.second, "nope.txt"},
		{"directory", repo.second, "sub/dir"},
		{"missing commit", strings.Repeat("d", 40), pipelinePath},
	}
	for _, tt := range notFound {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.ReadFile(ctx(t), repo.dir, tt.sha, tt.path); !errors.Is(err, forge.ErrNotFound) {
				t.Fatalf("want ErrNotFound, got %v", err)
			}
		})
	}
	if _, err := f.ReadFile(ctx(t), filepath.Join(t.TempDir(), "absent"), repo.first, pipelinePath); !errors.Is(err, forge.ErrNotFound) {
		t.Fatalf("missing repository: want ErrNotFound, got %v", err)
	}

	small := newForge(t, local.Options{MaxFileSize: 5})
	if _, err := small.ReadFile(ctx(t), repo.dir, repo.first, pipelinePath); !errors.Is(err, forge.ErrTooLarge) {
		t.Fatalf("over the size limit: want ErrTooLarge, got %v", err)
	}
}

func TestReadFileRefusesHostileInput(t *testing.T) {
	repo := newTestRepo(t)
	// A file outside the repository that a traversal would reach.
	writeFile(t, filepath.Dir(repo.dir), "outside.txt", "secret")
	f := newForge(t, local.Options{})
	tests := []struct{ name, repo, sha, path string }{
		{"dot-dot", repo.dir, repo.first, "../outside.txt"},
		{"nested dot-dot", repo.dir, repo.first, ".simpleci/../../outside.txt"},
		{"absolute", repo.dir, repo.first, filepath.Join(filepath.Dir(repo.dir), "outside.txt")},
		{"dot", repo.dir, repo.first, "./README.md"},
		{"backslash", repo.dir, repo.first, `..\outside.txt`},
		{"NUL", repo.dir, repo.first, "README.md\x00"},
		{"newline", repo.dir, repo.first, "README.md\n" + repo.first + ":README.md"},
		{"empty path", repo.dir, repo.first, ""},
		{"option as path", repo.dir, repo.first, "--output=x"},
		{"ref instead of sha", repo.dir, "main", "README.md"},
		{"short sha", repo.dir, repo.first[:7], "README.md"},
		{"option as sha", repo.dir, "--git-dir=/" + strings.Repeat("a", 28), "README.md"},
		{"revision syntax as sha", repo.dir, "HEAD~1:README.md" + strings.Repeat("a", 24), "README.md"},
		{"relative repo", "repo", repo.first, "README.md"},
		{"option as repo", "--upload-pack=touch /tmp/pwned", repo.first, "README.md"},
		{"ext transport", "ext::sh -c touch% /tmp/pwned", repo.first, "README.md"},
		{"ext URL", "ext://sh -c touch /tmp/pwned", repo.first, "README.md"},
		{"scp-like", "git@example.com:acme/app.git", repo.first, "README.md"},
		{"http not allowed by default", "http://example.com/app.git", repo.first, "README.md"},
		{"file URL of another host", "file://evil.example.com/srv/repo", repo.first, "README.md"},
		{"control char in repo", repo.dir + "\n", repo.first, "README.md"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.ReadFile(ctx(t), tt.repo, tt.sha, tt.path)
			if !errors.Is(err, forge.ErrInvalid) {
				t.Fatalf("want ErrInvalid, got %q, %v", got, err)
			}
		})
	}
}

func TestCommitMessage(t *testing.T) {
	repo := newTestRepo(t)
	f := newForge(t, local.Options{})
	if got, err := f.CommitMessage(ctx(t), repo.dir, repo.second); err != nil || got != "second" {
		t.Errorf("CommitMessage(second) = %q, %v; want %q", got, err, "second")
	}
	msg := "Subject <script>x</script>\n\nBody ü " + strings.Repeat("z", 2<<10)
	git(t, repo.dir, "commit", "-q", "--allow-empty", "-m", msg)
	third := git(t, repo.dir, "rev-parse", "HEAD")
	got, err := f.CommitMessage(ctx(t), repo.dir, third)
	if err != nil || len(got) > forge.MaxCommitMessage || !strings.HasPrefix(got, "Subject <script>x</script>\n\nBody ü zz") || !strings.HasSuffix(got, " [...]") {
		t.Errorf("long message: %d bytes %.60q..., %v; want it cut to %d bytes", len(got), got, err, forge.MaxCommitMessage)
	}
	if _, err := f.CommitMessage(ctx(t), repo.dir, strings.Repeat("e", 40)); !errors.Is(err, forge.ErrNotFound) {
		t.Errorf("unknown commit: err = %v, want ErrNotFound", err)
	}
	if _, err := f.CommitMessage(ctx(t), repo.dir, "main"); !errors.Is(err, forge.ErrInvalid) {
		t.Errorf("not a sha: err = %v, want ErrInvalid", err)
	}
}

func TestResolveRef(t *testing.T) {
	repo := newTestRepo(t)
	f := newForge(t, local.Options{})
	tests := []struct {
		ref  string
		want string
	}{
		{"main", repo.second},
		{"refs/heads/main", repo.second},
		{"HEAD", repo.second},
		{"v1", repo.first}, // annotated: peeled to the commit
		{"refs/tags/v1", repo.first},
		{"first", repo.first},
		{repo.first, repo.first},
		{strings.ToUpper(repo.second), repo.second},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			got, err := f.ResolveRef(ctx(t), repo.dir, tt.ref)
			if err != nil || got != tt.want {
				t.Fatalf("ResolveRef(%q) = %q, %v; want %q", tt.ref, got, err, tt.want)
			}
		})
	}
	for _, ref := range []string{"nope", "refs/heads/nope", strings.Repeat("e", 40)} {
		if _, err := f.ResolveRef(ctx(t), repo.dir, ref); !errors.Is(err, forge.ErrNotFound) {
			t.Errorf("ResolveRef(%q): want ErrNotFound, got %v", ref, err)
		}
	}
	for _, ref := range []string{"", "main~1", "main^", "main@{1}", "a..b", "--all", "-x", "main:README.md", "refs/heads/" + strings.Repeat("x", 300)} {
		if _, err := f.ResolveRef(ctx(t), repo.dir, ref); !errors.Is(err, forge.ErrInvalid) {
			t.Errorf("ResolveRef(%q): want ErrInvalid, got %v", ref, err)
		}
	}
}

func TestCheckout(t *testing.T) {
	repo := newTestRepo(t)
	f := newForge(t, local.Options{})

	t.Run("first commit into a new directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ws", "checkout")
		if err := f.Checkout(ctx(t), repo.dir, repo.first, dir); err != nil {
			t.Fatal(err)
		}
		assertCheckout(t, dir, repo.first, `{"version":1}`)
		if _, err := os.Stat(filepath.Join(dir, "sub")); !os.IsNotExist(err) {
			t.Fatalf("file of the second commit present: %v", err)
		}
	})
	t.Run("second commit into an existing empty directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := f.Checkout(ctx(t), "file://"+repo.dir, repo.second, dir); err != nil {
			t.Fatal(err)
		}
		assertCheckout(t, dir, repo.second, `{"version":2}`)
	})
	t.Run("fallback when fetching by id is refused", func(t *testing.T) {
		// Protocol v0 without allowReachableSHA1InWant refuses a want for a
		// commit that is not a ref tip, as some servers do.
		v0 := newForge(t, local.Options{Env: []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=protocol.version", "GIT_CONFIG_VALUE_0=0"}})
		dir := t.TempDir()
		if err := v0.Checkout(ctx(t), repo.dir, repo.first, dir); err != nil {
			t.Fatal(err)
		}
		assertCheckout(t, dir, repo.first, `{"version":1}`)
	})
	t.Run("non-empty directory refused", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "keep.txt", "x")
		if err := f.Checkout(ctx(t), repo.dir, repo.first, dir); !errors.Is(err, forge.ErrInvalid) {
			t.Fatalf("want ErrInvalid, got %v", err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "keep.txt")); string(b) != "x" {
			t.Fatal("existing file touched")
		}
	})
	t.Run("missing commit leaves nothing behind", func(t *testing.T) {
		dir := t.TempDir()
		err := f.Checkout(ctx(t), repo.dir, strings.Repeat("f", 40), dir)
		if !errors.Is(err, forge.ErrNotFound) {
			t.Fatalf("want ErrNotFound, got %v", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("directory not left empty: %v", entries)
		}
	})
	t.Run("hostile input refused", func(t *testing.T) {
		for _, c := range []struct{ repo, sha string }{
			{repo.dir, "main"},
			{repo.dir, "--upload-pack=touch /tmp/pwned"},
			{"--upload-pack=touch /tmp/pwned", repo.first},
			{"ext::sh -c touch% /tmp/pwned", repo.first},
		} {
			if err := f.Checkout(ctx(t), c.repo, c.sha, t.TempDir()); !errors.Is(err, forge.ErrInvalid) {
				t.Errorf("Checkout(%q, %q): want ErrInvalid, got %v", c.repo, c.sha, err)
			}
		}
	})
}

func assertCheckout(t *testing.T, dir, sha, pipeline string) {
	t.Helper()
	if head := git(t, dir, "rev-parse", "HEAD"); head != sha {
		t.Fatalf("HEAD = %s, want %s", head, sha)
	}
	b, err := os.ReadFile(filepath.Join(dir, pipelinePath))
	if err != nil || string(b) != pipeline {
		t.Fatalf("pipeline = %q, %v; want %q", b, err, pipeline)
	}
	if st := git(t, dir, "status", "--porcelain"); st != "" {
		t.Fatalf("working tree not clean:\n%s", st)
	}
}

// TestURLRepository serves the test repository over smart HTTP with git's own
// http-backend, so mirrors, ls-remote and fetching by URL run for real.
func TestURLRepository(t *testing.T) {
	repo := newTestRepo(t)
	execPath := git(t, "", "--exec-path")
	backend := filepath.Join(execPath, "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("git-http-backend not found in %s: %v", execPath, err)
	}
	root := t.TempDir()
	git(t, "", "clone", "-q", "--bare", repo.dir, filepath.Join(root, "app.git"))
	srv := httptest.NewServer(&cgi.Handler{
		Path: backend,
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + os.DevNull},
	})
	t.Cleanup(srv.Close)
	url := srv.URL + "/app.git"

	mirrors := t.TempDir()
	f := newForge(t, local.Options{MirrorDir: mirrors, Protocols: []string{"http"}, AllowNetworks: loopback})

	got, err := f.ReadFile(ctx(t), url, repo.first, pipelinePath)
	if err != nil || string(got) != `{"version":1}` {
		t.Fatalf("ReadFile over http: %q, %v", got, err)
	}
	if got, err := f.ReadFile(ctx(t), url, repo.second, pipelinePath); err != nil || string(got) != `{"version":2}` {
		t.Fatalf("ReadFile second commit: %q, %v", got, err)
	}
	if entries, _ := os.ReadDir(mirrors); len(entries) != 1 {
		t.Fatalf("want one mirror, got %v", entries)
	}

	// A commit pushed after the mirror was made is fetched on demand.
	writeFile(t, repo.dir, "third.txt", "3")
	git(t, repo.dir, "add", "-A")
	git(t, repo.dir, "commit", "-q", "-m", "third")
	third := git(t, repo.dir, "rev-parse", "HEAD")
	git(t, repo.dir, "push", "-q", filepath.Join(root, "app.git"), "main")
	if got, err := f.ReadFile(ctx(t), url, third, "third.txt"); err != nil || string(got) != "3" {
		t.Fatalf("ReadFile of a new commit: %q, %v", got, err)
	}
	if _, err := f.ReadFile(ctx(t), url, strings.Repeat("a", 40), pipelinePath); !errors.Is(err, forge.ErrNotFound) {
		t.Fatalf("missing commit over http: want ErrNotFound, got %v", err)
	}

	for ref, want := range map[string]string{"main": third, "v1": repo.first, "refs/tags/first": repo.first, "HEAD": third} {
		if got, err := f.ResolveRef(ctx(t), url, ref); err != nil || got != want {
			t.Errorf("ResolveRef(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	if _, err := f.ResolveRef(ctx(t), url, "nope"); !errors.Is(err, forge.ErrNotFound) {
		t.Errorf("ResolveRef(nope): want ErrNotFound, got %v", err)
	}

	dir := t.TempDir()
	if err := f.Checkout(ctx(t), url, repo.first, dir); err != nil {
		t.Fatal(err)
	}
	assertCheckout(t, dir, repo.first, `{"version":1}`)

	noMirror := newForge(t, local.Options{Protocols: []string{"http"}, AllowNetworks: loopback})
	if _, err := noMirror.ReadFile(ctx(t), url, repo.first, pipelinePath); err == nil || !strings.Contains(err.Error(), "MirrorDir") {
		t.Fatalf("URL without a mirror directory: want a clear error, got %v", err)
	}
}

func TestCredentialsNotInErrors(t *testing.T) {
	f := newForge(t, local.Options{Protocols: []string{"http"}, Timeout: 20 * time.Second, AllowNetworks: loopback})
	// Nothing listens on port 1; the error must not repeat the token.
	_, err := f.ResolveRef(ctx(t), "http://user:tok3n@127.0.0.1:1/app.git", "main")
	if err == nil || strings.Contains(err.Error(), "tok3n") {
		t.Fatalf("want an error without the token, got %v", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for name, opts := range map[string]local.Options{
		"missing git":   {Git: "/nonexistent/git"},
		"ext protocol":  {Protocols: []string{"ext"}},
		"bad env":       {Env: []string{"NOEQUALS"}},
		"negative time": {Timeout: -time.Second},
	} {
		if _, err := local.New(opts); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if f, err := local.New(local.Options{}); err != nil || f.Name() != "local" {
		t.Fatalf("New(zero) = %v, %v", f, err)
	}
}
